"""The torch-free serving core: request -> latents -> batched ORT calls -> encoded answer.

No HTTP here, so behaviour (reproducibility, limits, labels, formats) is testable directly;
service.app only maps `Reply` and `ClientError` onto HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import math
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_core.fileio import sha256_file
from gan_core.imaging import grid, png_bytes
from gan_core.latents import MAX_SEED, balanced_labels, latents
from gan_core.runtime import GeneratorSession, ModelFileError, open_generator
from service.batcher import Batcher, Overloaded
from service.schemas import GenerateRequest, InterpolateRequest, LatentsRequest
from service.settings import Settings

log = logging.getLogger("gan_service")

ENCODE_INLINE = 8  # up to this many PNGs are encoded on the event loop; more go to a thread


class ClientError(Exception):
    """A client mistake: HTTP `status` with a one-line message naming the field and the limit."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Reply:
    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Model:
    """One served .onnx file: its session, card, digest and request batcher."""

    name: str
    path: Path
    session: GeneratorSession
    sha256: str
    batcher: Batcher

    @property
    def card(self):
        return self.session.card


@dataclass
class Images:
    """Generated images with what identifies them (seed None for explicit latents)."""

    model: Model
    images: np.ndarray
    labels: np.ndarray | None
    indices: np.ndarray
    seed: int | None
    truncation: float | None = None


