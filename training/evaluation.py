"""Measure a generator (checkpoint, run folder, .onnx) or an image set (.npz, image/IDX folder).

Samples are drawn with the service's latents (image i of seed s from its own generator seeded
[s, i]; balanced labels i % classes for conditional models), so a checkpoint and its ONNX export
are measured on the same latents. Real reference features and k-NN radii are cached per
evaluator + data + n, in memory and on disk, so repeated evaluations only pay for the samples.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training import metrics as M
from training.checkpoint import atomic_write_bytes, list_checkpoints
from training.evaluator import DEFAULT_EVALUATOR, EvaluationError, Evaluator, find_evaluator, load_evaluator

log = logging.getLogger(__name__)

GRID_N = 100
CAS_MIN_STEPS = 150  # optimizer steps the CAS classifier gets at least (batch 128), for small n
CACHE_VERSION = 1


@dataclass
class Samples:
    """Images to measure (uint8 [N, C, H, W]), the labels asked for or known, and where they came from."""

    images: np.ndarray
    labels: np.ndarray | None
    kind: str  # checkpoint | onnx | npz | dataset
    path: Path
    card: Any = None  # gan_core.card.ModelCard for generators

    @property
    def conditional(self) -> bool:
        return self.card is not None and self.card.conditional


@dataclass
class Reference:
    """Real features, their k-NN radii and Gaussian statistics, plus the data's class shares."""

    features: np.ndarray
    radii: np.ndarray
    mu: np.ndarray
    cov: np.ndarray
    class_shares: np.ndarray
    info: dict[str, Any]
    images: np.ndarray | None = None
    labels: np.ndarray | None = None


# ------------------------------------------------------------------ sampling targets
def subset_indices(total: int, n: int, seed: int) -> np.ndarray:
    """A seeded, sorted subset of n of `total` indices (all of them when n >= total)."""
    if n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng([seed, total]).choice(total, n, replace=False))


def target_kind(target: str | os.PathLike) -> str:
    p = Path(target)
    if not p.exists():
        raise EvaluationError(f"{p}: no such file or folder")
    if p.is_dir():
        return "checkpoint" if list_checkpoints(p) else "dataset"
    kinds = {".onnx": "onnx", ".safetensors": "checkpoint", ".npz": "npz"}
    if p.suffix not in kinds:
        raise EvaluationError(
            f"{p}: unsupported target (give a checkpoint, run folder, .onnx, .npz or image folder)"
        )
    return kinds[p.suffix]


def _generate_batches(
    run, n: int, dim: int, seed: int, num_classes: int | None, batch: int = 500
) -> tuple[np.ndarray, np.ndarray | None]:
    from gan_core.latents import balanced_labels, latents

    out = []
    for i in range(0, n, batch):
        idx = range(i, min(n, i + batch))
        out.append(run(latents(seed, idx, dim), balanced_labels(idx, num_classes) if num_classes else None))
    labels = balanced_labels(range(n), num_classes) if num_classes else None
    return np.concatenate(out), labels


