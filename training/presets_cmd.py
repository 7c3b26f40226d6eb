"""List the presets `gan train --preset NAME` takes: family, loss, data and note, one line each.

Each is a file in training/presets/; a copy of one, edited, trains with `gan train --preset FILE.yaml`.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """No options: the list is short."""


def rows() -> list[tuple[str, str, str, str, str]]:
    """(name, family, loss, data, note) of every preset, from its resolved config (what a run records)."""
    from training.config import preset
    from training.presets import PRESET_DIR, PRESETS, note
    from training.registry import get_family

    out = []
    for name in sorted(PRESETS):
        cfg = preset(name).resolved()
        family = get_family(cfg.family)
        images = "labelled images" if cfg.conditional else "images"
        data = cfg.data or (f"any {images}" if cfg.size_from_data else "MNIST")
        if family.needs_data_b:
            data += " + --data-b"
        loss = family.own_loss or cfg.loss
        out.append((name, cfg.family, loss, data, note(PRESET_DIR / f"{name}.yaml")))
    return out


def run(args: argparse.Namespace) -> int:
    table = [("NAME", "FAMILY", "LOSS", "DATA", "NOTE"), *rows()]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    return 0
