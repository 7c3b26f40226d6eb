"""Pictures of the family table's runs: every run exported to ONNX (parity-checked), then drawn from
its ONNX file exactly as the service would draw it.

- `OUT/families.png`: one band of 2 rows x 10 images per generative run, in table order (conditional
  models: classes 0..9 for seeds 0 and 1; unconditional ones: images 0..19 of seed 0);
- `OUT/stylegan-mix.png`: the StyleGAN style-mixing grid of POST /mix (row seeds' coarse styles x
  column seeds' fine styles), through service.mixing;
- `OUT/infogan-traverse.png`: each InfoGAN code swept at fixed seeds, through POST /traverse's code;
- translation runs: `gan evaluate-translation --out` writes its source | translated | reconstructed grid.

    python benchmarks/family_gallery.py --runs runs/table --out docs/families
    python benchmarks/family_gallery.py --models service/models --out docs/families   # the bundled models

`--models DIR` draws the exported models of a models folder (`gan bundle`'s, `DIR/<preset>.onnx`), best
FID first, instead of exporting a table's runs, so the pictures show what `make serve` serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from gan_core.card_files import read_card
from gan_core.feeds import build_feeds
from gan_core.fileio import atomic_write_bytes
from gan_core.imaging import grid, png_bytes, uniform_cells
from gan_core.runtime import GeneratorSession, open_generator


def export(run: Path, onnx: Path) -> bool:
    if onnx.is_file():
        return True
    done = subprocess.run([sys.executable, "-m", "gan", "export", str(run), "--out", str(onnx), "--threads", "1"],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        print(f"{run.name}: export failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return done.returncode == 0


def band(sess: GeneratorSession) -> np.ndarray:
    """2 x 10 images of one model: classes 0..9 of seeds 0 and 1, or images 0..19 of seed 0."""
    card = sess.card
    if card.conditional:
        feeds = [build_feeds(card, s, range(10)) for s in (0, 1)]  # labels i % classes: 0..9
        return np.concatenate([sess.run(f) for f in feeds])
    return sess.run(build_feeds(card, 0, range(20)))


async def service_grid(models: Path, route: str, body: dict) -> bytes:
    """The bytes POST `route` answers with `body`, from the service's own code (no HTTP server)."""
    from service.core import ServingCore
    from service.settings import Settings

    core = ServingCore(Settings(models_dir=models, ort_threads=1))
    try:
        if route == "/mix":
            from service.mixing import MixRequest, mix

            return (await mix(core, MixRequest(**body))).body
        from service.schemas import TraverseRequest
        from service.traverse import encode_traversal, traverse_code

        req = TraverseRequest(**body)
        return (await encode_traversal(await traverse_code(core, req), "grid")).body
    finally:
        core.close()


def table_models(runs: Path) -> list[tuple[str, Path]]:
    """(preset, exported ONNX) of each generative run in a family table's folder, exported on first use."""
    out = []
    for r in json.loads((runs / "table.json").read_text()):
        run = runs / r["preset"]
        if "error" in r or not (run / "card.json").is_file() or r.get("translation"):
            continue  # translation runs: drawn by gan evaluate-translation --out
        onnx = runs / "onnx" / f"{r['preset']}.onnx"
        if export(run, onnx):
            out.append((r["preset"], onnx))
    return out


def folder_models(models: Path) -> list[tuple[str, Path]]:
    """(preset, ONNX) of each mnist-* preset with a generating model in a models folder, best card FID
    first (then the ones without one, by name), so the bands read as a ranking."""
    from training.presets import PRESETS

    found = []
    for name in sorted(p for p in PRESETS if p.startswith("mnist-")):
        onnx = models / f"{name}.onnx"
        if onnx.is_file():
            card = read_card(onnx)
            if not (card.translation or card.repair):
                fid = (card.metrics or {}).get("fid")
                found.append((fid is None, fid or 0.0, name, onnx))
    return [(name, onnx) for *_, name, onnx in sorted(found)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--runs", default="runs/table", help="a family table's folder (family_table.py --out)")
    src.add_argument("--models", help="a models folder of exported models instead (gan bundle --out)")
    ap.add_argument("--out", default="docs/families")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.models:
        models, scratch = folder_models(Path(args.models)), out / ".single"
    else:
        models, scratch = table_models(Path(args.runs)), Path(args.runs) / "onnx"
    bands = []
    for preset, onnx in models:
        sess = open_generator(onnx, threads=1)
        bands.append(band(sess))
        card = sess.card
        single = scratch / preset  # a models folder holding this one model, for the service's routes
        single.mkdir(parents=True, exist_ok=True)
        if not (single / onnx.name).exists():
            (single / onnx.name).symlink_to(onnx.resolve())
        names = {i.name for i in card.inputs}
        if {"z_mix", "mix_layer"} <= names:
            body = {"row_seeds": [1, 2, 3, 4], "col_seeds": [5, 6, 7, 8, 9], "labels": 3}
            atomic_write_bytes(out / "stylegan-mix.png", asyncio.run(service_grid(single, "/mix", body)))
        codes = [i.name for i in card.inputs if i.kind in ("categorical", "continuous")]
        for code in codes:
            body = {"code": code, "seeds": list(range(6))}
            png = asyncio.run(service_grid(single, "/traverse", body))
            atomic_write_bytes(out / f"{preset.removeprefix('mnist-')}-traverse-{code}.png", png)
    if args.models:
        shutil.rmtree(scratch, ignore_errors=True)
    if not bands:
        raise SystemExit(f"no generating model in {args.models or args.runs}")
    cells = uniform_cells(bands)
    atomic_write_bytes(out / "families.png", png_bytes(grid(cells, 10), scale=2, compress_level=9))
    print("families.png bands, top to bottom:", ", ".join(p for p, _ in models))


if __name__ == "__main__":
    main()
