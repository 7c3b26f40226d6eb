"""The model card: one pydantic model that travels unchanged checkpoint -> ONNX -> service `/models`.

Schema version 2 declares the generator's inputs and outputs (`inputs`, `outputs`): export names
the ONNX inputs from them, the feed builder (gan_core.feeds) fills them from a seed, and the
service, the augmentation job, evaluation and the playground derive their controls from them.
`latent_dim` and `conditional` are derived from `inputs`. Version 1 cards (a `z` latent plus an
optional `labels` input, implied by `latent_dim` / `conditional`) are read and upgraded in memory.

This module imports pydantic only (no torch, no numpy), because the service reads cards too.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

CARD_SCHEMA_VERSION = 2

InputKind = Literal["latent", "class", "categorical", "continuous", "scalar", "noise", "image"]
# kind -> what the feed builder does when a request gives no value
#   latent      drawn from the seed (distribution normal), per image: the generator's noise vector
#   class       'balanced' labels i % num_classes (names: card.class_names)
#   categorical drawn from the seed, uniform over 0..num_choices-1 (an InfoGAN code)
#   continuous  drawn from the seed, `distribution` over `range` (an InfoGAN code)
#   scalar      `default` for every image (a control such as truncation_psi)
#   noise       per-pixel noise maps (StyleGAN): seeded / const / none
#   image       no default: the request must give the images (image-to-image models)
SEEDED_KINDS = ("latent", "categorical", "continuous", "noise")


class InputSpec(BaseModel):
    """One input of the exported graph. Shapes are per image: the graph's batch axis N comes first."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the ONNX input name")
    kind: InputKind
    dtype: Literal["float32", "int64", "uint8"]
    shape: list[int] = Field(default_factory=list, description="per-image shape; [] = one value per image")
    distribution: Literal["normal", "uniform"] | None = Field(None, description="how seeded kinds are drawn")
    num_choices: int | None = Field(None, ge=1, description="categorical: values 0..num_choices-1")
    range: tuple[float, float] | None = Field(None, description="continuous / scalar: allowed [low, high]")
    default: float | None = Field(None, description="scalar: value when the request gives none")
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        need = {
            "latent": ("float32", "distribution"),
            "class": ("int64", None),
            "categorical": ("int64", "num_choices"),
            "continuous": ("float32", "range"),
            "scalar": ("float32", "default"),
            "noise": ("float32", None),
            "image": ("uint8", None),
        }[self.kind]
        if self.dtype != need[0]:
            raise ValueError(
                f"input {self.name!r}: a {self.kind} input has dtype {need[0]}, not {self.dtype}"
            )
        if need[1] and getattr(self, need[1]) is None:
            raise ValueError(f"input {self.name!r}: a {self.kind} input needs {need[1]}")
        if self.range is not None and not self.range[0] <= self.range[1]:
            raise ValueError(f"input {self.name!r}: range {list(self.range)} has low > high")
        if self.kind in ("class", "categorical", "continuous", "scalar") and self.shape:
            raise ValueError(f"input {self.name!r}: a {self.kind} input holds one value per image (shape [])")
        return self


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
    parity_batches: list[int] = Field(default_factory=list, description="batch sizes compared with torch")
    parity_sizes: list[tuple[int, int]] = Field(
        default_factory=list, description="input H, W compared with torch (dynamic-size image models)"
    )
    float_parity_max_abs_diff: float | None = Field(None, description="max |ORT - torch| of the tanh output")
    fid: float | None = Field(None, description="FID of this file's images (variants; None = not measured)")
    fid_fp32: float | None = Field(None, description="FID of the fp32 export on the same latents")
    fid_n: int | None = Field(None, description="images behind fid / fid_fp32")


DIRECTIONS = ("a2b", "b2a")


class Domain(BaseModel):
    """One side of an image-to-image model: its images and the data they came from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="'a' or 'b'")
    image_shape: tuple[int, int, int] = Field(description="C, H, W")
    class_names: list[str] = Field(default_factory=list)
    dataset: dict[str, Any] = Field(default_factory=dict, description="name, source, n, fingerprint")


class Translation(BaseModel):
    """What an image-to-image file does: one direction of a translation model between two domains."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="the translation model's name, shared by its directions (POST /translate)")
    direction: Literal["a2b", "b2a"]
    source: Domain = Field(description="the domain of the input images")
    target: Domain = Field(description="the domain of the output images")


