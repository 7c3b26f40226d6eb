"""Style mixing grids for StyleGAN models (POST /mix), the classic figure of Karras et al. 2019.

Row i, column j of the grid is image 0 of row seed i with the fine styles (style layers >=
`crossover`) of image 0 of column seed j; the top row shows the column seeds' own images and the
left column the row seeds', each exactly what /generate {seed, count 1} returns with the same
truncation_psi, noise_mode and label. A mixed cell keeps its row seed's noise maps.

A model supports mixing when its card declares a `z_mix` latent and a `mix_layer` scalar (whose
range ends at the number of style layers); the cells are computed in the graph by feeding the
column seed's z as z_mix and the crossover as mix_layer, through the model's request batcher.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field

from gan_core.feeds import NOISE_MODES, FeedError, build_feeds, concat_feeds
from gan_core.imaging import grid, png_bytes
from gan_core.latents import MAX_SEED
from service.encoding import Reply
from service.inputs import ClientError, labels_for
from service.schemas import Label, _Body

if TYPE_CHECKING:
    from service.core import ServingCore
    from service.model_set import Model

MAX_MIX_SEEDS = 16  # per axis: a 17 x 17 grid at most (288 images)
MIX_INPUTS = ("z_mix", "mix_layer")
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class MixRequest(_Body):
    row_seeds: list[Seed] = Field(
        min_length=1,
        max_length=MAX_MIX_SEEDS,
        description="seeds giving each row's coarse styles (image 0 of each)",
    )
    col_seeds: list[Seed] = Field(
        min_length=1, max_length=MAX_MIX_SEEDS, description="seeds giving each column's fine styles"
    )
    crossover: int | None = Field(
        None,
        ge=0,
        description="first style layer taken from the column seed (0..num_ws); default num_ws // 2",
    )
    truncation_psi: float | None = Field(
        None, description="truncation in W (the card's range); default the card's"
    )
    noise_mode: Literal[NOISE_MODES] = Field(
        "seeded", description="noise maps: seeded (from the row seed), const, none"
    )
    labels: Label | None = Field(
        None, description="class of every image (index or name); required for conditional models"
    )
    format: Literal["grid", "npz"] = Field(
        "grid",
        description="grid: one PNG; npz: images [rows+1, cols+1, H, W, C] (corner blank), seeds, crossover",
    )


class MixResponse(BaseModel):
    """The answer is a file: image/png (format grid) or application/octet-stream (format npz)."""


def style_layers(model: Model) -> int:
    """The number of style layers of a mixing-capable model; ClientError for any other model."""
    names = {i.name for i in model.card.inputs}
    if not set(MIX_INPUTS) <= names:
        raise ClientError(f"model: {model.name!r} has no style mixing inputs ({', '.join(MIX_INPUTS)})")
    return int(model.card.input("mix_layer").range[1])


def mixing_feeds(model: Model, req: MixRequest) -> tuple[dict[str, np.ndarray], int]:
    """Feeds of the whole grid in row-major order (header row without its blank corner), and the crossover."""
    card = model.card
    num_ws = style_layers(model)
    crossover = num_ws // 2 if req.crossover is None else req.crossover
    if crossover > num_ws:
        raise ClientError(f"crossover: must be in 0..{num_ws} (the model's style layers), got {crossover}")
    if card.conditional and req.labels is None:
        raise ClientError(f"labels: required for conditional model {model.name!r} (a class index or name)")
    values: dict = {}
    label = labels_for(model, req.labels, np.zeros(1, np.int64))  # None for an unconditional model
    if label is not None:
        values[card.input_of_kind("class").name] = label[0]
    if req.truncation_psi is not None:
        values["truncation_psi"] = req.truncation_psi
    z_name = card.input_of_kind("latent").name

    def feeds(seed: int, n: int, **mixing) -> dict[str, np.ndarray]:
        try:
            return build_feeds(card, seed, [0] * n, {**values, **mixing}, noise_mode=req.noise_mode)
        except FeedError as e:
            raise ClientError(str(e)) from None

    col_z = np.stack([feeds(s, 1)[z_name][0] for s in req.col_seeds])
    parts = [feeds(s, 1) for s in req.col_seeds]
    for s in req.row_seeds:
        parts.append(feeds(s, 1))
        parts.append(feeds(s, len(req.col_seeds), z_mix=col_z, mix_layer=float(crossover)))
    return concat_feeds(parts), crossover


def grid_cells(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Run output (header row, then per row: its own image + its mixed cells) -> [rows+1, cols+1, H, W, C]."""
    cells = np.zeros((rows + 1, cols + 1, *images.shape[1:]), np.uint8)
    cells[0, 1:] = images[:cols]
    cells[1:] = images[cols:].reshape(rows, cols + 1, *images.shape[1:])
    return cells


async def mix(core: ServingCore, req: MixRequest) -> Reply:
    """The mixing grid of a request as PNG or npz (same request, same bytes)."""
    model = core.model(req.model)
    rows, cols = len(req.row_seeds), len(req.col_seeds)
    n, limit = rows * cols + rows + cols, core.settings.max_count
    if n > limit:
        raise ClientError(
            f"row_seeds: a {rows} x {cols} grid makes {n} images, more than {limit} (GAN_MAX_COUNT)"
        )
    core.admit(model, n)
    feeds, crossover = mixing_feeds(model, req)
    cells = grid_cells(await core.run(model, feeds), rows, cols)
    headers = {"X-Model": model.name}
    if req.format == "npz":
        buf = io.BytesIO()
        np.savez(buf, images=cells, row_seeds=np.array(req.row_seeds, np.int64),
                 col_seeds=np.array(req.col_seeds, np.int64), crossover=np.int64(crossover))  # fmt: skip
        return Reply(buf.getvalue(), "application/octet-stream", headers)
    flat = cells.reshape(-1, *cells.shape[2:])
    return Reply(png_bytes(grid(flat, cols + 1)), "image/png", headers)