class Generator:
    """Every *.onnx in settings.models_dir, opened, warmed up and ready to answer requests."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gan-ort")
        self.models: dict[str, Model] = {}
        paths = sorted(Path(settings.models_dir).glob("*.onnx"))
        if not paths:
            raise ModelFileError(f"{settings.models_dir}: no .onnx models to serve (GAN_MODELS_DIR)")
        for path in paths:
            sess = open_generator(path, threads=settings.ort_threads, device=settings.device)
            name = sess.card.name
            if name in self.models:
                raise ModelFileError(f"{path}: model name {name!r} is also used by {self.models[name].path}")
            batcher = Batcher(
                sess.run, self.executor, settings.max_batch, settings.max_queue, settings.inline_images
            )
            self.models[name] = Model(name, path, sess, sha256_file(path), batcher)
            self._warm_up(self.models[name])
        self.default = settings.default_model or next(iter(self.models))
        if self.default not in self.models:
            raise ModelFileError(
                f"GAN_DEFAULT_MODEL: unknown model {self.default!r}; known: {', '.join(self.models)}"
            )
        log.info(
            "serving %s (default %s)",
            ", ".join(
                f"{m.name} [{m.session.provider}, {m.session.threads} threads]" for m in self.models.values()
            ),
            self.default,
        )

    @staticmethod
    def _warm_up(model: Model) -> None:
        """First runs allocate ORT's buffers; do them before /readyz says yes."""
        card = model.card
        for n in (1, 8):
            z = latents(0, range(n), card.latent_dim)
            model.session.run(z, balanced_labels(range(n), card.num_classes) if card.conditional else None)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ---- lookups and checks -------------------------------------------------------------------

    def model(self, name: str | None) -> Model:
        name = name or self.default
        if name not in self.models:
            raise ClientError(f"model: unknown model {name!r}; known: {', '.join(self.models)}", 404)
        return self.models[name]

    def models_doc(self) -> dict:
        """GET /models: every card exactly as exported, plus where and how it runs."""
        return {
            "default": self.default,
            "models": [
                {
                    "name": m.name,
                    "file": m.path.name,
                    "sha256": m.sha256,
                    "provider": m.session.provider,
                    "threads": m.session.threads,
                    "default": m.name == self.default,
                    "card": m.card.model_dump(mode="json"),
                }  # fmt: skip
                for m in self.models.values()
            ],
        }

    def _limit(self, field_name: str, value: int, limit_field: str) -> None:
        limit = getattr(self.settings, limit_field)
        if value > limit:
            raise ClientError(f"{field_name}: must be <= {limit} ({Settings.ENV[limit_field]}), got {value}")

    @staticmethod
    def _class(model: Model, value, where: str) -> int:
        card = model.card
        if isinstance(value, bool):
            value = str(value)
        if isinstance(value, int):
            if not 0 <= value < card.num_classes:
                raise ClientError(
                    f"{where}: class {value} is not in 0..{card.num_classes - 1} (model {model.name!r})"
                )
            return value
        if value in card.class_names:
            return card.class_names.index(value)
        raise ClientError(
            f"{where}: unknown class {value!r}; model {model.name!r} has {', '.join(card.class_names)}"
        )

    def labels(self, model: Model, spec, indices: np.ndarray, where: str = "labels") -> np.ndarray | None:
        """int64 [N] classes for a conditional model (default balanced); None for an unconditional one."""
        card = model.card
        if not card.conditional:
            if spec is not None:
                raise ClientError(f"{where}: model {model.name!r} is unconditional; omit {where}")
            return None
        if spec is None or spec == "balanced":
            return balanced_labels(indices, card.num_classes)
        if isinstance(spec, list):
            if len(spec) != len(indices):
                raise ClientError(
                    f"{where}: list has {len(spec)} entries, expected {len(indices)} (one per image)"
                )
            return np.array([self._class(model, v, f"{where}[{k}]") for k, v in enumerate(spec)], np.int64)
        return np.full(len(indices), self._class(model, spec, where), np.int64)

    def _latent_matrix(self, model: Model, rows: list[list[float]], where: str) -> np.ndarray:
        dim = model.card.latent_dim
        for k, row in enumerate(rows):
            if len(row) != dim:
                raise ClientError(
                    f"{where}[{k}]: has {len(row)} values; model {model.name!r} expects {dim} (latent_dim)"
                )
        with np.errstate(over="ignore"):
            z = np.asarray(rows, np.float32)
        if not np.isfinite(z).all():  # finite doubles can still overflow float32
            raise ClientError(f"{where}: values must be finite float32 numbers")
        return z

    # ---- the three operations -----------------------------------------------------------------

    async def _run(self, model: Model, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        try:
            return await model.batcher(z, labels)
        except Overloaded as e:
            raise ClientError(str(e), 503) from None

    async def generate(self, req: GenerateRequest) -> Images:
        model = self.model(req.model)
        self._limit("count", req.count, "max_count")
        seed = secrets.randbelow(MAX_SEED + 1) if req.seed is None else req.seed
        indices = np.arange(req.start_index, req.start_index + req.count, dtype=np.int64)
        labels = self.labels(model, req.labels, indices)
        dim = model.card.latent_dim
        if req.count <= ENCODE_INLINE:
            z = latents(seed, range(req.start_index, req.start_index + req.count), dim, req.truncation)
        else:  # a few ms of numpy per 256 images: keep the event loop free meanwhile
            z = await asyncio.get_running_loop().run_in_executor(
                None, latents, seed, range(req.start_index, req.start_index + req.count), dim, req.truncation
            )
        images = await self._run(model, z, labels)
        return Images(model, images, labels, indices, seed, req.truncation)

    async def from_latents(self, req: LatentsRequest) -> Images:
        model = self.model(req.model)
        self._limit("latents", len(req.latents), "max_latents")
        z = self._latent_matrix(model, req.latents, "latents")
        indices = np.arange(len(z), dtype=np.int64)
        labels = self.labels(model, req.labels, indices)
        return Images(model, await self._run(model, z, labels), labels, indices, None)

    async def interpolate(self, req: InterpolateRequest) -> Images:
        model = self.model(req.model)
        self._limit("steps", req.steps, "max_steps")
        if (req.seeds is None) == (req.latents is None):
            raise ClientError("seeds: give either seeds [a, b] or latents [z_a, z_b], not both or neither")
        if req.seeds is not None:
            for name, pair in (("seeds", req.seeds), ("indices", req.indices)):
                if len(pair) != 2:
                    raise ClientError(f"{name}: must hold exactly 2 values, got {len(pair)}")
                if any(not 0 <= v <= MAX_SEED for v in pair):
                    raise ClientError(f"{name}: values must be in 0..{MAX_SEED}")
            ends = np.stack(
                [
                    latents(s, [i], model.card.latent_dim, req.truncation)[0]
                    for s, i in zip(req.seeds, req.indices, strict=True)
                ]
            )
        else:
            if len(req.latents) != 2:
                raise ClientError(f"latents: must hold exactly 2 vectors, got {len(req.latents)}")
            ends = self._latent_matrix(model, req.latents, "latents")
        if model.card.conditional and req.label is None:
            raise ClientError(f"label: required for conditional model {model.name!r} (a class index or name)")
        indices = np.arange(req.steps, dtype=np.int64)
        labels = self.labels(model, req.label, indices, where="label")
        z = path(ends[0], ends[1], req.steps, req.method)
        return Images(model, await self._run(model, z, labels), labels, indices, None, req.truncation)

    # ---- encodings ----------------------------------------------------------------------------

    async def encode(self, result: Images, fmt: str) -> Reply:
        headers = {"X-Model": result.model.name}
        if result.seed is not None:
            headers["X-Seed"] = str(result.seed)
        if fmt == "npz":
            return Reply(npz_bytes(result), "application/octet-stream", headers)
        if fmt == "grid":
            return Reply(png_bytes(grid_image(result)), "image/png", headers)
        if len(result.images) <= ENCODE_INLINE:
            pngs = [png_bytes(im) for im in result.images]
        else:
            pngs = await asyncio.get_running_loop().run_in_executor(
                None, lambda: [png_bytes(im) for im in result.images]
            )
        doc = {
            "model": result.model.name,
            "seed": result.seed,
            "start_index": int(result.indices[0]),
            "count": len(pngs),
            "truncation": result.truncation,
            "images": [
                {
                    "index": int(i),
                    "label": None if result.labels is None else int(result.labels[k]),
                    "png": base64.b64encode(p).decode(),
                }
                for k, (i, p) in enumerate(zip(result.indices, pngs, strict=True))
            ],
        }
        return Reply(json.dumps(doc).encode(), "application/json", headers)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (along the great circle); lerp when a and b are (anti)parallel."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = float(np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64) + 1e-12))
    omega = math.acos(max(-1.0, min(1.0, cos)))
    if math.sin(omega) < 1e-6:
        return lerp(a, b, t)
    t = t[:, None]
    return ((np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / math.sin(omega)).astype(np.float32)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[:, None].astype(np.float64)
    return ((1 - t) * a.astype(np.float64) + t * b.astype(np.float64)).astype(np.float32)


def path(a: np.ndarray, b: np.ndarray, steps: int, method: str) -> np.ndarray:
    """[steps, D] latents from a to b, both ends included."""
    t = np.linspace(0.0, 1.0, steps)
    return slerp(a, b, t) if method == "slerp" else lerp(a, b, t)


def grid_image(result: Images) -> np.ndarray:
    """One image: rows per class for a conditional model (in index order), else a near-square grid."""
    images = result.images
    if result.labels is None:
        return grid(images, math.ceil(math.sqrt(len(images))))
    classes = sorted(set(result.labels.tolist()))
    rows = [images[result.labels == c] for c in classes]
    cols = max(len(r) for r in rows)
    blank = np.zeros((cols, *images.shape[1:]), np.uint8)
    cells = np.concatenate([np.concatenate([r, blank[: cols - len(r)]]) for r in rows])
    return grid(cells, cols)


def npz_bytes(result: Images) -> bytes:
    """images uint8 [N,H,W,C], labels int64 [N] (-1 when unconditional), indices int64 [N], seed."""
    buf = io.BytesIO()
    labels = result.labels if result.labels is not None else np.full(len(result.images), -1, np.int64)
    seed = np.int64(-1 if result.seed is None else result.seed)
    np.savez(buf, images=result.images, labels=labels, indices=result.indices, seed=seed)
    return buf.getvalue()
