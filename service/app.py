"""The BentoML service: `bentoml serve service.app:GeneratorService`.

Thin HTTP layer over service.core.ServingCore; no torch is imported anywhere on this path.
Async APIs: the event loop only parses, queues and encodes small answers, while ORT calls run
in worker threads via the batcher. The access log and per-request tracing spans are off by
default (GAN_ACCESS_LOG / GAN_TRACE_REQUESTS turn them on): on a 2-core box they cost more
than generating a digit. /livez and /readyz are BentoML's own; /metrics is service.metrics';
/ui is the playground page (service.ui), where / redirects, and /docs the API reference.

Each API route's answer is one function of ANSWERS, run by the BentoML API method or, for a
request the guard has already validated, by the guard itself (direct_app; GAN_DIRECT_DISPATCH).

Settings and the models folder are checked when this module is imported, which `bentoml serve`
does before it starts any worker: a bad setting, or a folder without one usable model, ends the
command with one line and exit status 2 instead of workers restarting forever. A worker that finds
its models unusable later (service.fatal) ends the server the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable

import bentoml
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from gan_core.errors import UserError, one_line
from service import connections, fatal, metrics, mixing, traffic_timeout
from service.core import ClientError, Reply, ServingCore
from service.guard import OPEN_ROUTES, RequestGuard, flood_log
from service.metrics import RequestMetrics
from service.mixing import MixRequest, MixResponse
from service.model_set import ModelScan, scan_models
from service.openapi import ApiDocs
from service.repair import ROUTES as REPAIR_ROUTES
from service.repair import openapi_paths as repair_openapi_paths
from service.repair import repair_routes
from service.schemas import (
    GenerateRequest,
    ImagesResponse,
    InterpolateRequest,
    LatentsRequest,
    ModelsRequest,
    ModelsResponse,
    TraverseRequest,
    request_models,
)
from service.settings import Settings
from service.translate import ROUTE as TRANSLATE_ROUTE
from service.translate import openapi_path, translate_routes
from service.traverse import encode_traversal, traverse_code
from service.ui import RootPages, playground_app

log = logging.getLogger("gan_service")


IN_WORKER = bentoml.server_context.worker_index is not None
if IN_WORKER:
    metrics.use_own_metrics_dir()
else:
    fatal.arm()  # the serving process: exit 2 when one of its workers cannot serve
    metrics.own_metrics_dir()  # its workers' metric files, apart from any other server's


def _checked_start() -> tuple[Settings, ModelScan]:
    """Settings and usable models, or one line on stderr and exit 2 (of the whole server)."""
    try:
        settings = Settings.from_env()
        return settings, scan_models(settings, report=not IN_WORKER, run_check=not IN_WORKER)
    except UserError as e:
        if IN_WORKER:
            fatal.stop_server(one_line(e))
        print(f"gan_service: cannot start: {one_line(e)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


SETTINGS, SCAN = _checked_start()
# Request schemas come from the cards of the models being served (their code inputs become fields).
REQUESTS = request_models(SCAN.cards)
API_ROUTES = {
    "/generate": REQUESTS["generate"],
    "/generate_from_latents": REQUESTS["latents"],
    "/interpolate": REQUESTS["interpolate"],
    "/traverse": REQUESTS["traverse"],
    "/mix": MixRequest,
    "/models": ModelsRequest,
}
RAW_ROUTES = (TRANSLATE_ROUTE, *REPAIR_ROUTES)  # routes that parse their own bodies (images in)
_service_config: dict = {
    "workers": SETTINGS.workers,
    # BentoML's own deadline is only a backstop behind the body and request deadlines
    "traffic": {"timeout": SETTINGS.body_timeout_s + SETTINGS.request_timeout_s + 30},
    "logging": {"access": {"enabled": SETTINGS.access_log}},
    "metrics": {"enabled": False},  # labelled by raw path: unbounded; service.metrics replaces them
}
if not SETTINGS.trace_requests:
    _service_config["tracing"] = {"excluded_urls": [*API_ROUTES, *RAW_ROUTES]}
connections.install(SETTINGS)
traffic_timeout.install()


def _response(reply: Reply) -> Response:
    return Response(reply.body, media_type=reply.media_type, headers=reply.headers)


def _client_error(e: ClientError, route: str) -> JSONResponse:
    flood_log.warning(f"refused {e.status}", "POST %s -> %d: %s", route, e.status, e)
    return JSONResponse({"error": str(e)}, status_code=e.status, headers=e.headers or None)


async def _generate(core: ServingCore, req: GenerateRequest) -> Reply:
    return await core.encode(await core.generate(req), req.format)


async def _from_latents(core: ServingCore, req: LatentsRequest) -> Reply:
    return await core.encode(await core.from_latents(req), req.format)


async def _interpolate(core: ServingCore, req: InterpolateRequest) -> Reply:
    return await core.encode(await core.interpolate(req), "png" if req.format == "frames" else req.format)


async def _traverse(core: ServingCore, req: TraverseRequest) -> Reply:
    return await encode_traversal(await traverse_code(core, req), req.format)


# route -> the answer to a validated request: what the BentoML API and the direct dispatch both run
ANSWERS: dict[str, Callable[[ServingCore, BaseModel], Awaitable[Reply]]] = {
    "/generate": _generate,
    "/generate_from_latents": _from_latents,
    "/interpolate": _interpolate,
    "/traverse": _traverse,
    "/mix": mixing.mix,
}


async def answer(core: ServingCore, route: str, req: BaseModel) -> Response:
    """The HTTP answer of one validated request; a client's mistake is its 4xx, never a 500."""
    if route == "/models":
        return JSONResponse(core.models_doc())
    try:
        return _response(await ANSWERS[route](core, req))
    except ClientError as e:
        return _client_error(e, route)


