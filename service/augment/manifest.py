"""Manifest lines: one JSON object per image saying where it is and exactly how it was made."""

from __future__ import annotations

import json

import numpy as np

from service.augment.config import JobConfig


def manifest_lines(cfg: JobConfig, indices: range, labels: np.ndarray, files: list[str] | None) -> list[str]:
    """`file` (folder format) or `index` (row of the npz / IDX arrays), label, class, seed, seed index,
    model sha256 and the job config hash."""
    job = cfg.config_hash()
    lines = []
    for k, i in enumerate(indices):
        label = int(labels[k])
        where = {"file": files[k]} if files is not None else {"index": i}
        rec = {**where, "label": label, "class": cfg.class_names[label], "seed": cfg.seed, "seed_index": i,
               "model_sha256": cfg.model_sha256, "job": job}  # fmt: skip
        lines.append(json.dumps(rec, separators=(",", ":")))
    return lines
