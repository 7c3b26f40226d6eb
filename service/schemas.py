"""Request and response bodies of the HTTP API (pydantic; they are also the OpenAPI document).

Static rules (types, >= 0, enums) live here. Limits that depend on settings (GAN_MAX_COUNT...)
and on the model (latent size, class names) are checked by service.generate, which can name them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from gan_core.card import InputSpec, ModelCard
from gan_core.latents import MAX_SEED

MAX_INDEX = 2**62  # start_index + count stays far inside int64
MIN_TRUNCATION = 0.1  # below this, redrawing |z| > t (gan_core.latents) takes unboundedly long

Label = int | str
Labels = Label | list[Label] | None
Latent = list[float]
CodeValue = int | float | list[int | float]
CODES_DESCRIPTION = (
    "values of the model's other inputs (its card's categorical / continuous / scalar inputs, e.g. "
    "InfoGAN codes or truncation_psi): per name one value for every image or a list of one per image; "
    "inputs left out are drawn from the seed or take their default"
)


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
    codes: dict[str, CodeValue] | None = Field(None, description=CODES_DESCRIPTION)
    noise_mode: Literal["seeded", "const", "none"] = Field(
        "seeded",
        description="models with noise inputs (StyleGAN): maps drawn from the seed per image, the same "
        "maps for every image (const), or zeros (none)",
    )
    format: Literal["png", "grid", "npz"] = Field(
        "png", description="png: JSON with base64 PNGs; grid: one PNG; npz: images/labels/indices/seed arrays"
    )


class LatentsRequest(_Body):
    latents: list[Latent] = Field(
        min_length=1, description="[N][latent_dim] vectors (N at most GAN_MAX_LATENTS)"
    )
    labels: Labels = Field(None, description="as for /generate; indices are 0..N-1")
    codes: dict[str, CodeValue] | None = Field(None, description=CODES_DESCRIPTION)
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
    codes: dict[str, CodeValue] | None = Field(None, description=CODES_DESCRIPTION)
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


# ---- request schemas derived from the served models' cards ------------------------------------
CODE_KINDS = ("categorical", "continuous", "scalar")


def _code_type(specs: list[InputSpec]):
    """One value or a list of values, bounded by the card(s); looser when models disagree."""
    kinds = {s.kind for s in specs}
    if kinds == {"categorical"}:
        hi = max(s.num_choices for s in specs) - 1
        one = Annotated[int, Field(ge=0, le=hi)]
    else:
        ranges = [s.range for s in specs if s.range is not None]
        bounds = {}
        if ranges and len(ranges) == len(specs):
            bounds = {"ge": min(r[0] for r in ranges), "le": max(r[1] for r in ranges)}
        one = Annotated[float, Field(**bounds)]
    return one | list[one]


def codes_model(cards: list[ModelCard]) -> type[BaseModel] | None:
    """A pydantic model with one optional field per code / scalar input of the served models."""
    by_name: dict[str, list[tuple[str, InputSpec]]] = {}
    for card in cards:
        for spec in card.inputs:
            if spec.kind in CODE_KINDS:
                by_name.setdefault(spec.name, []).append((card.name, spec))
    if not by_name:
        return None
    fields: dict[str, Any] = {}
    for name, owners in sorted(by_name.items()):
        specs = [s for _, s in owners]
        about = "; ".join(
            f"{model}: {s.kind}"
            + (f" 0..{s.num_choices - 1}" if s.num_choices else "")
            + (f" in [{s.range[0]:g}, {s.range[1]:g}]" if s.range else "")
            + (f", default {s.default:g}" if s.default is not None else "")
            + (f" ({s.description})" if s.description else "")
            for model, s in owners
        )
        fields[name] = (_code_type(specs) | None, Field(None, description=about))
    return create_model("Codes", __config__=ConfigDict(extra="forbid"), **fields)


def request_models(cards: list[ModelCard]) -> dict[str, type[BaseModel]]:
    """The request bodies with `codes` typed from the cards (what /docs.json shows and the guard checks)."""
    codes = codes_model(cards)
    if codes is None:
        return {"generate": GenerateRequest, "latents": LatentsRequest, "interpolate": InterpolateRequest}
    field = (codes | None, Field(None, description=CODES_DESCRIPTION))
    return {
        "generate": create_model("GenerateRequest", __base__=GenerateRequest, codes=field),
        "latents": create_model("LatentsRequest", __base__=LatentsRequest, codes=field),
        "interpolate": create_model("InterpolateRequest", __base__=InterpolateRequest, codes=field),
    }
