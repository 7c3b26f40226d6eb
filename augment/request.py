"""Turn what a user asks (per-class or total + distribution, class subset) into a JobConfig.

Every refusal is an AugmentError naming the flag and the limit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from augment.config import FORMATS, UNLABELED, JobConfig
from augment.errors import AugmentError
from augment.plan import largest_remainder
from gan_core.card import ModelCard
from gan_core.feeds import FeedError, build_feeds

MAX_TOTAL = 100_000_000


def class_id(card: ModelCard, token: str | int) -> int:
    """A class given by name (the card's class_names) or by label id."""
    t = str(token).strip()
    if t in card.class_names:
        return card.class_names.index(t)
    try:
        v = int(t)
    except ValueError:
        v = -1
    if 0 <= v < card.num_classes:
        return v
    raise AugmentError(
        f"classes: unknown class {t!r}; model {card.name!r} has classes {', '.join(card.class_names)}"
    )


def parse_classes(card: ModelCard, classes: str | list | None) -> list[int]:
    if classes is None:
        return list(range(card.num_classes))
    tokens = [t for t in classes.split(",")] if isinstance(classes, str) else list(classes)
    ids = [class_id(card, t) for t in tokens if str(t).strip()]
    if not ids:
        raise AugmentError("classes: the list is empty")
    if len(set(ids)) != len(ids):
        raise AugmentError(f"classes: a class is listed twice ({classes})")
    return ids


def dist_weights(card: ModelCard, spec: str | dict | list, data: str | None) -> dict[int, float]:
    """--class-dist: JSON {class: weight} or [w0, w1, ...], or 'data' = the class frequencies of --data."""
    if spec == "data":
        from gan_core.datasets import load_dataset  # numpy + Pillow only

        ds = load_dataset(data, "train")
        counts = ds.class_counts()
        return {class_id(card, name): float(counts[j]) for j, name in enumerate(ds.class_names)}
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise AugmentError(f"class_dist: not JSON and not 'data' ({e.msg} at char {e.pos})") from None
    if isinstance(spec, list):
        if len(spec) != card.num_classes:
            raise AugmentError(
                f"class_dist: a list needs one weight per class ({card.num_classes}), got {len(spec)}"
            )
        spec = {str(k): w for k, w in enumerate(spec)}
    if not isinstance(spec, dict) or not spec:
        raise AugmentError(
            'class_dist: expected a JSON object {"class": weight}, a list of weights, or "data"'
        )
    out: dict[int, float] = {}
    for k, w in spec.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
            raise AugmentError(f"class_dist: weight of class {k!r} must be a finite number >= 0, got {w!r}")
        out[class_id(card, k)] = float(w)
    return out


def check_format(card: ModelCard, format: str, num_classes: int) -> None:
    if format not in FORMATS:
        raise AugmentError(f"format: must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "idx" and card.image_shape[0] != 1:
        raise AugmentError(
            f"format: idx holds single-channel images; model {card.name!r} makes {card.image_shape[0]}-channel images (use folder or npz)"
        )
    if format == "idx" and num_classes > 256:
        raise AugmentError(
            f"format: idx stores labels as bytes (<= 256 classes); model {card.name!r} has {num_classes}"
        )


def resolve_job(
    card: ModelCard,
    model_sha256: str,
    *,
    per_class: int | None = None,
    total: int | None = None,
    class_dist: str | dict | list | None = None,
    classes: str | list | None = None,
    data: str | None = None,
    seed: int = 0,
    truncation: float | None = None,
    format: str = "folder",
    chunk_size: int = 1000,
    codes: dict | None = None,
    label_from: str | None = None,
) -> JobConfig:
    if (per_class is None) == (total is None):
        raise AugmentError("give exactly one of per_class (--per-class N) or total (--total N)")
    if per_class is not None and per_class < 1:
        raise AugmentError(f"per_class: must be >= 1, got {per_class}")
    if total is not None and total < 1:
        raise AugmentError(f"total: must be >= 1, got {total}")
    if class_dist is not None and per_class is not None:
        raise AugmentError("class_dist: goes with --total N, not with --per-class")
    check_format(card, format, card.num_classes)
    label_codes = None
    if label_from is not None:
        label_codes = code_label_map(card, label_from, codes)
    if not card.conditional and label_codes is None:
        if per_class is not None or classes is not None or class_dist is not None:
            raise AugmentError(
                f"model {card.name!r} is unconditional: its card has no classes to ask for; use --total N without --per-class, --classes or --class-dist"
            )
        ids, counts, names = [0], [total], [UNLABELED]
    else:
        names = list(card.class_names)
        ids = parse_classes(
            card, classes if classes is not None or label_codes is None else sorted(label_codes)
        )
        unmapped = [card.class_names[k] for k in ids if label_codes is not None and k not in label_codes]
        if unmapped:
            raise AugmentError(
                f"classes: no value of code {label_from.removeprefix('code:')!r} draws class {unmapped[0]!r} "
                f"(mapped: {', '.join(card.class_names[k] for k in sorted(label_codes))})"
            )
        if per_class is not None:
            counts = [per_class] * len(ids)
        else:
            weights = (
                dist_weights(card, class_dist, data) if class_dist is not None else {k: 1.0 for k in ids}
            )
            w = [weights.get(k, 0.0) for k in ids]
            if sum(w) <= 0:
                raise AugmentError("class_dist: gives zero weight to every requested class")
            counts = largest_remainder(w, total)
        ids, counts = [k for k, c in zip(ids, counts, strict=True) if c > 0], [c for c in counts if c > 0]
    if codes:
        check_codes(card, codes)
    if sum(counts) > MAX_TOTAL:
        raise AugmentError(f"total: must be <= {MAX_TOTAL:,} images per job, got {sum(counts):,}")
    return JobConfig(
        model_name=card.name, model_sha256=model_sha256, image_shape=tuple(card.image_shape), conditional=card.conditional,
        class_names=names, classes=ids, counts=counts, seed=seed, truncation=truncation, format=format, chunk_size=chunk_size,
        codes=dict(codes) if codes else None, label_from=label_from, label_codes=label_codes,
    )  # fmt: skip


def code_label_map(card: ModelCard, label_from: str, codes: dict | None) -> dict[int, int]:
    """--label-from code:NAME -> {label id: code value}, from the map `gan evaluate` measured into the card."""
    kind, _, name = label_from.partition(":")
    categorical = [i.name for i in card.inputs if i.kind == "categorical"]
    if kind != "code" or not name:
        raise AugmentError(
            f"label_from: expected code:NAME (a categorical code of the model), got {label_from!r}"
        )
    if name not in categorical:
        raise AugmentError(
            f"label_from: model {card.name!r} has no categorical code {name!r} (categorical codes: {', '.join(categorical) or 'none'})"
        )
    if card.conditional:
        raise AugmentError(
            f"label_from: model {card.name!r} is conditional; its images are labelled by their classes"
        )
    if codes and name in codes:
        raise AugmentError(f"code {name}: is the label_from code; its value comes from each image's label")
    measured = ((card.metrics or {}).get("code_classes") or {}).get(name)
    if not measured:
        raise AugmentError(
            f"label_from: the card of model {card.name!r} has no measured value -> class map for code {name!r}; "
            "run `gan evaluate MODEL.onnx` first (it stores metrics.code_classes in the card)"
        )
    out: dict[int, int] = {}
    for value, class_name in measured["classes"].items():
        if class_name not in card.class_names:
            raise AugmentError(
                f"label_from: the card maps code {name}={value} to class {class_name!r}, which is not one of its classes"
            )
        out[card.class_names.index(class_name)] = int(value)
    return out


def check_codes(card: ModelCard, codes: dict) -> None:
    """--code NAME=VALUE: only the card's categorical / continuous / scalar inputs, within their limits."""
    settable = {i.name for i in card.inputs if i.kind in ("categorical", "continuous", "scalar")}
    for name in codes:
        if name not in settable:
            raise AugmentError(
                f"code {name}: model {card.name!r} has no such code input (codes: {', '.join(sorted(settable)) or 'none'})"
            )
    try:
        build_feeds(card, 0, range(1), codes)
    except FeedError as e:
        raise AugmentError(f"code {e}") from None


def parse_code_args(items: list[str]) -> dict[str, float]:
    """['slant=0.5', 'digit=3'] -> {'slant': 0.5, 'digit': 3.0}."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise AugmentError(f"--code expects NAME=VALUE, got {item!r}")
        try:
            out[name] = float(raw)
        except ValueError:
            raise AugmentError(f"--code {name}: value must be a number, got {raw!r}") from None
    return out


def read_json_arg(value: str) -> str | dict | list:
    """--class-dist may also name a .json file."""
    p = Path(value)
    if value != "data" and p.suffix == ".json" and p.is_file():
        return json.loads(p.read_text())
    return value
