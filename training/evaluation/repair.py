"""Measuring a repair or super-resolution model (card.repair) against the classical baselines.

n clean test images (a seeded subset of the data's test split) are damaged by the model's own declared
corruption with a fixed seed, then repaired by the model and by the baselines on the very same inputs:

- upscaling: nearest and bicubic interpolation (scikit-image's resize, orders 0 and 3);
- filling in: scikit-image's biharmonic inpainting of the masked pixels;
- noise / blur / JPEG: a Gaussian filter (sigma 1) and a 3x3 median filter (scipy.ndimage);
- restoring anything: the damaged input itself (what doing nothing scores).

Each method gets PSNR and SSIM against the clean images (scikit-image, data range 255, averaged over
images), FID of its outputs against the clean test split in the evaluator's features, and the
evaluator's class accuracy on its outputs against the clean images' labels (labels kept); the
report also holds the FID floor (real training images against the same reference).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_core.card import ModelCard
from gan_core.imaging import float_to_uint8
from training import metrics as M
from training.corruption import Corruption, parse
from training.evaluation.classifier import EvaluationError
from training.evaluation.reference import fid_floor, real_reference, reference_source
from training.evaluation.sampling import open_onnx, subset_indices, target_kind
from training.evaluation.store import evaluation_splits, resolve_evaluator

Repairer = Callable[[np.ndarray, np.ndarray | None], np.ndarray]  # uint8 NHWC (+ mask) -> uint8 NHWC
BATCH = 500


def open_repairer(target: str | os.PathLike) -> tuple[ModelCard, Repairer, Path]:
    """(card, the model as a uint8 NHWC function, path) of a repair checkpoint, run folder or .onnx."""
    p = Path(target)
    kind = target_kind(p)
    if kind == "checkpoint":
        from training.checkpoint import build_generator, load_checkpoint

        ckpt = load_checkpoint(p)
        card, g = ckpt.card, build_generator(ckpt)

        @torch.no_grad()
        def run(images, masks):
            feeds = [torch.from_numpy(images)] + ([] if masks is None else [torch.from_numpy(masks)])
            return float_to_uint8(g(*feeds).float().numpy())

        path = ckpt.path
    elif kind == "onnx":
        sess = open_onnx(p)
        card = sess.card

        def run(images, masks):
            feeds = {card.inputs[0].name: images}
            if masks is not None:
                feeds[card.inputs[1].name] = masks
            return sess.run(feeds)

        path = p
    else:
        raise EvaluationError(f"{p}: a repair model is a checkpoint, run folder or .onnx")
    if card.repair is None:
        raise EvaluationError(f"{p}: {card.name!r} is not a repair or super-resolution model")

    def batched(images, masks):
        parts = [
            run(images[a : a + BATCH], None if masks is None else masks[a : a + BATCH])
            for a in range(0, len(images), BATCH)
        ]
        return np.concatenate(parts)

    return card, batched, path


def open_card(path: str | os.PathLike) -> tuple[Path, ModelCard]:
    """(path, card) of an evaluated repair model file (a checkpoint file or an .onnx)."""
    p = Path(path)
    if p.suffix == ".onnx":
        from gan_core.card_files import read_card

        return p, read_card(p)
    from training.checkpoint import load_checkpoint

    return p, load_checkpoint(p).card


def is_repair_target(target: str | os.PathLike) -> bool:
    """Whether `target` is a repair model (a checkpoint / run folder / .onnx whose card has `repair`)."""
    p = Path(target)
    try:
        kind = target_kind(p)
    except EvaluationError:
        return False
    if kind == "onnx":
        from gan_core.card_files import read_card

        try:
            return read_card(p).repair is not None
        except Exception:  # not a readable model file: the generic path says why
            return False
    if kind == "checkpoint":
        from training.checkpoint import load_checkpoint

        return load_checkpoint(p).card.repair is not None
    return False


def damage(clean: np.ndarray, corruption: Corruption, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(damaged uint8 NHWC, mask uint8 NHW1 or None) of clean uint8 NCHW images, seeded."""
    x = torch.from_numpy(clean).float() / 127.5 - 1
    damaged, mask = corruption.apply(x, torch.Generator().manual_seed(seed))
    m = None if mask is None else (mask.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    return float_to_uint8(damaged.numpy()), m


def baselines(corruption: Corruption, damaged: np.ndarray, mask: np.ndarray | None) -> dict[str, np.ndarray]:
    """The classical methods on the same damaged inputs (uint8 NHWC each, at the output's size)."""
    from scipy import ndimage
    from skimage.restoration import inpaint_biharmonic
    from skimage.transform import resize

    s = corruption.scale
    if s > 1:
        n, h, w, c = damaged.shape

        def up(order):
            out = resize(damaged.astype(np.float64), (n, h * s, w * s, c), order=order, preserve_range=True,
                         anti_aliasing=False)  # fmt: skip
            return np.clip(np.rint(out), 0, 255).astype(np.uint8)

        return {"nearest": up(0), "bicubic": up(3)}
    out = {"input": damaged}
    if mask is not None:
        channel = -1 if damaged.shape[-1] > 1 else None
        painted = [
            inpaint_biharmonic(im[..., 0] if channel is None else im, m[..., 0] > 127, channel_axis=channel)
            for im, m in zip(damaged.astype(np.float64) / 255, mask, strict=True)
        ]
        out["inpaint (biharmonic)"] = (
            np.clip(np.rint(np.stack(painted) * 255), 0, 255).astype(np.uint8).reshape(damaged.shape)
        )
    if any(p.kind in ("noise", "blur", "jpeg") for p in corruption.parts):
        out["gaussian filter"] = ndimage.gaussian_filter(damaged, sigma=(0, 1, 1, 0))
        out["median filter"] = ndimage.median_filter(damaged, size=(1, 3, 3, 1))
    return out


def fidelity(clean: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of uint8 NHWC outputs against the clean images (scikit-image)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    psnr, ssim = [], []
    for a, b in zip(clean, out, strict=True):
        mse = np.mean((a.astype(np.float64) - b) ** 2)
        psnr.append(100.0 if mse == 0 else peak_signal_noise_ratio(a, b, data_range=255))
        ssim.append(structural_similarity(a, b, data_range=255, channel_axis=-1, win_size=7))
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def evaluate_repair(
    target: str | os.PathLike, data=None, n: int = 2000, seed: int = 0, evaluator: str | None = "auto"
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(report, the images each method made plus 'damaged' and 'clean', uint8 NHWC) of a repair model."""
    card, model, path = open_repairer(target)
    r = card.repair
    corruption = parse(r.corruption)
    splits = evaluation_splits(*reference_source(card, data, path))
    ev = resolve_evaluator(evaluator, splits)
    test = splits.test
    if tuple(test.image_shape) != tuple(card.image_shape):
        raise EvaluationError(
            f"{test.source}: test images are {list(test.image_shape)} (C, H, W); model {card.name!r} "
            f"restores {list(card.image_shape)}"
        )
    idx = subset_indices(len(test), n, seed)
    clean, labels = test.images[idx], test.labels[idx]
    damaged, mask = damage(clean, corruption, seed)
    outputs = {"gan": model(damaged, mask), **baselines(corruption, damaged, mask)}
    ref = real_reference(ev, test, "test", len(idx), seed)
    truth = clean.transpose(0, 2, 3, 1)
    methods = {}
    for name, out in outputs.items():
        nchw = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        feats, logits = ev.features_and_logits(nchw)
        row = fidelity(truth, out) if out.shape == truth.shape else {"psnr": None, "ssim": None}
        row["fid"] = M.frechet_distance(ref.mu, ref.cov, *M.gaussian_stats(feats))
        row["class_accuracy"] = float((logits.argmax(1) == labels).mean()) if ev.measures_classes else None
        methods[name] = row
    report = {
        "target": str(path),
        "model": {"name": card.name, "steps": card.steps, "variant": card.variant},
        "task": r.task,
        "corruption": r.corruption,
        "scale": r.scale,
        "n": int(len(idx)),
        "seed": seed,
        "evaluator": ev.id,
        "reference": ref.info,
        "fid_floor": fid_floor(ev, splits.train, len(idx), seed, ref),
        "methods": methods,
    }
    return report, {**outputs, "damaged": damaged, "clean": truth}


def repair_card_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """What a repair model's card keeps of its report: the model's figures, the baselines', the reference."""
    gan = report["methods"]["gan"]
    return {
        "source": "gan evaluate", "evaluator": report["evaluator"], "n": report["n"], "fid": gan["fid"],
        "fid_floor": report["fid_floor"], "class_accuracy": gan["class_accuracy"], "psnr": gan["psnr"],
        "ssim": gan["ssim"], "baselines": {k: v for k, v in report["methods"].items() if k != "gan"},
        "reference": {k: report["reference"][k] for k in ("split", "n", "fingerprint")},
    }  # fmt: skip


def repair_summary(report: dict[str, Any]) -> str:
    """One line per method: PSNR, SSIM, FID, labels kept."""

    def f(x, spec):
        return "-" if x is None else format(x, spec)

    lines = [f"{report['model']['name']} ({report['task']}, {report['corruption']}), n={report['n']}, "
             f"evaluator {report['evaluator']}, FID floor {f(report['fid_floor'], '.2f')}"]  # fmt: skip
    for name, m in report["methods"].items():
        lines.append(
            f"  {name:<22} PSNR {f(m['psnr'], '6.2f')} dB  SSIM {f(m['ssim'], '.3f')}  FID {f(m['fid'], '8.2f')}  "
            f"labels kept {f(m['class_accuracy'] and 100 * m['class_accuracy'], '.1f')}%"
        )
    return "\n".join(lines)


def comparison_grid(
    images: dict[str, np.ndarray], k: int = 8, before_gan: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray, int, list[str]]:
    """Rows damaged (nearest-upsampled) | each baseline | `before_gan` rows | GAN | truth for the first k
    images: (cells, columns, row names). The 'input' baseline is the damaged row itself."""
    from gan_core.imaging import uniform_cells

    truth = images["clean"][:k]
    s = truth.shape[1] // images["damaged"].shape[1]
    rows = {"damaged": images["damaged"][:k].repeat(s, axis=1).repeat(s, axis=2)}
    rows.update({n: v[:k] for n, v in images.items() if n not in ("gan", "clean", "damaged", "input")})
    rows.update({n: v[:k] for n, v in (before_gan or {}).items()})
    rows.update({"GAN": images["gan"][:k], "truth": truth})
    return uniform_cells(list(rows.values())), len(truth), list(rows)