# Validated requests are answered by the guard itself (service.guard), bypassing BentoML's routing,
# request re-parsing and context (about a third of the event loop's time per one-image request);
# GAN_DIRECT_DISPATCH=0 sends them through the BentoML APIs below, which answer the same bytes.
DIRECT_DISPATCH = SETTINGS.direct_dispatch
SERVER_HEADER = "BentoML Service/gan_generator"  # as BentoML's own answers carry
UNEXPECTED = "An unexpected error has occurred, please check the server log."  # BentoML's 500 text


def direct_app(route: str, req: BaseModel):
    """An ASGI app answering the validated `req` of `route` (one of API_ROUTES, the guard's schemas,
    each of which `answer` serves), or None to let BentoML route it."""
    if not DIRECT_DISPATCH:
        return None

    async def app(scope, receive, send) -> None:
        try:
            resp = await answer(bentoml.get_current_service().core, route, req)
        except Exception:  # as BentoML answers an error of its own: logged, a 500 without details
            log.exception("POST %s failed", route)
            resp = JSONResponse({"error": UNEXPECTED}, status_code=500)
        resp.headers["server"] = SERVER_HEADER
        await resp(scope, receive, send)

    return app


def _core() -> ServingCore:
    return bentoml.get_current_service().core


@bentoml.asgi_app(playground_app(), path="/ui", name="playground")
# POST /translate, /restore and /upscale (images in: multipart, JSON or npz) are Starlette routes of their
# own (service.translate, service.repair).
@bentoml.asgi_app(Starlette(routes=[*translate_routes(_core), *repair_routes(_core)]), path="/")
@bentoml.service(name="gan_generator", **_service_config)
class GeneratorService:
    """Generates digit images from the exported ONNX generators in GAN_MODELS_DIR."""

    def __init__(self) -> None:
        try:
            self.core = ServingCore(SETTINGS, SCAN)
        except UserError as e:  # e.g. a model file changed since the serving process checked it
            fatal.stop_server(one_line(e))

    @bentoml.on_shutdown
    def close(self) -> None:
        """After the drain: end the bulk process and release its queues' semaphores, which a worker
        exiting without this leaves to multiprocessing's resource tracker (a warning per shutdown)."""
        self.core.close()

    @bentoml.api(route="/generate", input_spec=REQUESTS["generate"], output_spec=ImagesResponse)
    async def generate(self, **fields) -> Response:
        """Images start_index .. start_index+count-1 of a seed: the same bytes for the same
        (model, seed, index, label, truncation), whatever the count, batching or restarts."""
        return await answer(self.core, "/generate", GenerateRequest.model_construct(**fields))

    @bentoml.api(route="/generate_from_latents", input_spec=REQUESTS["latents"], output_spec=ImagesResponse)
    async def generate_from_latents(self, **fields) -> Response:
        """Images of explicit latent vectors [N][latent_dim] (and labels)."""
        return await answer(self.core, "/generate_from_latents", LatentsRequest.model_construct(**fields))

    @bentoml.api(route="/interpolate", input_spec=REQUESTS["interpolate"], output_spec=ImagesResponse)
    async def interpolate(self, **fields) -> Response:
        """`steps` frames from one seed (or latent) to another, slerp or lerp; a grid, PNG frames or npz."""
        return await answer(self.core, "/interpolate", InterpolateRequest.model_construct(**fields))

    @bentoml.api(route="/traverse", input_spec=REQUESTS["traverse"], output_spec=ImagesResponse)
    async def traverse(self, **fields) -> Response:
        """One code swept across its range at fixed seeds: a grid PNG (rows = seeds, columns = values) or npz."""
        return await answer(self.core, "/traverse", TraverseRequest.model_construct(**fields))

    @bentoml.api(route="/mix", input_spec=MixRequest, output_spec=MixResponse)
    async def mix(self, **fields) -> Response:
        """Style mixing grid (StyleGAN models): row seeds' coarse styles x column seeds' fine styles."""
        return await answer(self.core, "/mix", MixRequest.model_construct(**fields))

    @bentoml.api(route="/models", input_spec=ModelsRequest, output_spec=ModelsResponse)
    async def models(self) -> Response:
        """Every served model: its card as exported (without the training data's location), file
        digest and execution provider, and the files that are not served (also GET)."""
        return await answer(self.core, "/models", ModelsRequest())


# outermost first: every answer is counted, /docs.json is rebuilt, then requests are guarded
GeneratorService.add_asgi_middleware(
    RequestMetrics, routes=[*API_ROUTES, *RAW_ROUTES], models=list(SCAN.usable), default=SCAN.default
)
GeneratorService.add_asgi_middleware(
    ApiDocs, requests=API_ROUTES, settings=SETTINGS, open_routes=OPEN_ROUTES,
    extra_paths={TRANSLATE_ROUTE: openapi_path(), **repair_openapi_paths()},
)  # fmt: skip
GeneratorService.add_asgi_middleware(RootPages)  # / -> the playground (/ui/), /docs -> the API reference
GeneratorService.add_asgi_middleware(
    RequestGuard, schemas=API_ROUTES, settings=SETTINGS, raw_routes=RAW_ROUTES, direct=direct_app
)
