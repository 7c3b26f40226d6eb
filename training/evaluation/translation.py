"""How well an image-to-image model translates: per direction, on the source domain's test images,

- label preservation: the target domain's evaluator classifies the translated image as the source
  image's label (the evaluator's own accuracy on real target images is reported beside it: the ceiling);
- FID of the translated images to the real target domain's test images, in that evaluator's features
  (with the floor: the target's train vs test FID);
- cycle reconstruction error: mean |F(G(x)) - x| over pixels, in [0, 1] units; and how much the
  translation changed the image, mean |G(x) - x| (a translator that does nothing keeps every label).

Targets: a checkpoint or run folder (its g_ema and f_ema), or one direction's .onnx with its partner
direction beside it (the same translation.model in the card).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gan_core.card import ModelCard
from gan_core.datasets import ImageDataset, load_dataset
from gan_core.imaging import float_to_uint8
from training import metrics as M
from training.evaluation.classifier import DEFAULT_EVALUATOR, EvaluationError, load_evaluator
from training.evaluation.reference import fid_floor, real_reference
from training.evaluation.sampling import subset_indices, target_kind

Translator = Callable[[np.ndarray], np.ndarray]  # uint8 [N, H, W, C] -> uint8 [N, H', W', C']
BATCH = 500


@dataclass
class TranslationPair:
    """Both directions of a translation model as uint8 NHWC functions, and the a2b card."""

    card: ModelCard
    to_b: Translator
    to_a: Translator
    path: Path
    kind: str  # checkpoint | onnx
    data: dict[str, str | None] = field(default_factory=dict)  # {a, b}: where a checkpoint's run read them


def batched(run: Translator) -> Translator:
    def translate(x: np.ndarray) -> np.ndarray:
        return np.concatenate([run(x[i : i + BATCH]) for i in range(0, len(x), BATCH)])

    return translate


def torch_translator(module) -> Translator:
    import torch

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return float_to_uint8(module(torch.from_numpy(np.ascontiguousarray(x))).float().numpy())

    return batched(run)


def partner_onnx(path: Path, card: ModelCard) -> Path:
    """The other direction's .onnx in the same folder (same translation.model)."""
    from gan_core.card_files import CardFileError, read_card

    want = "b2a" if card.translation.direction == "a2b" else "a2b"
    for q in sorted(path.parent.glob("*.onnx")):
        try:
            t = read_card(q).translation
        except CardFileError:
            continue
        if t is not None and t.model == card.translation.model and t.direction == want:
            return q
    raise EvaluationError(
        f"{path}: no {want} file of translation model {card.translation.model!r} beside it (export both directions)"
    )


def open_pair(target: str | os.PathLike) -> TranslationPair:
    p = Path(target)
    kind = target_kind(p)
    if kind == "checkpoint":
        from training.checkpoint import build_generator, checkpoint_family, load_checkpoint

        ckpt = load_checkpoint(p)
        family = checkpoint_family(ckpt)
        nets = family.directions()
        if sorted(nets) != ["a2b", "b2a"]:
            raise EvaluationError(
                f"{ckpt.path}: a {family.name!r} model, not a translation model (a2b / b2a)"
            )
        to_b, to_a = (torch_translator(build_generator(ckpt, f"{nets[d]}_ema")) for d in ("a2b", "b2a"))
        data = {"a": ckpt.config.data, "b": ckpt.config.data_b}
        return TranslationPair(family.direction_card(ckpt.card, "a2b"), to_b, to_a, ckpt.path, kind, data)
    if kind != "onnx":
        raise EvaluationError(f"{p}: give a translation checkpoint, run folder or .onnx")
    from gan_core.runtime import ModelFileError, open_generator

    try:
        sess = open_generator(p, threads=int(os.environ.get("GAN_ORT_THREADS", 0)) or None, device="cpu")
    except ModelFileError as e:
        raise EvaluationError(str(e)) from None
    if sess.card.translation is None:
        raise EvaluationError(
            f"{p}: model {sess.card.name!r} is not a translation model (its card has no domains)"
        )
    other = open_generator(partner_onnx(p, sess.card), threads=sess.threads, device="cpu")
    a2b, b2a = (sess, other) if sess.card.translation.direction == "a2b" else (other, sess)

    def ort(s) -> Translator:
        return batched(lambda x: s.run({s.card.inputs[0].name: np.ascontiguousarray(x)}))

    return TranslationPair(a2b.card, ort(a2b), ort(b2a), a2b.path, kind)


def domain_data(card: ModelCard, side: str, given: str | None, trained_on: str | None = None) -> str:
    """The data path of domain a / b: as given, else where a checkpoint's run read it (its config).

    Cards record a dataset's name and fingerprint, not where it lived on the training machine, so an
    exported pair is measured on the data named with --data-a / --data-b.
    """
    if given is not None:
        return given
    if trained_on is not None and Path(trained_on).exists():
        src = Path(trained_on)
        return str(src.parent if src.suffix == ".npz" and src.stem in ("train", "test") else src)
    t = card.translation
    name = (t.source if t.source.name == side else t.target).dataset.get("name", side)
    raise EvaluationError(
        f"data_{side}: give --data-{side} (the card names domain {side}'s data {name!r}, not where it is)"
    )


