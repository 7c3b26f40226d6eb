"""ASGI middleware in front of the BentoML APIs: client mistakes become one clean 4xx line.

BentoML validates bodies itself but answers with its own error shape and logs a traceback for
every bad request, and reads bodies of any size. This guard runs first: it caps the body size
(413), validates the JSON against the route's pydantic schema (400, "field: message"), and logs
one line per rejected request. Valid bodies are replayed unchanged to BentoML. It also maps
GET /models onto the BentoML API (BentoML APIs are POST-only) and lists that GET in /docs.json.
"""

from __future__ import annotations

import json
import logging

from pydantic import BaseModel, ValidationError

log = logging.getLogger("gan_service")

GET_ROUTES = ("/models",)


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


def openapi30(node):
    """Pydantic writes Optional[X] as anyOf [X, {type: null}] (JSON Schema / OpenAPI 3.1), but
    BentoML labels the document OpenAPI 3.0.2, where that is invalid: use `nullable` instead."""
    if isinstance(node, list):
        return [openapi30(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: openapi30(v) for k, v in node.items()}
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        node.pop("anyOf")
        node.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        node["nullable"] = True
    if "prefixItems" in node:  # tuple[...] (3.1) -> array of the union of its item types (3.0)
        items = []
        for item in node.pop("prefixItems"):
            if item not in items:
                items.append(item)
        node["items"] = items[0] if len(items) == 1 else {"anyOf": items}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def json_error(status: int, message: str, headers: dict[str, str] | None = None):
    body = json.dumps({"error": message}).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    hdrs += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http.response.start", "status": status, "headers": hdrs}, {
        "type": "http.response.body",
        "body": body,
    }


class RequestGuard:
    """options: schemas {route: pydantic model}, max_body_bytes, prefix (the service's path prefix)."""

    def __init__(
        self,
        app,
        schemas: dict[str, type[BaseModel]],
        max_body_bytes: int,
        body_env: str = "GAN_MAX_BODY_BYTES",
        extra_docs: dict | None = None,
    ):
        self.app = app
        self.schemas = schemas
        self.max_body_bytes = max_body_bytes
        self.body_env = body_env
        self.extra_docs = extra_docs or {}  # path -> OpenAPI path item of routes outside BentoML's APIs

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        if path == "/docs.json" and method == "GET":
            return await self._patched_docs(scope, receive, send)
        if path in GET_ROUTES and method == "GET":
            method = "POST"
        elif path not in self.schemas or method != "POST":
            return await self.app(scope, receive, send)
        # Bodies are JSON whatever the client labels them (curl -d says form-urlencoded), so
        # BentoML must parse exactly what was validated here.
        headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"content-type"]
        scope = {**scope, "method": method, "headers": [*headers, (b"content-type", b"application/json")]}
        body = await self._read_body(scope, receive, send)
        if body is None:
            return
        body = body if body.strip() else b"{}"  # an empty body means all defaults
        try:
            self.schemas[path].model_validate_json(body)
        except ValidationError as e:
            return await self._reject(scope, send, 400, error_line(e))
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect as usual

        await self.app(scope, replay, send)

    async def _read_body(self, scope, receive, send) -> bytes | None:
        headers = dict(scope.get("headers") or [])
        too_big = f"body: must be <= {self.max_body_bytes} bytes ({self.body_env})"
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._reject(scope, send, 413, too_big)
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._reject(scope, send, 413, too_big)
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _reject(
        self, scope, send, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        client = scope.get("client") or ("-", 0)
        log.warning("%s %s %s -> %d: %s", client[0], scope["method"], scope["path"], status, message)
        start, body = json_error(status, message, headers)
        await send(start)
        await send(body)

    async def _patched_docs(self, scope, receive, send) -> None:
        """/docs.json as BentoML writes it, made valid OpenAPI 3.0, plus a GET operation for each GET route."""
        parts: list[bytes] = []
        start: dict = {}

        async def capture(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                parts.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(parts)
        if start.get("status") == 200:
            doc = json.loads(body)
            for route in GET_ROUTES:
                post = doc.get("paths", {}).get(route, {}).get("post")
                if post:
                    get = {k: v for k, v in post.items() if k != "requestBody"}
                    doc["paths"][route]["get"] = {
                        **get,
                        "operationId": post.get("operationId", route) + "__get",
                    }
            doc.setdefault("paths", {}).update(self.extra_docs)
            body = json.dumps(openapi30(doc)).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
