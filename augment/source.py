"""Translate mode: a dataset's images through an image-to-image model, each keeping its label.

Image i of the output is the translation of image i of the source split, so the plan is the
dataset's own label order (not the interleaved plan of generate mode); the job config records the
source's path, split and fingerprint, and every read of it (each run, resume, finalize, merge)
checks that fingerprint, so a dataset changed under a half-done job is refused, not mixed in.
"""

from __future__ import annotations

import numpy as np

from augment.config import JobConfig, SourceData
from augment.errors import AugmentError
from augment.plan import plan_labels
from augment.request import check_format
from gan_core.card import ModelCard
from gan_core.datasets import ImageDataset, load_dataset
from gan_core.errors import UserError


def open_source(source: SourceData) -> ImageDataset:
    """The job's source split, read now and refused when its fingerprint changed."""
    try:
        ds = load_dataset(source.path, source.split)
    except UserError as e:
        raise AugmentError(f"translate: {e}") from None
    if ds.fingerprint() != source.fingerprint:
        raise AugmentError(
            f"translate: {source.path} ({source.split}) changed since the job started "
            f"(fingerprint {ds.fingerprint()}, job has {source.fingerprint}); use a new --out"
        )
    return ds


def job_labels(cfg: JobConfig, source: ImageDataset | None = None) -> np.ndarray:
    """int64 label of every output index: the plan's (generate mode) or the source's (translate mode)."""
    if cfg.source is None:
        return plan_labels(cfg.classes, cfg.counts)
    return (source or open_source(cfg.source)).labels


def resolve_translate_job(
    card: ModelCard, model_sha256: str, data: str, *, split: str = "train", format: str = "folder",
    chunk_size: int = 1000,
) -> JobConfig:  # fmt: skip
    """The job that translates every image of `data`'s split with the model of `card`."""
    image = card.input_of_kind("image")
    if image is None or (card.translation is None and card.repair is None):
        raise AugmentError(
            f"translate: model {card.name!r} does not translate images (it has no image input)"
        )
    try:
        ds = load_dataset(data, split)
    except UserError as e:
        raise AugmentError(f"translate: {e}") from None
    if card.repair is not None:
        out_shape = repaired_shape(card, ds)
    else:
        want = tuple(card.translation.source.image_shape)
        if ds.image_shape != want:
            raise AugmentError(
                f"translate: {ds.source} holds {list(ds.image_shape)} (C, H, W) images; model {card.name!r} "
                f"translates {list(want)} ({card.translation.direction}, domain {card.translation.source.name})"
            )
        out_shape = tuple(card.image_shape)
    counts = ds.class_counts()
    classes = [k for k in range(ds.num_classes) if counts[k] > 0]
    source = SourceData(path=str(data), split=split, fingerprint=ds.fingerprint(), n=len(ds))
    check_format(card, format, ds.num_classes)
    return JobConfig(
        model_name=card.name, model_sha256=model_sha256, image_shape=out_shape, conditional=False,
        class_names=list(ds.class_names), classes=classes, counts=[int(counts[k]) for k in classes],
        format=format, chunk_size=chunk_size, source=source,
    )  # fmt: skip


def repaired_shape(card: ModelCard, ds: ImageDataset) -> tuple[int, int, int]:
    """(C, H, W) of a repair model's outputs for the data's images; refused when the model cannot take them."""
    r = card.repair
    h0, w0, c0 = card.inputs[0].shape
    c, h, w = ds.image_shape
    fits = c == c0 and ((h, w) == (h0, w0) or (r.any_size and h % r.multiple == 0 and w % r.multiple == 0))
    if not fits:
        sizes = f"sides that are multiples of {r.multiple}" if r.any_size else f"{h0}x{w0} pixels"
        raise AugmentError(
            f"translate: {ds.source} holds {list(ds.image_shape)} (C, H, W) images; model {card.name!r} "
            f"takes {c0}-channel images of {sizes}"
        )
    return c, h * r.scale, w * r.scale


class TranslateBackend:
    """The generate() of a job in translate mode: indices of the source split through the model."""

    def __init__(self, backend, source: ImageDataset):
        self.backend = backend
        self.images = source.images  # [N, C, H, W]
        self.card = backend.card
        self.description = getattr(backend, "description", "")

    def generate(self, seed, indices: range, labels, truncation, codes=None) -> np.ndarray:
        batch = np.ascontiguousarray(self.images[indices.start : indices.stop].transpose(0, 2, 3, 1))
        return self.backend.translate(batch)

    def close(self) -> None:
        self.backend.close()
