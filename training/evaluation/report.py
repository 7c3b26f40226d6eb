"""One report of every metric: a target's samples measured against a real reference."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from training import metrics as M
from training.evaluation.classifier import CLASS_METRICS, EvaluationError, Evaluator
from training.evaluation.codes import code_classes
from training.evaluation.reference import Reference, fid_floor, real_reference, reference_source
from training.evaluation.sampling import Samples, sample_target
from training.evaluation.store import evaluation_splits, matches, resolve_evaluator

CAS_MIN_STEPS = 150  # optimizer steps the CAS classifier gets at least (batch 128), for small n


def measure(
    ev: Evaluator, images: np.ndarray, ref: Reference, labels: np.ndarray | None = None, k: int = M.NN_K
) -> dict[str, Any]:
    """All metrics of `images` against a reference, in one evaluator's feature space.

    A self-supervised (rotation) evaluator has no classes: the class metrics are left out and
    listed under `needs_labels`.
    """
    ev.check_images(images, "samples")
    if len(images) <= k:
        raise EvaluationError(f"n must be > {k} (k-NN balls need k+1 samples), got {len(images)}")
    feats, logits = ev.features_and_logits(images)
    out: dict[str, Any] = {
        "evaluator": ev.id,
        "n": int(len(images)),
        "fid": M.frechet_distance(ref.mu, ref.cov, *M.gaussian_stats(feats)),
        **M.prdc(ref.features, feats, k, real_radii=ref.radii),
    }
    if not ev.measures_classes:
        out["needs_labels"] = list(CLASS_METRICS)
        out["_predicted"] = None
        return out
    out["classifier_score"] = M.classifier_score(logits)
    out["modes"] = M.modes(logits.argmax(1), ref.class_shares)
    if labels is not None:
        out["class_accuracy"] = M.class_accuracy(logits, labels)
    out["_predicted"] = logits.argmax(1)
    return out


def classification_accuracy_score(
    samples: Samples, predicted: np.ndarray, ref: Reference, ev: Evaluator, seed: int = 0, epochs: int = 3
) -> dict:
    """CAS (Ravuri & Vinyals 2019): train the evaluator architecture on samples only, test on real data.

    Labels are the ones asked of a conditional generator, the data's own, or else the evaluator's
    predictions (pseudo-labels, said in the report).
    """
    from training.evaluation.classifier import train_evaluator

    epochs = max(
        epochs, math.ceil(CAS_MIN_STEPS / math.ceil(len(samples.images) / 128))
    )  # small n: more epochs
    labels, source = (samples.labels, "given") if samples.labels is not None else (predicted, "evaluator")
    _, stats = train_evaluator(
        samples.images, labels, ref.images, ref.labels, ev.card.class_names, epochs=epochs, seed=seed
    )
    return {
        "accuracy": stats["test_accuracy"],
        "labels": source,
        "epochs": epochs,
        "test_n": stats["test_n"],
        "seconds": stats["seconds"],
    }


def evaluate_samples(
    samples: Samples,
    data=None,
    n_ref: int | None = None,
    seed: int = 0,
    evaluator: str | None = "auto",
    cas: bool = False,
) -> dict[str, Any]:
    """Report for drawn samples; the reference holds as many real test images (n_ref overrides).

    The reference data is `data`, else the generator's training data, else MNIST; `evaluator`
    'auto' is the evaluator bound to that data, a name or path stem picks another one (the
    report then says whether it is bound to the reference data).
    """
    t0 = time.perf_counter()
    splits = evaluation_splits(*reference_source(samples.card, data, samples.path))
    ev = resolve_evaluator(evaluator, splits)
    n_ref = n_ref or len(samples.images)
    ref = real_reference(ev, splits.test, "test", n_ref, seed, keep_images=cas)
    m = measure(ev, samples.images, ref, samples.labels)
    predicted = m.pop("_predicted")
    floor = fid_floor(ev, splits.train, n_ref, seed, ref)
    bound = ev.card.dataset
    report: dict[str, Any] = {
        "target": str(samples.path),
        "kind": samples.kind,
        "evaluator": ev.id,
        "evaluator_sha256": ev.card.weights_sha256,
        "evaluator_data": {
            "name": bound.name if bound else None,
            "fingerprint": bound.fingerprint if bound else None,
            "matches_reference": matches(ev, splits.full),
        },
        "reference": {**ref.info, "test_split": splits.test_info["kind"]},
        "seed": seed,
        "k": M.NN_K,
        **m,
        "fid_floor": floor,
        "fid_ratio": (m["fid"] / floor) if floor else None,
    }
    if samples.card is not None:
        report["model"] = {
            "name": samples.card.name,
            "steps": samples.card.steps,
            "conditional": samples.card.conditional,
        }
        if not samples.conditional:
            report.pop("class_accuracy", None)
        if ev.measures_classes:
            codes = code_classes(samples.card, samples.codes or {}, predicted, ev.card.class_names)
            if codes:
                report["code_classes"] = codes
    if cas and ev.measures_classes:
        report["cas"] = classification_accuracy_score(samples, predicted, ref, ev, seed)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def evaluate_target(
    target,
    data=None,
    n: int = 10_000,
    seed: int = 0,
    split: str = "train",
    evaluator: str | None = "auto",
    cas: bool = False,
) -> dict[str, Any]:
    """Report dict (fid, classifier_score, precision, recall, density, coverage, modes, n, ...) of a target.

    target: checkpoint file / run folder (its g_ema), .onnx, .npz (images, optional labels) or
    image / IDX folder (its `split`). The reference is as many images of the test split of `data`,
    else of the generator's training data, else of MNIST (see evaluate_samples).
    """
    return evaluate_samples(sample_target(target, n, seed, split), data, None, seed, evaluator, cas)