class Repair(BaseModel):
    """What a paired image-to-image file does: repair (POST /restore) or super-resolution (POST /upscale)."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["restore", "upscale"]
    corruption: str = Field(description="the damage it was trained to undo (training/corruption.py spec)")
    scale: int = Field(1, ge=1, description="output side / input side (1 for restore)")
    mask: Literal["box", "random"] | None = Field(
        None, description="fills in masked pixels: its 'mask' input (255 = lost); None = takes no mask"
    )
    mask_box: float = Field(0.5, description="side fraction of the centre box used when no mask is given")
    any_size: bool = Field(True, description="fully convolutional: inputs of other sizes run too")
    multiple: int = Field(1, ge=1, description="input height and width must be multiples of this")


def mask_input(h: int, w: int, name: str = "mask") -> InputSpec:
    """The lost pixels of a fill-in model's image: uint8 [H, W, 1], 255 (> 127) = lost, 0 = keep."""
    return InputSpec(name=name, kind="image", dtype="uint8", shape=[h, w, 1],
                     description="uint8 mask [H, W, 1]: > 127 = lost pixel to fill in, else kept")  # fmt: skip


def latent_input(dim: int, name: str = "z") -> InputSpec:
    return InputSpec(name=name, kind="latent", dtype="float32", shape=[dim], distribution="normal",
                     description="N(0, 1) noise vector drawn from the seed")  # fmt: skip


def class_input(name: str = "labels") -> InputSpec:
    return InputSpec(name=name, kind="class", dtype="int64", description="class index (card.class_names)")


def image_input(shape: tuple[int, int, int], name: str = "image") -> InputSpec:
    """uint8 images of shape (C, H, W), fed as [N, H, W, C] like the graph's output."""
    c, h, w = shape
    return InputSpec(name=name, kind="image", dtype="uint8", shape=[h, w, c],
                     description="uint8 pixels [H, W, C] of the source domain")  # fmt: skip


def _upgrade_v1(data: dict) -> dict:
    """A version 1 card's fields as version 2: z (+ labels) inputs, the export's output spec."""
    data = dict(data)
    dim, conditional = data.pop("latent_dim"), data.pop("conditional")
    data.pop("latent_distribution", None)
    data["inputs"] = [latent_input(dim).model_dump()] + ([class_input().model_dump()] if conditional else [])
    export = data.get("export")
    if isinstance(export, dict) and "output" in export:
        export = dict(export)
        data["outputs"] = [export.pop("output")]
        data["export"] = export
    data["schema_version"] = CARD_SCHEMA_VERSION
    return data


class ModelCard(BaseModel):
    """Everything a consumer needs to use a generator, and how it was made."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: int = CARD_SCHEMA_VERSION
    name: str
    version: str = "1"
    variant: str = Field(description="family / loss, e.g. 'ns', 'wgan-gp', 'hinge'")
    arch: str = Field(description="network family, e.g. 'mlp', 'dcgan'")
    arch_params: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(min_length=1, description="the generator's graph inputs, in order")
    outputs: list[OutputSpec] = Field(default_factory=lambda: [OutputSpec()])
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
    translation: Translation | None = Field(None, description="image-to-image models: direction and domains")
    repair: Repair | None = Field(
        None, description="restoration / super-resolution models: task, damage, scale"
    )

    @model_validator(mode="before")
    @classmethod
    def _read_older(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("schema_version", 1) == 1 and "inputs" not in data:
            return _upgrade_v1(data)
        # latent_dim / conditional are derived (serialized for readers, never stored as fields)
        return {k: v for k, v in data.items() if k not in ("latent_dim", "conditional")}

    @model_validator(mode="after")
    def _unique_inputs(self) -> ModelCard:
        names = [i.name for i in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"inputs: names must be unique, {dupes} repeated")
        if sum(i.kind == "class" for i in self.inputs) > 1:
            raise ValueError("inputs: at most one class input")
        return self

    # ---- derived from the inputs -----------------------------------------------------------
    @computed_field
    @property
    def latent_dim(self) -> int:
        """Size of the first latent input (0 for a model without one, e.g. image-to-image)."""
        lat = self.input_of_kind("latent")
        return lat.shape[0] if lat is not None and lat.shape else 0

    @computed_field
    @property
    def conditional(self) -> bool:
        """True when the generator takes a class label."""
        return self.input_of_kind("class") is not None

    def input_of_kind(self, kind: str) -> InputSpec | None:
        return next((i for i in self.inputs if i.kind == kind), None)

    def input(self, name: str) -> InputSpec:
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(name)

    @property
    def output(self) -> OutputSpec:
        return self.outputs[0]

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        return cls.model_validate(json.loads(text))


def parse_card(text: str | bytes) -> ModelCard:
    """A card from its JSON text (version 1 or 2)."""
    return ModelCard.model_validate_json(text)
