"""Where a report goes: into the model card of the evaluated file, a JSON + grid PNG, one summary line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gan_core.fileio import atomic_write_bytes
from training.checkpoint import list_checkpoints
from training.evaluation.sampling import Samples

GRID_N = 100


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
    if "modes" in report:
        out["modes_covered"] = report["modes"]["covered"]
    if report.get("code_classes"):  # read by `gan augment --label-from code:NAME`
        out["code_classes"] = {
            name: {k: a[k] for k in ("classes", "accuracy", "purity", "n")}
            for name, a in report["code_classes"].items()
        }
    out["reference"] = {k: report["reference"][k] for k in ("split", "n", "fingerprint")}
    return {"source": "gan evaluate", **out}


def write_card_metrics(samples: Samples, report: dict[str, Any]) -> Path:
    """Set the card's `metrics` inside the evaluated checkpoint or .onnx file (temp file + rename)."""
    return write_metrics(samples.path, samples.card, card_metrics(report))


def write_metrics(path: Path, card, metrics: dict[str, Any]) -> Path:
    """`card` with `metrics`, written into the checkpoint or .onnx file at `path` (and the run's card.json
    when `path` is its newest checkpoint)."""
    from gan_core.card_files import write_card

    card = type(card).model_validate(card.model_copy(update={"metrics": metrics}).model_dump())
    write_card(path, card)
    if Path(path).suffix == ".safetensors":
        ckpts = list_checkpoints(Path(path).parent)
        if ckpts and ckpts[-1].resolve() == Path(path).resolve():  # card.json describes the newest checkpoint
            write_card(Path(path).parent / "card.json", card)
    return Path(path)


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
    if "classifier_score" in report:
        parts.append(f"classifier score {report['classifier_score']:.3f}")
    parts += [f"precision {report['precision']:.3f}", f"recall {report['recall']:.3f}",
              f"density {report['density']:.3f}", f"coverage {report['coverage']:.3f}"]  # fmt: skip
    if "modes" in report:
        parts.append(f"modes {report['modes']['covered']}/{report['modes']['num_classes']}")
    if "class_accuracy" in report:
        parts.append(f"class accuracy {report['class_accuracy']:.4f}")
    for name, a in report.get("code_classes", {}).items():
        parts.append(f"code {name} as classifier {a['accuracy']:.4f} (purity {a['purity']:.4f})")
    if "cas" in report:
        parts.append(f"CAS {report['cas']['accuracy']:.4f}")
    if report.get("needs_labels"):
        parts.append(f"not measured ({', '.join(report['needs_labels'])}: need labelled data)")
    bound = report.get("evaluator_data") or {}
    if bound.get("matches_reference") is False:
        parts.append(f"NOTE: evaluator bound to other data ({bound.get('name')}, {bound.get('fingerprint')})")
    return "; ".join(parts)
