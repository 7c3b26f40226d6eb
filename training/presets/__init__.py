"""The presets: one YAML file a named run config in this folder, checked by TrainConfig when read.

A preset file lists the TrainConfig fields it sets (every other field keeps the model's default)
under at most one comment line, its note. A user's own preset is a copy of one, passed by path
(`gan train --preset my.yaml`); its name is the file's stem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gan_core.errors import UserError, one_line
from training.config import TrainConfig, current_names

PRESET_DIR = Path(__file__).parent
SUFFIXES = (".yaml", ".yml")


def read(path: str | Path) -> dict[str, Any]:
    """A preset file's settings as TrainConfig validates them; any fault is one line naming the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:  # missing, a folder, not text
        raise UserError(
            f"{path}: cannot read the preset file ({getattr(e, 'strerror', None) or e})"
        ) from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise UserError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or one_line(e)}") from None
    raw = {} if raw is None else raw  # an empty file: every default
    if not isinstance(raw, dict):
        raise UserError(
            f"{path}: a preset is a mapping of config fields (field: value), not {type(raw).__name__}"
        )
    try:
        cfg = TrainConfig.model_validate({"name": path.stem, **raw})
    except ValidationError as e:
        raise UserError(f"{path}: {one_line(e)}") from None
    # the validated values (a tuple for betas), and only the fields the file sets: a field it leaves
    # out stays unset, which fit-to-data reads (an unset latent_dim is sized from the data)
    return cfg.model_dump(include=set(current_names(raw)))


def note(path: str | Path) -> str:
    """The file's one comment line at its top ('' without one): what the preset is, where it came from."""
    with open(path, encoding="utf-8") as f:
        first = f.readline().strip()
    return first.lstrip("#").strip() if first.startswith("#") else ""


def is_path(name: str) -> bool:
    """Whether --preset names a file rather than a registered preset."""
    return name.endswith(SUFFIXES) or "/" in name or "\\" in name


def settings(name: str) -> tuple[str, dict[str, Any]]:
    """(run name, settings) of a registered preset or of a preset file's path."""
    if name in PRESETS:
        return name, PRESETS[name]
    if is_path(name):
        return Path(name).stem, read(name)
    raise KeyError(
        f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))} (or a preset file's path, NAME.yaml)"
    )


PRESETS: dict[str, dict[str, Any]] = {p.stem: read(p) for p in sorted(PRESET_DIR.glob("*.yaml"))}
