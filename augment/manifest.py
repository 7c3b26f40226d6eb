"""Manifest lines: one JSON object per image saying where it is and exactly how it was made."""

from __future__ import annotations

import json

import numpy as np

from augment.config import JobConfig


def manifest_lines(cfg: JobConfig, indices: range, labels: np.ndarray, files: list[str] | None) -> list[str]:
    """`file` (folder format) or `index` (row of the npz / IDX arrays), label, class, seed and seed
    index (translate mode: the source image's index instead), model sha256 and the job config hash."""
    # Built from pre-encoded pieces (same bytes as json.dumps of the record, keys in this order):
    # a 10k-image chunk would otherwise spend most of its bookkeeping time in json.dumps.
    enc = json.dumps
    tail = f',"model_sha256":{enc(cfg.model_sha256)},"job":{enc(cfg.config_hash())}}}'
    origin = '"source_index":' if cfg.source is not None else f'"seed":{cfg.seed},"seed_index":'
    middle = {
        label: f',"label":{label},"class":{enc(name)},{origin}' for label, name in enumerate(cfg.class_names)
    }
    if files is None:
        return [f'{{"index":{i}{middle[int(lab)]}{i}{tail}' for i, lab in zip(indices, labels, strict=True)]
    return [
        f'{{"file":{enc(f)}{middle[int(lab)]}{i}{tail}'
        for f, i, lab in zip(files, indices, labels, strict=True)
    ]
