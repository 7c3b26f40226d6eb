"""A models folder holding one exported model per generative preset: the family the service ships.

Each run (RUNS/<preset>, trained and evaluated with `gan evaluate RUN --n 10000`) is exported from
its newest checkpoint through the ordinary exporter, fp16 first (its parity and FID gates decide)
and fp32 when the gate refuses, as <preset>.onnx + <preset>.card.json + <preset>.grid.png (the run's
samples.png). Everything is exported into a private staging folder first; only when every export
passed and the folder's total stays under the size limit are the files moved in, each by temp file
+ rename, so a refusal or a crash leaves the folder's served files as they were.

The folder's default model (gan_core.default_model's file) is kept: its files are not replaced
unless asked, and a folder that had one model and no default file gets that model named as default,
so adding the family never changes what a request without `model` gets.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError
from export.onnx_export import DEFAULT_FID_BUDGET, DEFAULT_FID_N, export_checkpoint
from gan_core.card import ModelCard
from gan_core.card_files import CardFileError, card_into_bytes, read_card
from gan_core.default_model import read_default, write_default
from gan_core.errors import one_line
from gan_core.fileio import atomic_write_bytes

DEFAULT_LIMIT_MB = 30.0
MB = 1_000_000
# the files of one bundled model, beside <preset>.onnx; the service serves the .onnx, the rest document it
CARD, GRID, CURVES = ".card.json", ".grid.png", ".curves.png"


class BundleError(ExportError):
    """A bundle that cannot be made (missing or unevaluated run, over the size limit); one line."""


@dataclass(frozen=True)
class Run:
    """One run to bundle: its folder, newest (evaluated) checkpoint and family."""

    preset: str
    folder: Path
    checkpoint: Path
    family: str


@dataclass(frozen=True)
class Row:
    """One model of the bundled folder, as the table shows it."""

    name: str
    family: str
    precision: str
    onnx_bytes: int
    total_bytes: int  # .onnx + card + grid (+ curves)
    fid: float | None
    fid_floor: float | None
    note: str  # why fp32 when fp16 was refused; "kept" for files the bundle did not write
    seconds: float | None = None


def generative_presets() -> list[str]:
    """Every registered mnist-* preset (the family table's rows; the others are their data-agnostic
    recipes) whose family makes images from a seed: a family registered with its preset is bundled."""
    from training.config import preset
    from training.presets import PRESETS
    from training.registry import get_family

    return [
        n for n in sorted(PRESETS) if n.startswith("mnist-") and not get_family(preset(n).family).takes_images
    ]


def fid_of(card: ModelCard) -> float | None:
    fid = (card.metrics or {}).get("fid")
    return float(fid) if isinstance(fid, int | float) else None


def check_run(runs: Path, preset: str) -> Run | str:
    """The run of `preset`, or one line saying why it cannot be bundled (missing, not evaluated)."""
    from training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

    folder = runs / preset
    if not folder.is_dir():
        return f"{folder}: no such run folder"
    ckpts = list_checkpoints(folder)
    if not ckpts:
        return f"{folder}: no checkpoint (ckpt-*.safetensors) in it"
    try:
        ckpt = load_checkpoint(ckpts[-1])
    except (CheckpointError, CardFileError) as e:
        return one_line(e)
    card = ckpt.card
    if card.input_of_kind("image") is not None:
        raise BundleError(
            f"{folder}: {card.name} maps images to images; the bundle holds models that generate from a seed"
        )
    if fid_of(card) is None:
        return f"{folder}: not evaluated (the card of {ckpts[-1].name} has no FID; run gan evaluate {folder} --n 10000)"
    return Run(preset, folder, ckpts[-1], ckpt.config.family)


def export_preferring_fp16(
    run: Run, out: Path, fid_budget: float, fid_n: int, threads: int | None
) -> tuple[ModelCard, str]:
    """The fp16 export when its gates pass, else the fp32 one; (card, why fp16 was refused or '')."""
    try:
        return export_checkpoint(
            run.checkpoint, out, "fp16", fid_budget=fid_budget, fid_n=fid_n, threads=threads
        ), ""
    except ExportError as e:
        why = one_line(e)
    return export_checkpoint(run.checkpoint, out, "fp32", threads=threads), why


def folder_default(out: Path, asked: str | None) -> str | None:
    """The bundle's default model: asked for, else the folder's default file, else its only model."""
    if asked:
        return asked
    named = read_default(out)
    if named is not None:
        return named
    models = sorted(out.glob("*.onnx"))
    return read_card(models[0]).name if len(models) == 1 else None


def model_files(folder: Path, stem: str) -> list[Path]:
    return [p for p in (folder / f"{stem}{s}" for s in (".onnx", CARD, GRID, CURVES)) if p.is_file()]


def shipped(folder: Path) -> list[Path]:
    """What the folder ships: its visible files (hidden temp files are nobody's)."""
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in shipped(folder))


def row_of(folder: Path, stem: str, family: str, note: str, seconds: float | None = None) -> Row:
    card = read_card(folder / f"{stem}.onnx")
    floor = (card.metrics or {}).get("fid_floor")
    return Row(
        stem, family, card.export.precision if card.export else "?",
        (folder / f"{stem}.onnx").stat().st_size, sum(p.stat().st_size for p in model_files(folder, stem)),
        fid_of(card), floor if isinstance(floor, int | float) else None, note, seconds,
    )  # fmt: skip


