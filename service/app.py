"""The BentoML service: `bentoml serve service.app:GeneratorService`.

Thin HTTP layer over service.generate.Generator; no torch is imported anywhere on this path.
Async APIs: the event loop only parses, queues and encodes small answers, while ORT calls run
in worker threads via the batcher. The access log and per-request tracing spans are off by
default (GAN_ACCESS_LOG / GAN_TRACE_REQUESTS turn them on): on a 2-core box they cost more
than generating a digit. /livez, /readyz and /metrics are BentoML's own.
"""

from __future__ import annotations

import logging

import bentoml
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from service.generate import ClientError, Generator, Reply
from service.guard import RequestGuard
from service.model_set import served_cards
from service.schemas import (
    GenerateRequest,
    ImagesResponse,
    InterpolateRequest,
    LatentsRequest,
    ModelsRequest,
    ModelsResponse,
    request_models,
)
from service.settings import Settings
from service.translate import ROUTE as TRANSLATE_ROUTE
from service.translate import openapi_path, translate_routes

log = logging.getLogger("gan_service")

SETTINGS = Settings.from_env()
# Request schemas come from the cards of the models being served (their code inputs become fields).
REQUESTS = request_models(served_cards(SETTINGS.models_dir))
API_ROUTES = {
    "/generate": REQUESTS["generate"],
    "/generate_from_latents": REQUESTS["latents"],
    "/interpolate": REQUESTS["interpolate"],
    "/models": ModelsRequest,
}
_service_config: dict = {
    "workers": SETTINGS.workers,
    "traffic": {"timeout": 300},
    "logging": {"access": {"enabled": SETTINGS.access_log}},
}
if not SETTINGS.trace_requests:
    _service_config["tracing"] = {"excluded_urls": [*API_ROUTES, TRANSLATE_ROUTE]}


def _response(reply: Reply) -> Response:
    return Response(reply.body, media_type=reply.media_type, headers=reply.headers)


def _client_error(e: ClientError, route: str) -> JSONResponse:
    log.warning("POST %s -> %d: %s", route, e.status, e)
    headers = {"Retry-After": "1"} if e.status == 503 else None
    return JSONResponse({"error": str(e)}, status_code=e.status, headers=headers)


# POST /translate (images in: multipart, JSON or npz) is a Starlette route of its own (service.translate).
@bentoml.asgi_app(Starlette(routes=translate_routes(lambda: bentoml.get_current_service().core)), path="/")
@bentoml.service(name="gan_generator", **_service_config)
class GeneratorService:
    """Generates digit images from the exported ONNX generators in GAN_MODELS_DIR."""

    def __init__(self) -> None:
        self.core = Generator(Settings.from_env())

    @bentoml.api(route="/generate", input_spec=REQUESTS["generate"], output_spec=ImagesResponse)
    async def generate(self, **fields) -> Response:
        """Images start_index .. start_index+count-1 of a seed: the same bytes for the same
        (model, seed, index, label, truncation), whatever the count, batching or restarts."""
        req = GenerateRequest.model_construct(**fields)
        try:
            return _response(await self.core.encode(await self.core.generate(req), req.format))
        except ClientError as e:
            return _client_error(e, "/generate")

    @bentoml.api(route="/generate_from_latents", input_spec=REQUESTS["latents"], output_spec=ImagesResponse)
    async def generate_from_latents(self, **fields) -> Response:
        """Images of explicit latent vectors [N][latent_dim] (and labels)."""
        req = LatentsRequest.model_construct(**fields)
        try:
            return _response(await self.core.encode(await self.core.from_latents(req), req.format))
        except ClientError as e:
            return _client_error(e, "/generate_from_latents")

    @bentoml.api(route="/interpolate", input_spec=REQUESTS["interpolate"], output_spec=ImagesResponse)
    async def interpolate(self, **fields) -> Response:
        """`steps` frames from one seed (or latent) to another, slerp or lerp; a grid, PNG frames or npz."""
        req = InterpolateRequest.model_construct(**fields)
        fmt = "png" if req.format == "frames" else req.format
        try:
            return _response(await self.core.encode(await self.core.interpolate(req), fmt))
        except ClientError as e:
            return _client_error(e, "/interpolate")

    @bentoml.api(route="/models", input_spec=ModelsRequest, output_spec=ModelsResponse)
    async def models(self) -> Response:
        """Every served model: its card exactly as exported, file digest and execution provider (also GET)."""
        return JSONResponse(self.core.models_doc())


GeneratorService.add_asgi_middleware(
    RequestGuard,
    schemas=API_ROUTES,
    max_body_bytes=SETTINGS.max_body_bytes,
    extra_docs={TRANSLATE_ROUTE: openapi_path()},
)
