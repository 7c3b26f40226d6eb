"""The model card: one pydantic model that travels unchanged checkpoint -> ONNX -> service `/models`.

This module imports pydantic only (no torch, no numpy), because the service reads cards too.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

CARD_SCHEMA_VERSION = 1


class OutputSpec(BaseModel):
    """What the exported graph returns; the service relies on it to encode images."""

    model_config = ConfigDict(extra="forbid")

    name: str = "images"
    dtype: Literal["uint8", "float32"] = "uint8"
    layout: Literal["NHWC", "NCHW"] = "NHWC"
    range: tuple[float, float] = (0.0, 255.0)


class ExportInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exporter: str
    exporter_version: str
    opset: int
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    checkpoint_sha256: str
    parity_max_abs_diff: float | None = None
    output: OutputSpec = Field(default_factory=OutputSpec)
    # Added by issue 4 (export): how the file was checked against torch, and its quality vs fp32.
    parity_batches: list[int] = Field(default_factory=list, description="batch sizes compared with torch")
    float_parity_max_abs_diff: float | None = Field(None, description="max |ORT - torch| of the tanh output")
    fid: float | None = Field(None, description="FID of this file's images (variants; None = not measured)")
    fid_fp32: float | None = Field(None, description="FID of the fp32 export on the same latents")
    fid_n: int | None = Field(None, description="images behind fid / fid_fp32")


class ModelCard(BaseModel):
    """Everything a consumer needs to use a generator, and how it was made."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = CARD_SCHEMA_VERSION
    name: str
    version: str = "1"
    variant: str = Field(description="loss family, e.g. 'ns', 'wgan-gp', 'hinge'")
    arch: str = Field(description="network family, e.g. 'mlp', 'dcgan'")
    arch_params: dict[str, Any] = Field(default_factory=dict)
    latent_dim: int
    latent_distribution: Literal["normal"] = "normal"
    conditional: bool
    num_classes: int
    class_names: list[str]
    image_shape: tuple[int, int, int] = Field(description="C, H, W")
    dataset: dict[str, Any] = Field(default_factory=dict)
    steps: int = 0
    seed: int = 0
    train_seconds: float = 0.0
    versions: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    export: ExportInfo | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        return cls.model_validate(json.loads(text))


def parse_card(text: str | bytes) -> ModelCard:
    """A card from its JSON text."""
    return ModelCard.model_validate_json(text)
