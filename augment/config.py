"""The job config: one pydantic model holding everything that decides the output bytes.

`job.json` in every output folder holds it; its hash tags every manifest line; a rerun on an
existing folder must resolve to the same config (else it is refused, naming the fields that
differ), and shards are only merged when their configs are equal. Sharding, batch size, threads
and the backend are not in it: they never change the bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gan_core.image_folder import UNLABELED  # noqa: F401  (the class name of unlabelled images, as datasets load them)
from gan_core.latents import MAX_SEED

FORMATS = ("folder", "npz", "idx")
KIND = "gan-service-augment/1"


class SourceData(BaseModel):
    """Translate mode: the dataset split whose images are translated, and its fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    split: str = "train"
    fingerprint: str
    n: int = Field(ge=1)


class JobConfig(BaseModel):
    """A fully resolved job: which images (index -> label plan), from which model, written how."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)

    kind: str = KIND
    model_name: str
    model_sha256: str = Field(description="sha256 of the .onnx file that makes the images")
    image_shape: tuple[int, int, int] = Field(description="C, H, W")
    conditional: bool
    class_names: list[str] = Field(
        description="name of each label id; ['unlabeled'] for unconditional models"
    )
    classes: list[int] = Field(description="label ids that get images, in plan order")
    counts: list[int] = Field(description="images per entry of `classes`")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    truncation: float | None = Field(None, gt=0)
    codes: dict[str, float] | None = Field(
        None, description="fixed values of the model's code / scalar inputs (others drawn from the seed)"
    )
    label_from: str | None = Field(
        None,
        description="'code:NAME': an unconditional model's categorical code gives the labels (--label-from)",
    )
    label_codes: dict[int, int] | None = Field(
        None, description="label id -> value of the label_from code (the card's measured code_classes map)"
    )
    format: Literal["folder", "npz", "idx"] = "folder"
    chunk_size: int = Field(1000, ge=1, le=1_000_000, description="images per resumable unit of work")
    source: SourceData | None = Field(
        None,
        description="translate mode: image i is the translation of this split's image i (its label kept)",
    )

    @property
    def total(self) -> int:
        return sum(self.counts)

    def fields(self) -> dict:
        """The config as JSON values; codes / label_from / source left at None are left out, so jobs
        without them keep the job.json bytes and hashes they always had."""
        unset = {k for k in ("codes", "label_from", "label_codes", "source") if getattr(self, k) is None}
        return self.model_dump(mode="json", exclude=unset or None)

    @property
    def labelled(self) -> bool:
        """Images carry real labels: the model's classes, or the classes of its label_from code."""
        return self.conditional or self.label_from is not None

    def image_codes(self, labels: np.ndarray) -> dict | None:
        """The fixed codes plus, for label_from jobs, the code value of each image's label."""
        if self.label_from is None:
            return self.codes
        lut = np.zeros(max(self.label_codes) + 1, np.int64)
        lut[list(self.label_codes)] = list(self.label_codes.values())
        return {**(self.codes or {}), self.label_from.removeprefix("code:"): lut[labels]}

    def canonical_json(self) -> str:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """16 hex digits of the sha256 of the canonical JSON: the job's identity."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def to_file_bytes(self) -> bytes:
        """job.json: the config plus its hash, stable bytes (sorted keys)."""
        doc = {"config": self.fields(), "config_hash": self.config_hash(), "total": self.total}
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_file_bytes(cls, data: bytes) -> JobConfig:
        return cls.model_validate(json.loads(data)["config"])

    def differences(self, other: JobConfig) -> list[str]:
        """'field: existing X, now Y' for every field that differs (self = existing)."""
        a, b = self.model_dump(mode="json"), other.model_dump(mode="json")
        return [f"{k}: existing {_short(a[k])}, now {_short(b[k])}" for k in a if a[k] != b[k]]


def _short(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 60 else s[:57] + "..."
