"""The torch-free serving core: request -> feeds -> batched ORT calls -> encoded answer.

No HTTP here, so behaviour (reproducibility, limits, labels, formats) is testable directly;
service.app only maps `Reply` and `ClientError` onto HTTP. Loading models (service.model_set),
turning fields into feeds (service.inputs), latent paths (service.interpolation) and encoding
answers (service.encoding) live in their own modules.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gan_core.latents import MAX_SEED
from service.batcher import DeadlineExceeded, Overloaded
from service.bulk import BulkWork
from service.encoding import ENCODE_INLINE, Images, Reply, encode, grid_image, npz_bytes
from service.inputs import ClientError, code_values, feeds_for, labels_for, latent_matrix
from service.interpolation import path
from service.limits import over_limit
from service.model_set import Model, ModelScan, load_models, models_doc, scan_models
from service.schemas import GenerateRequest, InterpolateRequest, LatentsRequest
from service.settings import Settings

__all__ = ["ClientError", "ServingCore", "Images", "Reply", "grid_image", "npz_bytes", "path"]


def _busy(e: Overloaded | DeadlineExceeded) -> ClientError:
    """A full queue is a 503 with the batcher's Retry-After estimate; a missed deadline a 504."""
    if isinstance(e, Overloaded):
        return ClientError(str(e), 503, {"Retry-After": str(e.retry_after)})
    return ClientError(str(e), 504)


class ServingCore:
    """Every usable *.onnx in settings.models_dir, opened, warmed up and ready to answer requests."""

    def __init__(self, settings: Settings, scan: ModelScan | None = None):
        self.settings = settings
        self.scan = scan or scan_models(settings)
        self.default = self.scan.default
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gan-ort")
        self.models = load_models(settings, self.executor, self.scan)
        self.bulk = BulkWork(settings.bulk_processes)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.bulk.close()

    def model(self, name: str | None) -> Model:
        """A generative model by name; translation (image-input) models are served by POST /translate."""
        name = name or self.default
        if name not in self.models:
            raise ClientError(f"model: unknown model {name!r}; known: {', '.join(self.models)}", 404)
        card = self.models[name].card
        if card.repair is not None:
            raise ClientError(f"model: {name!r} {card.repair.task}s images; use POST /{card.repair.task}")
        if card.input_of_kind("image") is not None:
            raise ClientError(f"model: {name!r} translates images; use POST /translate")
        return self.models[name]

    def models_doc(self) -> dict:
        return models_doc(self.models, self.default, self.scan.failed)

    def _limit(self, field_name: str, value: int, limit_field: str) -> None:
        error = over_limit(field_name, value, limit_field, self.settings)
        if error is not None:
            raise error

    def admit(self, model: Model, n: int) -> None:
        """Refuse early, before any work, when the model's queue has no room for n images."""
        try:
            model.batcher.admit(n)
        except Overloaded as e:
            raise _busy(e) from None

    async def run(self, model: Model, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """uint8 images of `feeds` through the model's batcher (every endpoint, e.g. service.mixing)."""
        try:
            return await model.batcher(feeds)
        except (Overloaded, DeadlineExceeded) as e:
            raise _busy(e) from None

    async def generate(self, req: GenerateRequest) -> Images:
        model = self.model(req.model)
        self._limit("count", req.count, "max_count")
        self.admit(model, req.count)
        seed = secrets.randbelow(MAX_SEED + 1) if req.seed is None else req.seed
        indices = np.arange(req.start_index, req.start_index + req.count, dtype=np.int64)
        labels = labels_for(model, req.labels, indices)
        idx = range(req.start_index, req.start_index + req.count)
        # a plain dict, checked here: the typed Codes model of service.schemas cannot be pickled
        # to the bulk process
        codes = code_values(model, req.codes)
        args = (model, seed, idx, labels, codes, req.truncation, None, req.noise_mode)
        if req.count <= ENCODE_INLINE:
            feeds = feeds_for(*args)
        else:  # ~30 ms of Python per 1,024 images: off the event loop and its GIL (service.bulk)
            feeds = await self.bulk.feeds(*args)
        images = await self.run(model, feeds)
        return Images(model, images, labels, indices, seed, req.truncation)

    async def from_latents(self, req: LatentsRequest) -> Images:
        model = self.model(req.model)
        self._limit("latents", len(req.latents), "max_latents")
        self.admit(model, len(req.latents))
        z = latent_matrix(model, req.latents, "latents")
        indices = np.arange(len(z), dtype=np.int64)
        labels = labels_for(model, req.labels, indices)
        feeds = feeds_for(model, 0, indices, labels, req.codes, latents=z)
        return Images(model, await self.run(model, feeds), labels, indices, None)

    async def interpolate(self, req: InterpolateRequest) -> Images:
        model = self.model(req.model)
        self._limit("steps", req.steps, "max_steps")
        self.admit(model, req.steps)
        if (req.seeds is None) == (req.latents is None):
            raise ClientError("seeds: give either seeds [a, b] or latents [z_a, z_b], not both or neither")
        if req.seeds is not None:
            for name, pair in (("seeds", req.seeds), ("indices", req.indices)):
                if len(pair) != 2:
                    raise ClientError(f"{name}: must hold exactly 2 values, got {len(pair)}")
            z_name = model.card.input_of_kind("latent").name
            ends = np.stack(
                [
                    feeds_for(model, s, [i], None, truncation=req.truncation)[z_name][0]
                    for s, i in zip(req.seeds, req.indices, strict=True)
                ]
            )
            seed, index = req.seeds[0], req.indices[0]
        else:
            if len(req.latents) != 2:
                raise ClientError(f"latents: must hold exactly 2 vectors, got {len(req.latents)}")
            ends = latent_matrix(model, req.latents, "latents")
            seed, index = 0, 0
        if model.card.conditional and req.label is None:
            raise ClientError(f"label: required for conditional model {model.name!r} (a class index or name)")
        indices = np.arange(req.steps, dtype=np.int64)
        labels = labels_for(model, req.label, indices, where="label")
        z = path(ends[0], ends[1], req.steps, req.method)
        # every frame shares endpoint A's other inputs (codes, noise), so only the latent moves
        feeds = feeds_for(model, seed, [index] * req.steps, labels, req.codes, latents=z)
        return Images(model, await self.run(model, feeds), labels, indices, None, req.truncation)

    async def encode(self, result: Images, fmt: str) -> Reply:
        return await encode(result, fmt, self.bulk.encode)
