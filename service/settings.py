"""Service limits and configuration, read once from GAN_* environment variables.

Every limit has a sane default and names its variable, so an error message can tell a client
both the limit and the knob that sets it ("count: must be <= 1024 (GAN_MAX_COUNT)").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from gan_core.cpus import available_cpus
from gan_core.errors import UserError

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "models"


class SettingsError(UserError):
    """A GAN_* variable with a value the service cannot use; one line, names the variable."""


@dataclass(frozen=True)
class Settings:
    models_dir: Path = DEFAULT_MODELS_DIR
    default_model: str | None = None
    workers: int = 1
    ort_threads: int = 1
    device: str = "auto"
    max_count: int = 1024
    max_latents: int = 1024
    max_steps: int = 64
    max_body_bytes: int = 4 * 1024 * 1024
    max_translate_images: int = 256
    max_image_bytes: int = 256 * 1024
    max_repair_pixels: int = 1024 * 1024  # output pixels per image of /restore and /upscale
    max_batch: int = 64
    max_queue: int = 8192
    max_connections: int = 1024  # open HTTP connections per worker
    max_concurrency: int = 256  # API requests in progress per worker (body read, queued or running)
    header_timeout_s: float = 10.0  # a connection's request line + headers must arrive within this
    max_header_bytes: int = 64 * 1024  # request line + headers of one request (431 past it)
    max_headers: int = 100  # header fields of one request (431 past it)
    body_timeout_s: float = 10.0  # a request's whole body must arrive within this once its headers did
    request_timeout_s: float = 30.0  # queue + generation deadline of one request (504 past it)
    api_token: str | None = None
    inline_images: int = 1
    bulk_processes: int = 1  # processes for bulk requests' feeds and answers (service.bulk); 0 = threads
    access_log: bool = False
    trace_requests: bool = False
    direct_dispatch: bool = True  # the guard answers validated requests itself (service.app)

    # field -> environment variable; error messages quote these names
    ENV = {
        "models_dir": "GAN_MODELS_DIR",
        "default_model": "GAN_DEFAULT_MODEL",
        "workers": "GAN_WORKERS",
        "ort_threads": "GAN_ORT_THREADS",
        "device": "GAN_DEVICE",
        "max_count": "GAN_MAX_COUNT",
        "max_latents": "GAN_MAX_LATENTS",
        "max_steps": "GAN_MAX_STEPS",
        "max_body_bytes": "GAN_MAX_BODY_BYTES",
        "max_translate_images": "GAN_MAX_TRANSLATE_IMAGES",
        "max_image_bytes": "GAN_MAX_IMAGE_BYTES",
        "max_repair_pixels": "GAN_MAX_REPAIR_PIXELS",
        "max_batch": "GAN_MAX_BATCH",
        "max_queue": "GAN_MAX_QUEUE",
        "max_connections": "GAN_MAX_CONNECTIONS",
        "max_concurrency": "GAN_MAX_CONCURRENCY",
        "header_timeout_s": "GAN_HEADER_TIMEOUT_S",
        "max_header_bytes": "GAN_MAX_HEADER_BYTES",
        "max_headers": "GAN_MAX_HEADERS",
        "body_timeout_s": "GAN_BODY_TIMEOUT_S",
        "request_timeout_s": "GAN_REQUEST_TIMEOUT_S",
        "api_token": "GAN_API_TOKEN",
        "inline_images": "GAN_INLINE_IMAGES",
        "bulk_processes": "GAN_BULK_PROCESSES",
        "access_log": "GAN_ACCESS_LOG",
        "trace_requests": "GAN_TRACE_REQUESTS",
        "direct_dispatch": "GAN_DIRECT_DISPATCH",
    }

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Defaults overridden by GAN_* variables; ORT threads default to usable CPUs / workers
        (gan_core.cpus: a container's CPU quota, not the host's core count)."""
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(cls.ENV[f.name], "").strip()
            if raw:
                values[f.name] = _parse(f.name, cls.ENV[f.name], raw, is_bool=f.type in (bool, "bool"))
        workers = values.get("workers", 1)
        values.setdefault("ort_threads", max(1, available_cpus() // workers))
        return cls(**values)


def _parse(name: str, var: str, raw: str, is_bool: bool = False):
    if name == "models_dir":
        return Path(raw)
    if name in ("default_model", "api_token"):
        return raw
    if name == "device":
        if raw not in ("auto", "cpu", "cuda"):
            raise SettingsError(f"{var}: must be one of auto, cpu, cuda, got {raw!r}")
        return raw
    if is_bool:  # every bool field (its annotation), so a new one needs no list kept in step
        if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
            raise SettingsError(f"{var}: must be 0/1/true/false, got {raw!r}")
        return raw.lower() in ("1", "true", "yes")
    if name.endswith("_s"):
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{var}: must be a number of seconds > 0, got {raw!r}") from None
        if not 0 < value < float("inf"):
            raise SettingsError(f"{var}: must be a number of seconds > 0, got {raw!r}")
        return value
    low = 0 if name in ("inline_images", "bulk_processes") else 1
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{var}: must be an integer >= {low}, got {raw!r}") from None
    if value < low:
        raise SettingsError(f"{var}: must be an integer >= {low}, got {value}")
    return value
