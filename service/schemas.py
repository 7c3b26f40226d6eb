"""Request and response bodies of the HTTP API (pydantic; they are also the OpenAPI document).

Static rules (types, >= 0, enums) live here. Limits that depend on settings (GAN_MAX_COUNT...)
and on the model (latent size, class names) are checked by service.generate, which can name them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gan_core.card import ModelCard
from gan_core.latents import MAX_SEED

MAX_INDEX = 2**62  # start_index + count stays far inside int64
MIN_TRUNCATION = 0.1  # below this, redrawing |z| > t (gan_core.latents) takes unboundedly long

Label = int | str
Labels = Label | list[Label] | None
Latent = list[float]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, protected_namespaces=())

    model: str | None = Field(
        None, description="model name (GET /models); default: the service's default model"
    )


class GenerateRequest(_Body):
    count: int = Field(1, ge=1, description="images to generate (at most GAN_MAX_COUNT)")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="random when absent; always echoed")
    start_index: int = Field(
        0, ge=0, le=MAX_INDEX, description="images start_index .. start_index+count-1 of the seed"
    )
    labels: Labels = Field(
        None,
        description="conditional models: one class (index or name), a list of `count` classes, or "
        "'balanced' (image i gets class i % num_classes, the default)",
    )
    truncation: float | None = Field(
        None, ge=MIN_TRUNCATION, description="redraw latent entries with |z| > truncation"
    )
    format: Literal["png", "grid", "npz"] = Field(
        "png", description="png: JSON with base64 PNGs; grid: one PNG; npz: images/labels/indices/seed arrays"
    )


class LatentsRequest(_Body):
    latents: list[Latent] = Field(
        min_length=1, description="[N][latent_dim] vectors (N at most GAN_MAX_LATENTS)"
    )
    labels: Labels = Field(None, description="as for /generate; indices are 0..N-1")
    format: Literal["png", "grid", "npz"] = "png"


class InterpolateRequest(_Body):
    seeds: list[int] | None = Field(
        None, description="[seed_a, seed_b]; endpoints are image `indices` of each seed"
    )
    indices: list[int] = Field([0, 0], description="image index within each seed")
    latents: list[Latent] | None = Field(None, description="[z_a, z_b] instead of seeds")
    label: Label | None = Field(None, description="class of every frame (conditional models; required there)")
    truncation: float | None = Field(None, ge=MIN_TRUNCATION, description="for seed endpoints")
    steps: int = Field(8, ge=2, description="frames including both ends (at most GAN_MAX_STEPS)")
    method: Literal["slerp", "lerp"] = "slerp"
    format: Literal["grid", "frames", "npz"] = Field(
        "grid", description="grid: one PNG; frames: JSON list of PNGs"
    )


class ModelsRequest(BaseModel):
    """GET /models takes no body."""

    model_config = ConfigDict(extra="forbid")


class ImageOut(BaseModel):
    index: int
    label: int | None
    png: str = Field(description="base64 PNG")


class ImagesResponse(BaseModel):
    """JSON answer of format png (and interpolate frames)."""

    model: str
    seed: int | None
    start_index: int
    count: int
    truncation: float | None
    images: list[ImageOut]


class ModelEntry(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    file: str
    sha256: str
    provider: str
    threads: int
    default: bool
    card: ModelCard


class ModelsResponse(BaseModel):
    default: str
    models: list[ModelEntry]


class ErrorResponse(BaseModel):
    error: str = Field(description="one line naming the field and the limit")
