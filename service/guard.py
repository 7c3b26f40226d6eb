"""ASGI middleware in front of the BentoML APIs: what a request must satisfy before BentoML sees it.

BentoML validates bodies itself but answers with its own error shape, logs a traceback for every
bad request, reads bodies of any size at any pace and parses them as JSON whatever their
Content-Type. This guard runs first, and for each API request, in order:

- the bearer token, when GAN_API_TOKEN is set (generation routes; 401);
- Content-Type: application/json on a POST (415), so a web page cannot make a browser post a
  `text/plain` "simple request" that runs;
- requests in progress per worker (503 + Retry-After past GAN_MAX_CONCURRENCY);
- the body: size (413), a deadline for all of it (408), and a client that hangs up mid-body
  finishes the request at once instead of pinning it until BentoML's own timeout;
- a client that hangs up after its body, before the answer, cancels the work (its images not yet
  computed leave the batcher's queue) instead of having it computed for nobody;
- the JSON against the route's pydantic schema (400, "field: message"), then its size-like fields
  against their settings (service.limits), before the route allocates anything.

Raw routes (POST /translate: multipart, JSON or npz bodies, parsed by the route itself) get the
token, concurrency and body checks but neither the Content-Type check nor schema validation.

Refusals are logged throttled (service.throttled_log): the first of a kind at once, then one line
per interval counting the rest, so a flood of bad requests cannot flood the log. Valid bodies are replayed
unchanged to BentoML, or answered here by `direct` (service.app: the same handler without
BentoML's routing and re-parsing). GET /models is mapped onto the BentoML API (BentoML APIs are
POST-only).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from service.inputs import ClientError
from service.limits import check_fields
from service.settings import Settings
from service.throttled_log import ThrottledLog

log = logging.getLogger("gan_service")
flood_log = ThrottledLog(log)
ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[Any]]], Awaitable[None]]

GET_ROUTES = ("/models",)  # answered for GET too, without a body
OPEN_ROUTES = ("/models",)  # read-only: not behind GAN_API_TOKEN, and a POST may come without a body
_timeout = getattr(asyncio, "timeout", None)
STATE_MODEL = "gan.model"  # scope["state"] key: the model a request asked for (read by service.metrics)
DISCONNECTED = 499  # never reaches the client (it is gone); completes the request for the middlewares


def error_line(e: ValidationError) -> str:
    """First problem of a pydantic error as 'field: message' (union alternatives folded into one)."""
    errs = e.errors(include_url=False, include_context=False, include_input=False)
    first = errs[0]
    loc = [str(p) for p in first["loc"]]
    field_name = loc[0] if loc else "body"
    same_field = [x for x in errs if x["loc"][:1] == first["loc"][:1]]
    if len(same_field) > 1 and field_name in ("labels", "label"):
        return f"{field_name}: must be a class index, a class name, a list of them, or 'balanced'"
    if first["type"] == "json_invalid":
        return f"body: invalid JSON ({first['msg'].removeprefix('Invalid JSON: ')})"
    if first["type"] == "model_attributes_type" or (not loc and first["type"].endswith("_type")):
        return "body: must be a JSON object"
    where = ".".join(p for p in loc if p not in ("int", "str", "float")) or "body"
    return f"{where}: {first['msg']}"


def json_error(status: int, message: str, headers: dict[str, str] | None = None):
    """The two ASGI messages of an {"error": message} answer."""
    body = json.dumps({"error": message}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": hdrs}, {
        "type": "http.response.body",
        "body": body,
    }


def is_json(content_type: bytes | None) -> bool:
    """application/json, with or without parameters (charset=utf-8)."""
    return content_type is not None and content_type.split(b";")[0].strip().lower() == b"application/json"


class RequestGuard:
    """options: schemas {route: pydantic model}, settings (limits, timeouts, token), raw_routes,
    direct(route, validated request) -> an ASGI app that answers it here, or None for BentoML's route."""

    def __init__(
        self,
        app,
        schemas: dict[str, type[BaseModel]],
        settings: Settings,
        raw_routes: tuple[str, ...] = (),
        direct: Callable[[str, BaseModel], ASGIApp | None] | None = None,
    ):
        self.app = app
        self.direct = direct
        self.schemas = schemas
        self.raw_routes = raw_routes
        self.settings = settings
        self.token = (settings.api_token or "").encode()
        self.in_progress = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        bodyless = path in GET_ROUTES and method == "GET"
        raw = path in self.raw_routes and method == "POST"
        if not raw and (path not in self.schemas or not (method == "POST" or bodyless)):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token and path not in OPEN_ROUTES and not self._authorized(headers):
            return await self._reject(
                scope, send, 401, "authorization: send the header Authorization: Bearer <GAN_API_TOKEN>",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        if (
            path in OPEN_ROUTES
            and headers.get(b"content-length", b"0") == b"0"
            and b"transfer-encoding" not in headers
        ):
            bodyless = True  # a read-only route asked without a body (POST /models)
        if not bodyless and not raw and not is_json(headers.get(b"content-type")):
            got = headers.get(b"content-type", b"").decode("latin-1")[:80] or "none"
            return await self._reject(
                scope, send, 415,
                f"content-type: must be application/json (send the header Content-Type: application/json), got {got!r}",
            )  # fmt: skip
        limit = self.settings.max_concurrency
        if self.in_progress >= limit:
            return await self._reject(
                scope, send, 503,
                f"server busy: {self.in_progress} requests in progress, limit {limit} (GAN_MAX_CONCURRENCY); retry later",
                {"Retry-After": "1"}, kind="concurrency",
            )  # fmt: skip
        self.in_progress += 1
        try:
            await self._guarded(scope, receive, send, path, bodyless, raw)
        finally:
            self.in_progress -= 1

    async def _guarded(self, scope, receive, send, path: str, bodyless: bool, raw: bool = False) -> None:
        body = b"" if bodyless else await self._read_body(scope, receive, send)
        if body is None:
            return
        if raw:  # the route parses its own body: replay it as it came
            return await self._run_app(scope, body, receive, send)
        body = body or b"{}"  # an empty body means all defaults (whitespace is invalid JSON)
        try:
            req = self.schemas[path].model_validate_json(body)
        except ValidationError as e:
            return await self._reject(scope, send, 400, error_line(e), kind="invalid")
        try:  # sizes bounded by settings, before the route builds anything from them
            check_fields(path, req, self.settings)
        except ClientError as e:
            return await self._reject(scope, send, e.status, str(e), kind="invalid")
        scope.setdefault("state", {})[STATE_MODEL] = getattr(req, "model", None)
        app = self.direct(path, req) if self.direct is not None else None
        if app is None:  # BentoML must parse exactly what was validated here, as JSON.
            app = self.app
            headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"content-type"]
            scope = {**scope, "method": "POST", "headers": [*headers, (b"content-type", b"application/json")]}
        await self._run_app(scope, body, receive, send, app)

    async def _run_app(self, scope, body: bytes, receive, send, app: ASGIApp | None = None) -> None:
        """The app on the body read here, cancelled when the client hangs up before its answer.

        The server's receive() is watched from here on (the app gets the body, then a disconnect
        when one comes), so a client that leaves while its images are queued stops their work."""
        gone = asyncio.Event()
        started = finished = body_given = False

        async def replay():
            nonlocal body_given
            if not body_given:
                body_given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def tracked_send(message):
            nonlocal started, finished
            await send(message)
            started = True
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True

        task = asyncio.ensure_future((app or self.app)(scope, replay, tracked_send))

        async def watch():
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if not finished:
                task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled() or not gone.is_set() or finished:
                raise  # this request itself was cancelled (server shutdown), not the client gone
            # finish the request for the middlewares around this one, as for a hang-up mid-body
            if started:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                message = "client hung up before the answer; its work was dropped"
                await self._reject(scope, send, DISCONNECTED, message, kind="disconnect")
        finally:
            watcher.cancel()

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.token)

    async def _read_body(self, scope, receive, send) -> bytes | None:
        """The whole body, or None after answering 413 / 408 or finding the client gone."""
        limit, timeout = self.settings.max_body_bytes, self.settings.body_timeout_s
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._too_big(scope, send)
            return None
        try:
            if _timeout is not None:  # Python 3.11+: a deadline without an extra task
                async with _timeout(timeout):
                    return await self._read_chunks(scope, receive, send)
            return await asyncio.wait_for(self._read_chunks(scope, receive, send), timeout)
        except asyncio.TimeoutError:
            await self._reject(
                scope, send, 408, f"body: not complete within {timeout:g} s (GAN_BODY_TIMEOUT_S)",
                {"Connection": "close"}, kind="body_timeout",
            )  # fmt: skip
            return None

    async def _read_chunks(self, scope, receive, send) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                # Answer anyway: the bytes go nowhere, but the request is finished for the
                # middlewares around this one (BentoML's timeout waits for a response otherwise).
                await self._reject(
                    scope, send, DISCONNECTED, "body: client hung up mid-body", kind="disconnect"
                )
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                await self._too_big(scope, send)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _too_big(self, scope, send) -> None:
        message = f"body: must be <= {self.settings.max_body_bytes} bytes (GAN_MAX_BODY_BYTES)"
        await self._reject(scope, send, 413, message, {"Connection": "close"})

    async def _reject(
        self, scope, send, status: int, message: str, headers: dict[str, str] | None = None, kind: str = ""
    ) -> None:
        client = (scope.get("client") or ("-", 0))[0]
        line = "%s %s %s -> %d: %s"
        flood_log.warning(
            kind or f"refused {status}", line, client, scope["method"], scope["path"], status, message
        )
        start, body = json_error(status, message, headers)
        await send(start)
        await send(body)
