"""Request and response bodies of the HTTP API (pydantic; they are also the OpenAPI document).

Static rules (types, >= 0, enums) live here. Limits that depend on settings (GAN_MAX_COUNT...)
and on the model (latent size, class names) are checked by service.core, which can name them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from gan_core.card import InputSpec, ModelCard
from gan_core.latents import MAX_SEED

MAX_INDEX = 2**62  # start_index + count stays far inside int64
MIN_TRUNCATION = 0.1  # below this, redrawing |z| > t (gan_core.latents) takes unboundedly long
MAX_TRUNCATION = 10.0  # above ~6 no N(0, 1) draw is ever redrawn; larger values only hide typos
MAX_NAME = 128  # model and class names; longer strings are echoed in errors, so they are cut here

Label = int | Annotated[str, Field(max_length=MAX_NAME)]
Labels = Label | list[Label] | None
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Latent = list[float]
CodeValue = int | float | list[int | float]
CODES_DESCRIPTION = (
    "values of the model's other inputs (its card's categorical / continuous / scalar inputs, e.g. "
    "InfoGAN codes or truncation_psi): per name one value for every image or a list of one per image; "
    "inputs left out are drawn from the seed or take their default"
)


class _Body(BaseModel):
    # strict: "3", 2.0 and true are not integers, true is not a class
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True, protected_namespaces=())

    model: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAME,
        description="model name (GET /models); default: the service's default model",
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
        None,
        ge=MIN_TRUNCATION,
        le=MAX_TRUNCATION,
        description="redraw latent entries with |z| > truncation (0.1 .. 10)",
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
    seeds: list[Seed] | None = Field(
        None,
        description="[seed_a, seed_b]; endpoints are image `indices` of each seed",
        json_schema_extra={"minItems": 2, "maxItems": 2},
    )
    indices: list[Seed] = Field(
        [0, 0], description="image index within each seed", json_schema_extra={"minItems": 2, "maxItems": 2}
    )
    latents: list[Latent] | None = Field(
        None, description="[z_a, z_b] instead of seeds", json_schema_extra={"minItems": 2, "maxItems": 2}
    )
    label: Label | None = Field(None, description="class of every frame (conditional models; required there)")
    truncation: float | None = Field(
        None, ge=MIN_TRUNCATION, le=MAX_TRUNCATION, description="for seed endpoints (0.1 .. 10)"
    )
    steps: int = Field(8, ge=2, description="frames including both ends (at most GAN_MAX_STEPS)")
    method: Literal["slerp", "lerp"] = "slerp"
    codes: dict[str, CodeValue] | None = Field(None, description=CODES_DESCRIPTION)
    format: Literal["grid", "frames", "npz"] = Field(
        "grid", description="grid: one PNG; frames: JSON list of PNGs"
    )


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class TraverseRequest(_Body):
    code: str = Field(
        description="the code to sweep: one of the model's categorical / continuous / scalar inputs (its card)"
    )
    seeds: list[Seed] = Field(
        [0],
        min_length=1,
        description="one row per seed: image `index` of each seed (rows x columns at most GAN_MAX_COUNT)",
    )
    index: int = Field(0, ge=0, le=MAX_INDEX, description="image index within each seed")
    steps: int | None = Field(
        None,
        ge=2,
        description="continuous / scalar codes: columns evenly spaced over the code's range, both ends "
        "included (default 8; at most GAN_MAX_STEPS); a categorical code takes all its values",
    )
    values: list[float] | None = Field(
        None,
        min_length=1,
        description="the code's values, one per column, instead of `steps` (at most GAN_MAX_STEPS)",
    )
    labels: Labels = Field(
        None,
        description="conditional models: one class for every row, a list of one per seed, or 'balanced' "
        "(default: the class /generate gives image `index`)",
    )
    truncation: float | None = Field(
        None,
        ge=MIN_TRUNCATION,
        le=MAX_TRUNCATION,
        description="redraw latent entries with |z| > truncation (0.1 .. 10)",
    )
    codes: dict[str, CodeValue] | None = Field(
        None,
        description="fixed values of the model's other codes (one value for all images); the rest are "
        "drawn from each row's seed, so a row shares its noise and codes and only the swept code changes",
    )
    format: Literal["grid", "npz"] = Field(
        "grid",
        description="grid: one PNG, rows = seeds, columns = code values; npz: images (row-major), "
        "seeds, values, labels, code",
    )


class ModelsRequest(BaseModel):
    """GET /models takes no body (POST: an empty object)."""

    model_config = ConfigDict(extra="forbid", strict=True)


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
    does: str = Field(description="what the model makes and the route that serves it")
    card: ModelCard = Field(description="the card as exported, without the training data's location")


class FailedEntry(BaseModel):
    file: str = Field(description="file name in GAN_MODELS_DIR")
    error: str = Field(description="why it is not served")


class ModelsResponse(BaseModel):
    default: str
    models: list[ModelEntry]
    failed: list[FailedEntry] = Field(description="files of the models folder that are not served")


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
    bases = {"generate": GenerateRequest, "latents": LatentsRequest, "interpolate": InterpolateRequest,
             "traverse": TraverseRequest}  # fmt: skip
    if codes is None:
        return bases
    field = (codes | None, Field(None, description=CODES_DESCRIPTION))
    return {key: create_model(base.__name__, __base__=base, codes=field) for key, base in bases.items()}