def over_limit(staged: Path, out: Path, limit_mb: float) -> str | None:
    """One line when the folder, with the staged files in place of any of the same name, passes the limit."""
    replaced = {p.name for p in staged.iterdir()}
    kept = sum(p.stat().st_size for p in shipped(out) if p.name not in replaced) if out.is_dir() else 0
    total = kept + folder_bytes(staged)
    if total <= limit_mb * MB:
        return None
    largest = sorted(staged.glob("*.onnx"), key=lambda p: -p.stat().st_size)[:3]
    sizes = ", ".join(f"{p.stem} {p.stat().st_size / MB:.1f} MB" for p in largest)
    return (
        f"limit-mb: the bundle would hold {total / MB:.1f} MB in {out}, over the limit of {limit_mb:g} MB "
        f"(largest new: {sizes}); nothing was written"
    )


def install(staged: Path, out: Path) -> None:
    """Move the staged files into `out`, each by temp file + rename, a model's .onnx after its card and grid
    (the service serves the .onnx; its documents are there by then)."""
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted(staged.iterdir(), key=lambda p: (p.suffix == ".onnx", p.name)):
        atomic_write_bytes(out / p.name, p.read_bytes())


def plan(
    runs: Path, out: Path, presets: list[str], default: str | None, replace_default: bool, skip_missing: bool
) -> tuple[list[Run], list[str]]:
    """(the runs to export, one line for each preset left out): the default's preset is left out unless
    replace_default; a missing or unevaluated run is a BundleError naming every such run, unless skip_missing."""
    skipped: list[str] = []
    if default in presets and not replace_default and (out / f"{default}.onnx").exists():
        presets = [p for p in presets if p != default]
        skipped.append(f"{default}: the default model, kept as it is (--replace-default re-exports it)")
    checked = [check_run(runs, p) for p in presets]
    problems = [c for c in checked if isinstance(c, str)]
    if problems and not skip_missing:
        raise BundleError("; ".join(problems) + " (--skip-missing bundles the others)")
    todo = [c for c in checked if isinstance(c, Run)]
    if not todo:
        raise BundleError("nothing to bundle: " + ("; ".join(skipped + problems) or "no presets"))
    return todo, skipped + problems


def stage(
    todo: list[Run], staged: Path, default: str | None, fid_budget: float, fid_n: int, threads: int | None,
    progress: bool,
) -> dict[str, Row]:  # fmt: skip
    """Export each run with its card and grid (and the default's curves) into `staged`; their table rows."""
    rows: dict[str, Row] = {}
    bar = _bar(todo, progress)
    for run in bar:
        if progress:
            bar.set_postfix_str(run.preset)
        t0 = time.perf_counter()
        card, why = export_preferring_fp16(run, staged / f"{run.preset}.onnx", fid_budget, fid_n, threads)
        (staged / f"{run.preset}{CARD}").write_bytes(card_into_bytes(b"", "json", card))
        extras = {GRID: "samples.png"} | ({CURVES: "curves.png"} if default == card.name else {})
        for suffix, name in extras.items():
            if (run.folder / name).is_file():
                shutil.copyfile(run.folder / name, staged / f"{run.preset}{suffix}")
        family = f"{run.family} / {card.variant}"
        rows[run.preset] = row_of(staged, run.preset, family, why, time.perf_counter() - t0)
    return rows


def bundle(
    runs: str | os.PathLike,
    out: str | os.PathLike,
    presets: list[str] | None = None,
    *,
    limit_mb: float = DEFAULT_LIMIT_MB,
    skip_missing: bool = False,
    default: str | None = None,
    replace_default: bool = False,
    fid_budget: float = DEFAULT_FID_BUDGET,
    fid_n: int = DEFAULT_FID_N,
    threads: int | None = None,
    progress: bool = True,
) -> tuple[list[Row], list[str]]:
    """Export RUNS/<preset> for each preset into `out`; returns (every model of the folder, best FID first;
    one line for each preset left out).

    Raises BundleError, before writing anything, for a missing or unevaluated run (unless skip_missing),
    a bundle over `limit_mb` and a default that is not among its models.
    """
    runs, out = Path(runs), Path(out)
    if limit_mb <= 0:
        raise BundleError(f"limit-mb: must be > 0, got {limit_mb:g}")
    if not runs.is_dir():
        raise BundleError(f"{runs}: no such folder of runs")
    default = folder_default(out, default) if out.is_dir() else default
    todo, skipped = plan(
        runs,
        out,
        list(dict.fromkeys(presets or generative_presets())),
        default,
        replace_default,
        skip_missing,
    )
    with tempfile.TemporaryDirectory(prefix="gan-bundle-") as tmp:
        staged = Path(tmp)
        rows = stage(todo, staged, default, fid_budget, fid_n, threads, progress)
        refusal = over_limit(staged, out, limit_mb)
        if refusal:
            raise BundleError(refusal)
        kept = [p for p in sorted(out.glob("*.onnx")) if p.stem not in rows] if out.is_dir() else []
        names = {read_card(p).name for p in kept} | {read_card(staged / f"{r}.onnx").name for r in rows}
        if default is not None and default not in names:
            raise BundleError(
                f"default: {default!r} is not a model of the bundle ({', '.join(sorted(names))})"
            )
        install(staged, out)
    if default is not None:
        write_default(out, default)
    for path in kept:
        card = read_card(path)
        family = _family_of(runs / path.stem) or "-"  # "-": its run is not among RUNS
        note = "kept" + (" (default)" if card.name == default else "")
        rows[path.stem] = row_of(out, path.stem, f"{family} / {card.variant}", note)
    return sorted(rows.values(), key=lambda r: (r.fid is None, r.fid or 0.0, r.name)), skipped


def _family_of(run: Path) -> str | None:
    """The family that trained a kept model, when its run is there to say."""
    from training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

    ckpts = list_checkpoints(run)
    try:
        return load_checkpoint(ckpts[-1]).config.family if ckpts else None
    except (CheckpointError, CardFileError):
        return None


def _bar(items: list, progress: bool):
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="bundle", unit="model")
