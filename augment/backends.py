"""Where images come from: a local ONNX Runtime session (default) or the HTTP service.

Both take a run of consecutive global indices with their labels and return uint8 [N, H, W, C];
image i is always generator(latents(seed, [i]), label_i), so both give the same pixels for the
same model file. A spec is a path to an .onnx file or `http://host:port#model`. Image-to-image
models (translate mode) go through `translate(images)` instead: the session, or POST /translate.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from augment.errors import AugmentError
from gan_core.card import ModelCard
from gan_core.feeds import FeedError, build_feeds
from gan_core.fileio import sha256_file
from gan_core.imaging import centre_masks

RETRY_STATUS = {429, 502, 503, 504}


def check_output_spec(card: ModelCard, where: str) -> None:
    out = card.output
    if out.dtype != "uint8" or out.layout != "NHWC":
        raise AugmentError(
            f"{where}: model output is {out.dtype} {out.layout}; the job needs uint8 NHWC images (export with the default output)"
        )


def batch_codes(codes: dict | None, a: int, b: int, n: int) -> dict:
    """Codes of images a..b-1 of a run of n: per-image arrays (length n) sliced, single values kept."""
    return {
        k: v[a:b] if isinstance(v, np.ndarray) and v.ndim and len(v) == n else v
        for k, v in (codes or {}).items()
    }


def fill_in_masks(card: ModelCard, images: np.ndarray) -> dict[str, np.ndarray]:
    """The mask feed of a fill-in repair model (the centre box of card.repair.mask_box, as the service fills
    when no mask is given: mask:box's, and one of mask:random's boxes); {} for other models."""
    r = card.repair
    if r is None or r.mask is None:
        return {}
    n, h, w = images.shape[:3]
    return {card.inputs[1].name: centre_masks(n, h, w, r.mask_box)}


class LocalBackend:
    """One ONNX Runtime session; batches of `batch_size` per run call (ORT releases the GIL)."""

    def __init__(self, path: str | Path, batch_size: int = 256, threads: int | None = None):
        from gan_core.runtime import ModelFileError, open_generator

        path = Path(path)
        try:
            self.session = open_generator(path, threads=threads)
        except ModelFileError as e:
            raise AugmentError(str(e)) from None
        self.card = self.session.card
        check_output_spec(self.card, str(path))
        self.model_sha256 = sha256_file(path)
        self.batch_size = batch_size
        self.description = f"{path} ({self.session.provider}, {self.session.threads} threads)"

    def generate(
        self,
        seed: int,
        indices: range,
        labels: np.ndarray | None,
        truncation: float | None,
        codes: dict | None = None,
    ) -> np.ndarray:
        parts = []
        class_input = self.card.input_of_kind("class")
        for a in range(0, len(indices), self.batch_size):
            idx = indices[a : a + self.batch_size]
            values = batch_codes(codes, a, a + len(idx), len(indices))
            if labels is not None:
                values[class_input.name] = labels[a : a + len(idx)]
            try:
                feeds = build_feeds(self.card, seed, idx, values, truncation=truncation)
            except FeedError as e:
                raise AugmentError(str(e)) from None
            parts.append(self.session.run(feeds))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def translate(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, C] source images -> the model's images, batch_size per run call."""
        name = self.card.input_of_kind("image").name
        parts = [
            self.session.run(
                {
                    name: images[a : a + self.batch_size],
                    **fill_in_masks(self.card, images[a : a + self.batch_size]),
                }
            )
            for a in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def close(self) -> None:
        pass


@dataclass
class RetryPolicy:
    """Exponential backoff with full jitter on 429/50x and connection errors; honours Retry-After."""

    attempts: int = 8
    base_s: float = 0.2
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(self.cap_s, max(0.0, float(retry_after)))
            except ValueError:
                pass
        return self.rng.uniform(0.5, 1.0) * min(self.cap_s, self.base_s * 2**attempt)


def parse_url(spec: str) -> tuple[str, str | None]:
    base, _, name = spec.partition("#")
    return base.rstrip("/"), (name or None)


def _models_list(doc) -> list[dict]:
    """GET /models body -> list of entries that each hold a card (the card itself or {"card": ...})."""
    if isinstance(doc, dict):
        doc = doc.get("models", doc.get("data", [doc]))
    if isinstance(doc, dict):
        doc = [{"name": k, **v} if isinstance(v, dict) else v for k, v in doc.items()]
    return [d for d in doc if isinstance(d, dict)]


class HttpBackend:
    """POST /generate (format npz) with bounded concurrency; every batch checked for its indices."""

    def __init__(
        self,
        spec: str,
        batch_size: int = 256,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        timeout_s: float = 120.0,
        transport=None,
    ):
        import httpx

        self.base, name = parse_url(spec)
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        token = os.environ.get("GAN_API_TOKEN", "").strip()  # a service that asks for one (README, Serving)
        self.client = httpx.Client(
            base_url=self.base, timeout=timeout_s, transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )  # fmt: skip
        self.concurrency = concurrency
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="augment-http")
        self.retries = 0
        self._lock = threading.Lock()
        try:
            entry = self._find_model(name)
        except BaseException:
            self.close()
            raise
        card_doc = entry.get("card", entry)
        try:
            self.card = ModelCard.model_validate(card_doc)
        except ValueError as e:
            raise AugmentError(
                f"{self.base}/models: card of {name!r} is not a gan-service model card ({str(e).splitlines()[0]})"
            ) from None
        self.name = self.card.name
        check_output_spec(self.card, f"{self.base}#{self.name}")
        digest = entry.get("sha256")  # the service's /models: sha256 of the served file ("file" is its name)
        # Without the file's digest from the server, the card (which names the checkpoint's sha256) identifies it.
        self.model_sha256 = (
            digest or "card:" + hashlib.sha256(json.dumps(card_doc, sort_keys=True).encode()).hexdigest()
        )
        self.description = f"{self.base} model {self.name!r} ({concurrency} concurrent requests)"

    def _request(self, method: str, path: str, **kw):
        import httpx

        for attempt in range(self.retry.attempts):
            try:
                r = self.client.request(method, path, **kw)
            except httpx.TransportError as e:
                err, retry_after = f"{type(e).__name__}: {e}", None
            else:
                if r.status_code not in RETRY_STATUS:
                    return r
                err, retry_after = f"HTTP {r.status_code}", r.headers.get("retry-after")
            if attempt + 1 < self.retry.attempts:
                with self._lock:
                    self.retries += 1
                time.sleep(self.retry.delay(attempt, retry_after))
        raise AugmentError(f"{self.base}{path}: gave up after {self.retry.attempts} attempts ({err})")

    def _find_model(self, name: str | None) -> dict:
        r = self._request("GET", "/models")
        if r.status_code != 200:
            raise AugmentError(f"{self.base}/models: HTTP {r.status_code} ({_detail(r)})")
        entries = _models_list(r.json())
        names = [e.get("card", e).get("name") for e in entries]
        if name is None:
            if len(entries) != 1:
                raise AugmentError(
                    f"{self.base}: serves {len(entries)} models; name one as URL#model (known: {', '.join(map(str, names))})"
                )
            return entries[0]
        if name not in names:
            raise AugmentError(f"{self.base}: unknown model {name!r}; known: {', '.join(map(str, names))}")
        return entries[names.index(name)]

    def _batch(
        self, seed: int, idx: range, labels: np.ndarray | None, truncation: float | None, codes: dict | None
    ) -> np.ndarray:
        body = {
            "model": self.name,
            "count": len(idx),
            "seed": seed,
            "start_index": idx.start,
            "format": "npz",
        }
        if labels is not None:
            body["labels"] = [int(v) for v in labels]
        if truncation is not None:
            body["truncation"] = truncation
        if codes:
            body["codes"] = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in codes.items()}
        r = self._request("POST", "/generate", json=body)
        z = self._npz_answer(r, "/generate", len(idx), ("images", "indices"))
        images, got_idx, got_labels = z["images"], z["indices"], z.get("labels")
        if not np.array_equal(got_idx, np.arange(idx.start, idx.stop)):
            raise AugmentError(
                f"{self.base}/generate: answer holds indices {got_idx[:3].tolist()}..., asked {idx.start}..{idx.stop - 1}"
            )
        if labels is not None and (got_labels is None or not np.array_equal(got_labels, labels)):
            raise AugmentError(
                f"{self.base}/generate: answer labels differ from the labels asked for indices {idx.start}..{idx.stop - 1}"
            )
        return images

    def generate(
        self,
        seed: int,
        indices: range,
        labels: np.ndarray | None,
        truncation: float | None,
        codes: dict | None = None,
    ) -> np.ndarray:
        # A sliding window of `concurrency` requests: the next batch is sent only when one has
        # come back, so a batch that gives up stops the chunk without more requests behind it.
        starts = iter(range(0, len(indices), self.batch_size))
        parts: dict[int, np.ndarray] = {}
        pending: dict = {}

        def send_next() -> None:
            a = next(starts, None)
            if a is not None:
                idx = indices[a : a + self.batch_size]
                lab = None if labels is None else labels[a : a + len(idx)]
                part = batch_codes(codes, a, a + len(idx), len(indices))
                pending[self.pool.submit(self._batch, seed, idx, lab, truncation, part)] = a

        for _ in range(self.concurrency):
            send_next()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    parts[pending.pop(f)] = f.result()
                    send_next()
        finally:
            for f in pending:
                f.cancel()
        ordered = [parts[a] for a in sorted(parts)]
        return np.concatenate(ordered) if len(ordered) > 1 else ordered[0]

    def _npz_answer(
        self, r, route: str, n: int, need: tuple[str, ...], shape: tuple[int, int, int] | None = None
    ) -> dict[str, np.ndarray]:
        """The arrays of an npz answer (`need` present), its images checked: n uint8 images of `shape`
        (C, H, W; default the card's)."""
        if r.status_code != 200:
            raise AugmentError(f"{self.base}{route}: HTTP {r.status_code} ({_detail(r)})")
        try:
            with np.load(io.BytesIO(r.content), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise AugmentError(f"{self.base}{route}: answer is not the expected npz ({e})") from None
        missing = [k for k in need if k not in arrays]
        if missing:
            raise AugmentError(
                f"{self.base}{route}: answer is not the expected npz (no {missing[0]!r} array)"
            )
        images = arrays["images"]
        c, h, w = shape or self.card.image_shape
        if images.dtype != np.uint8 or images.shape != (n, h, w, c):
            raise AugmentError(
                f"{self.base}{route}: expected uint8 images {(n, h, w, c)}, got {images.dtype} {images.shape}"
            )
        return arrays

    def _translate_batch(self, images: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        np.savez(buf, images=images)
        repair = self.card.repair  # repair models: their own route (a fill-in model fills the centre box)
        route = f"/{repair.task}" if repair is not None else "/translate"
        shape = (
            None
            if repair is None
            else (images.shape[3], images.shape[1] * repair.scale, images.shape[2] * repair.scale)
        )
        r = self._request(
            "POST", route, params={"model": self.name, "format": "npz"}, content=buf.getvalue(),
            headers={"content-type": "application/x-npz"},
        )  # fmt: skip
        return self._npz_answer(r, route, len(images), ("images",), shape)["images"]

    def translate(self, images: np.ndarray) -> np.ndarray:
        """POST /translate (/restore, /upscale for repair models; npz in, npz out) in batch_size pieces, concurrently."""
        futures = [
            self.pool.submit(self._translate_batch, images[a : a + self.batch_size])
            for a in range(0, len(images), self.batch_size)
        ]
        parts = [f.result() for f in futures]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()


def _detail(r) -> str:
    try:
        doc = r.json()
    except ValueError:
        return r.text.strip().splitlines()[0][:200] if r.text.strip() else "no body"
    if isinstance(doc, dict):
        for key in ("error", "detail", "message"):
            if key in doc:
                return str(doc[key])[:300]
    return json.dumps(doc)[:300]


def open_backend(
    spec: str, batch_size: int = 256, threads: int | None = None, concurrency: int = 4, transport=None
):
    """`http(s)://host:port#model` -> HttpBackend, anything else -> LocalBackend on that .onnx path."""
    if batch_size < 1:
        raise AugmentError(f"batch_size: must be >= 1, got {batch_size}")
    if spec.startswith(("http://", "https://")):
        if concurrency < 1:
            raise AugmentError(f"concurrency: must be >= 1, got {concurrency}")
        return HttpBackend(spec, batch_size=batch_size, concurrency=concurrency, transport=transport)
    return LocalBackend(spec, batch_size=batch_size, threads=threads)
