"""A serving core and a route group in-process (no server), for the route tests of one model kind."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serving_core(models_dir: Path, env: dict[str, str]):
    """A ServingCore over `models_dir` on one ORT thread, with the settings `env` gives."""
    from service.core import ServingCore
    from service.settings import Settings

    core = ServingCore(Settings.from_env({"GAN_MODELS_DIR": str(models_dir), "GAN_ORT_THREADS": "1", **env}))
    try:
        yield core
    finally:
        core.close()


@contextmanager
def routes_client(routes):
    """A TestClient of a Starlette app of `routes`; a server error is an answer, not a raised exception."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    with TestClient(Starlette(routes=routes), raise_server_exceptions=False) as client:
        yield client