def torch_sampler(g, device=None):
    """run(z, labels) -> uint8 [N, C, H, W] for a torch generator in eval mode."""
    import torch

    from gan_core.imaging import float_to_uint8

    device = device or next(g.parameters()).device

    @torch.no_grad()
    def run(z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        lab = torch.from_numpy(labels).to(device) if labels is not None else None
        x = g(torch.from_numpy(z).to(device), lab).float().cpu().numpy()
        return float_to_uint8(x).transpose(0, 3, 1, 2)

    return run


def sample_generator(g, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """n images of a torch generator on the service's latents (balanced labels when conditional)."""
    return _generate_batches(
        torch_sampler(g), n, g.latent_dim, seed, g.num_classes if g.conditional else None
    )


def sample_target(target: str | os.PathLike, n: int = 10_000, seed: int = 0, split: str = "train") -> Samples:
    """Images of any evaluation target (see module doc); data targets give a seeded subset of n."""
    p = Path(target)
    kind = target_kind(p)
    if n < 1:
        raise EvaluationError(f"n must be >= 1, got {n}")
    if kind == "checkpoint":
        from training.checkpoint import build_generator, load_checkpoint

        ckpt = load_checkpoint(p)
        images, labels = sample_generator(build_generator(ckpt, "g_ema"), n, seed)
        return Samples(images, labels, kind, ckpt.path, ckpt.card)
    if kind == "onnx":
        from gan_core.runtime import ModelFileError, open_generator

        try:
            sess = open_generator(p, threads=int(os.environ.get("GAN_ORT_THREADS", 0)) or None, device="cpu")
        except ModelFileError as e:
            raise EvaluationError(str(e)) from None
        card = sess.card

        def run(z, labels):
            return sess.run(z, labels).transpose(0, 3, 1, 2)

        images, labels = _generate_batches(
            run, n, card.latent_dim, seed, card.num_classes if card.conditional else None
        )
        return Samples(np.ascontiguousarray(images), labels, kind, p, card)
    from gan_core.datasets import load_dataset

    ds = load_dataset(p, split)
    if kind == "npz":
        with np.load(p) as z:
            has_labels = "labels" in z.files
    else:
        has_labels = True
    idx = subset_indices(len(ds), n, seed)
    return Samples(ds.images[idx], ds.labels[idx] if has_labels else None, kind, p)


# ------------------------------------------------------------------ reference statistics
def cache_dir() -> Path:
    return Path(os.environ.get("GAN_EVAL_CACHE") or Path.home() / ".cache" / "gan-service" / "eval")


_REFS: dict[str, Reference] = {}


def real_reference(
    ev: Evaluator,
    data=None,
    split: str = "test",
    n: int = 10_000,
    seed: int = 0,
    k: int = M.NN_K,
    keep_images: bool = False,
) -> Reference:
    """Features, k-NN radii and statistics of n real images of `data`'s split, cached by content."""
    from gan_core.datasets import load_dataset

    ds = data if hasattr(data, "images") else load_dataset(data, split)
    if ds.image_shape != tuple(ev.card.image_shape) or ds.num_classes != ev.card.num_classes:
        raise EvaluationError(
            f"{ds.source}: reference data ({ds.image_shape}, {ds.num_classes} classes) does not match evaluator "
            f"{ev.id!r} ({tuple(ev.card.image_shape)}, {ev.card.num_classes} classes)"
        )
    idx = subset_indices(len(ds), n, seed)
    fp = ds.fingerprint()
    key = f"v{CACHE_VERSION}-{ev.id}-{ev.card.weights_sha256[:12]}-{fp}-n{len(idx)}-s{seed}-k{k}"
    info = {
        "source": ds.source,
        "split": ds.meta.get("split", split),
        "n": int(len(idx)),
        "fingerprint": fp,
        "seed": seed,
    }
    ref = _REFS.get(key)
    if ref is None:
        path = cache_dir() / f"{key}.npz"
        try:
            with np.load(path) as z:
                ref = Reference(z["features"], z["radii"], z["mu"], z["cov"], z["class_shares"], info)
        except (OSError, KeyError, ValueError):
            feats, _ = ev.features_and_logits(ds.images[idx])
            mu, cov = M.gaussian_stats(feats)
            shares = ds.class_counts() / len(ds)
            ref = Reference(feats, M.knn_radii(feats, k), mu, cov, shares, info)
            buf = io.BytesIO()
            np.savez(buf, features=ref.features, radii=ref.radii, mu=mu, cov=cov, class_shares=shares)
            try:
                atomic_write_bytes(path, buf.getvalue())
            except OSError as e:  # a read-only cache only costs speed
                log.info("cannot write evaluation cache %s: %s", path, e)
        _REFS[key] = ref
    if keep_images and ref.images is None:
        ref.images, ref.labels = ds.images[idx], ds.labels[idx]
    return ref


# ------------------------------------------------------------------ metrics
def measure(
    ev: Evaluator, images: np.ndarray, ref: Reference, labels: np.ndarray | None = None, k: int = M.NN_K
) -> dict[str, Any]:
    """All metrics of `images` against a reference, in one evaluator's feature space."""
    ev.check_images(images, "samples")
    if len(images) <= k:
        raise EvaluationError(f"n must be > {k} (k-NN balls need k+1 samples), got {len(images)}")
    feats, logits = ev.features_and_logits(images)
    out: dict[str, Any] = {
        "evaluator": ev.id,
        "n": int(len(images)),
        "fid": M.frechet_distance(ref.mu, ref.cov, *M.gaussian_stats(feats)),
        "classifier_score": M.classifier_score(logits),
        **M.prdc(ref.features, feats, k, real_radii=ref.radii),
        "modes": M.modes(logits.argmax(1), ref.class_shares),
    }
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
    from training.evaluator import train_evaluator

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


def fid_floor(ev: Evaluator, data, n: int, seed: int, ref: Reference) -> float | None:
    """FID of n real training images against the reference: the best a generator can expect."""
    from gan_core.datasets import load_dataset

    train = load_dataset(data, "train")
    if train.fingerprint() == ref.info["fingerprint"]:
        return None
    tr = real_reference(ev, train, "train", n, seed)
    return M.frechet_distance(ref.mu, ref.cov, tr.mu, tr.cov)


def evaluate_samples(
    samples: Samples,
    data=None,
    n_ref: int | None = None,
    seed: int = 0,
    evaluator: str = DEFAULT_EVALUATOR,
    cas: bool = False,
) -> dict[str, Any]:
    """Report for drawn samples; the reference holds as many real test images (n_ref overrides)."""
    t0 = time.perf_counter()
    ev = load_evaluator(evaluator)
    n_ref = n_ref or len(samples.images)
    ref = real_reference(ev, data, "test", n_ref, seed, keep_images=cas)
    m = measure(ev, samples.images, ref, samples.labels)
    predicted = m.pop("_predicted")
    floor = fid_floor(ev, data, n_ref, seed, ref)
    report: dict[str, Any] = {
        "target": str(samples.path),
        "kind": samples.kind,
        "evaluator": ev.id,
        "evaluator_sha256": ev.card.weights_sha256,
        "reference": ref.info,
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
    if cas:
        report["cas"] = classification_accuracy_score(samples, predicted, ref, ev, seed)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def evaluate_target(
    target,
    data=None,
    n: int = 10_000,
    seed: int = 0,
    split: str = "train",
    evaluator: str = DEFAULT_EVALUATOR,
    cas: bool = False,
) -> dict[str, Any]:
    """Report dict (fid, classifier_score, precision, recall, density, coverage, modes, n, ...) of a target.

    target: checkpoint file / run folder (its g_ema), .onnx, .npz (images, optional labels) or
    image / IDX folder (its `split`). The reference is as many images of `data`'s test split (MNIST default).
    """
    return evaluate_samples(sample_target(target, n, seed, split), data, None, seed, evaluator, cas)


# ------------------------------------------------------------------ writing results
def card_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report that goes into a model card."""
    keys = (
        "evaluator",
        "n",
        "fid",
        "fid_floor",
        "classifier_score",
        "precision",
        "recall",
        "density",
        "coverage",
        "class_accuracy",
        "cas",
    )
    out = {k: report[k] for k in keys if report.get(k) is not None}
    out["modes_covered"] = report["modes"]["covered"]
    out["reference"] = {k: report["reference"][k] for k in ("split", "n", "fingerprint")}
    return {"source": "gan evaluate", **out}


def write_card_metrics(samples: Samples, report: dict[str, Any]) -> Path:
    """Set the card's `metrics` inside the evaluated checkpoint or .onnx file (temp file + rename)."""
    from gan_core.card_files import write_card

    card = samples.card.model_copy(update={"metrics": card_metrics(report)})
    card = type(samples.card).model_validate(card.model_dump())
    write_card(samples.path, card)
    if samples.kind == "checkpoint":
        ckpts = list_checkpoints(samples.path.parent)
        if (
            ckpts and ckpts[-1].resolve() == samples.path.resolve()
        ):  # card.json describes the newest checkpoint
            write_card(samples.path.parent / "card.json", card)
    return samples.path


def write_report(report: dict[str, Any], samples: Samples, out: Path) -> tuple[Path, Path]:
    """REPORT.json and REPORT.png (a grid of the first samples) beside it, both atomically."""
    from gan_core.imaging import grid, png_bytes

    out = Path(out)
    atomic_write_bytes(out, (json.dumps(report, indent=2) + "\n").encode())
    imgs = samples.images[:GRID_N].transpose(0, 2, 3, 1)
    png = out.with_suffix(".png")
    atomic_write_bytes(png, png_bytes(grid(imgs, 10), scale=2))
    return out, png


def summary_line(report: dict[str, Any]) -> str:
    parts = [f"fid {report['fid']:.3f} (n={report['n']}, evaluator {report['evaluator']})"]
    if report.get("fid_floor"):
        parts.append(f"floor {report['fid_floor']:.3f} (x{report['fid_ratio']:.1f})")
    parts += [f"classifier score {report['classifier_score']:.3f}", f"precision {report['precision']:.3f}", f"recall {report['recall']:.3f}",
              f"density {report['density']:.3f}", f"coverage {report['coverage']:.3f}",
              f"modes {report['modes']['covered']}/{report['modes']['num_classes']}"]  # fmt: skip
    if "class_accuracy" in report:
        parts.append(f"class accuracy {report['class_accuracy']:.4f}")
    if "cas" in report:
        parts.append(f"CAS {report['cas']['accuracy']:.4f}")
    return "; ".join(parts)


# ------------------------------------------------------------------ quick evaluation during training
class QuickEval:
    """Periodic small evaluation of a Trainer's inference generator against its own training data.

    The reference is `eval_n` training images, so numbers track progress within a run (FID at small
    n is biased upwards; compare only within one run). Warns when the run looks like collapsing.
    """

    def __init__(self, ev: Evaluator, n: int, seed: int = 0):
        self.ev, self.n, self.seed = ev, n, seed
        self.best: dict[str, float] = {}
        self.ref: Reference | None = None

    def __call__(self, trainer) -> dict[str, Any]:
        t0 = time.perf_counter()
        if self.ref is None:
            self.ref = real_reference(self.ev, trainer.ds, "train", self.n, self.seed)
        ref = self.ref
        g = trainer.inference_generator()
        images, labels = sample_generator(g, self.n, self.seed)
        m = measure(self.ev, images, ref, labels if trainer.cfg.conditional else None)
        m.pop("_predicted")
        result = {
            k: m[k]
            for k in (
                "evaluator",
                "n",
                "fid",
                "classifier_score",
                "precision",
                "recall",
                "density",
                "coverage",
            )
        }
        result["modes_covered"] = m["modes"]["covered"]
        result["kl_to_data"] = m["modes"]["kl_to_data"]
        if "class_accuracy" in m:
            result["class_accuracy"] = m["class_accuracy"]
        result = {
            "source": "quick_eval",
            "reference": "train",
            **result,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        trainer.log.write({"step": trainer.step, "eval": result})
        for msg in self.collapse_warnings(result):
            warn(f"step {trainer.step}: {msg}")
        return result

    def collapse_warnings(self, r: dict[str, Any]) -> list[str]:
        """Compare with the best values so far, then update them."""
        msgs, best = [], self.best
        # Collapse from the start has no "best" to fall from: realistic samples (precision) that
        # cover almost none of the real data (recall) mean the generator ignores its latent.
        if r.get("precision", 0.0) > 0.5 and r.get("recall", 1.0) < 0.05:
            msgs.append(
                f"mode collapse: samples look real (precision {r['precision']:.2f}) but cover almost no real "
                f"data (recall {r['recall']:.2f}); the generator may be ignoring z (try diversity_weight)"
            )
        if "modes_covered" in best and r["modes_covered"] < best["modes_covered"]:
            msgs.append(
                f"possible mode collapse: modes covered fell to {r['modes_covered']} (best {best['modes_covered']})"
            )
        if "coverage" in best and best["coverage"] > 0.1 and r["coverage"] < 0.5 * best["coverage"]:
            msgs.append(
                f"possible mode collapse: coverage fell to {r['coverage']:.3f} (best {best['coverage']:.3f})"
            )
        if (
            "class_accuracy" in r
            and "class_accuracy" in best
            and r["class_accuracy"] < best["class_accuracy"] - 0.1
        ):
            msgs.append(
                f"class accuracy fell to {r['class_accuracy']:.3f} (best {best['class_accuracy']:.3f})"
            )
        for key in ("modes_covered", "coverage", "class_accuracy"):
            if key in r:
                best[key] = max(best.get(key, r[key]), r[key])
        return msgs


def warn(msg: str) -> None:
    log.warning(msg)
    try:
        from tqdm import tqdm

        tqdm.write(f"WARNING: {msg}")
    except ImportError:
        pass


def attach_quick_eval(trainer) -> QuickEval | None:
    """Set `trainer.quick_eval` when a shipped evaluator measures the trainer's data; else skip with a log note."""
    ds = trainer.ds
    ev = find_evaluator(ds.image_shape, ds.num_classes)
    if ev is None:
        log.info(
            "quick evaluation skipped: no evaluator for images %s with %d classes",
            ds.image_shape,
            ds.num_classes,
        )
        return None
    if len(ds) <= M.NN_K:
        log.info("quick evaluation skipped: dataset too small (%d images)", len(ds))
        return None
    qe = QuickEval(ev, min(trainer.cfg.eval_n, len(ds)))
    trainer.quick_eval = qe
    return qe