def test_split(data: str, side: str) -> ImageDataset:
    test, train = load_dataset(data, "test"), load_dataset(data, "train")
    if test.fingerprint() == train.fingerprint():
        raise EvaluationError(f"data_{side}: {data} has no separate test split to measure on")
    return test


def direction_report(
    translate: Translator,
    back: Translator,
    src: ImageDataset,
    tgt: ImageDataset,
    tgt_data: str,
    ev,
    n: int,
    seed: int,
) -> dict[str, Any]:
    idx = subset_indices(len(src), n, seed)
    x, labels = src.images[idx].transpose(0, 2, 3, 1), src.labels[idx]
    out = translate(np.ascontiguousarray(x))
    rec = back(out)
    out_nchw = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    ev.check_images(out_nchw, "translated images")
    feats, logits = ev.features_and_logits(out_nchw)
    ref = real_reference(ev, tgt, "test", n, seed)
    ridx = subset_indices(len(tgt), n, seed)
    same = x.shape[1:] == out.shape[1:]
    return {
        "n": int(len(idx)),
        "label_preservation": float((logits.argmax(1) == labels).mean()),
        "evaluator_accuracy_on_target": ev.accuracy(tgt.images[ridx], tgt.labels[ridx]),
        "fid": M.frechet_distance(ref.mu, ref.cov, *M.gaussian_stats(feats)),
        "fid_floor": fid_floor(ev, tgt_data, n, seed, ref),
        "cycle_l1": float(np.abs(rec.astype(np.int16) - x).mean() / 255.0),
        "change_l1": float(np.abs(out.astype(np.int16) - x).mean() / 255.0) if same else None,
        "reference": ref.info,
    }


def evaluate_translation(
    target: str | os.PathLike,
    data_a: str | None = None,
    data_b: str | None = None,
    n: int = 2000,
    seed: int = 0,
    evaluator_a: str = DEFAULT_EVALUATOR,
    evaluator_b: str = DEFAULT_EVALUATOR,
) -> tuple[dict[str, Any], TranslationPair, dict[str, ImageDataset]]:
    """(report, the opened pair, the test sets {a, b}); each direction measured on the target domain."""
    if n < 6:
        raise EvaluationError(f"n must be >= 6, got {n}")
    t0 = time.perf_counter()
    pair = open_pair(target)
    paths = {s: domain_data(pair.card, s, g, pair.data.get(s)) for s, g in (("a", data_a), ("b", data_b))}
    tests = {s: test_split(d, s) for s, d in paths.items()}
    evs = {"a": load_evaluator(evaluator_a), "b": load_evaluator(evaluator_b)}
    report: dict[str, Any] = {
        "target": str(pair.path),
        "kind": pair.kind,
        "model": {"name": pair.card.translation.model, "steps": pair.card.steps},
        "evaluators": {s: {"id": ev.id, "sha256": ev.card.weights_sha256} for s, ev in evs.items()},
        "data": {s: {"path": paths[s], "test_fingerprint": tests[s].fingerprint()} for s in paths},
        "seed": seed,
        "a2b": direction_report(pair.to_b, pair.to_a, tests["a"], tests["b"], paths["b"], evs["b"], n, seed),
        "b2a": direction_report(pair.to_a, pair.to_b, tests["b"], tests["a"], paths["a"], evs["a"], n, seed),
    }
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report, pair, tests


def translation_grid(pair: TranslationPair, tests: dict[str, ImageDataset], k: int = 10) -> np.ndarray:
    """One image: rows source | translated | reconstructed for k test images of A, then of B."""
    from gan_core.imaging import grid
    from training.families.cyclegan import translation_rows
    from training.trainer import preview_images

    a, b = (preview_images(tests[s], k).transpose(0, 2, 3, 1) for s in ("a", "b"))
    cells, cols = translation_rows(pair.to_b, pair.to_a, np.ascontiguousarray(a), np.ascontiguousarray(b))
    return grid(cells, cols)


def summary_line(report: dict[str, Any]) -> str:
    parts = []
    for d in ("a2b", "b2a"):
        r = report[d]
        floor = f" (floor {r['fid_floor']:.2f})" if r.get("fid_floor") else ""
        parts.append(
            f"{d}: labels kept {r['label_preservation']:.4f} (evaluator on real target {r['evaluator_accuracy_on_target']:.4f}), "
            f"fid {r['fid']:.2f}{floor}, cycle L1 {r['cycle_l1']:.4f}"
            + (f", change L1 {r['change_l1']:.4f}" if r["change_l1"] is not None else "")
        )
    return f"n={report['a2b']['n']}; " + "; ".join(parts)
