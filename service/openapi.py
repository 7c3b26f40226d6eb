"""The OpenAPI document at /docs.json, true to what the API accepts and answers.

BentoML writes one for the APIs, but inlines the request and response schemas with their unions
cut to the first member (`labels` became integer-only, `seed` non-nullable), documents only JSON
answers, and knows none of the refusals made before it (401/408/413/415/503/504). So the
operations of the API routes are rebuilt here from the same pydantic models the guard validates
with, with every answer the route can give; BentoML's document supplies the rest (health
routes, info). The document is labelled OpenAPI 3.0, so JSON-Schema-2020 forms are rewritten
into their 3.0 equivalents. `tests/service/test_schemathesis.py` checks answers against it.
"""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service.limits import FIELD_LIMITS
from service.schemas import ErrorResponse, ImagesResponse, ModelsResponse
from service.settings import Settings

BINARY = {"type": "string", "format": "binary"}
IMAGE_ANSWERS = {
    "application/json": ImagesResponse,  # format png (and interpolate frames)
    "image/png": BINARY,  # format grid
    "application/octet-stream": BINARY,  # format npz
}
ANSWERS = {
    "/generate": IMAGE_ANSWERS,
    "/generate_from_latents": IMAGE_ANSWERS,
    "/interpolate": IMAGE_ANSWERS,
    "/traverse": {"image/png": BINARY, "application/octet-stream": BINARY},  # format grid / npz
    "/mix": {"image/png": BINARY, "application/octet-stream": BINARY},
    "/models": {"application/json": ModelsResponse},
}
ERRORS = {
    400: "a field is invalid or over a limit; the message names the field and the limit",
    401: "missing or wrong bearer token (GAN_API_TOKEN is set)",
    404: "unknown model; the message lists the known ones",
    408: "the body did not arrive within GAN_BODY_TIMEOUT_S",
    413: "the body is larger than GAN_MAX_BODY_BYTES",
    415: "Content-Type is not application/json",
    500: "a server bug (never a client's mistake)",
    503: "busy: the queue (GAN_MAX_QUEUE), GAN_MAX_CONCURRENCY or GAN_MAX_CONNECTIONS is full; retry after Retry-After seconds",
    504: "not done within GAN_REQUEST_TIMEOUT_S; the work was dropped",
}
BODYLESS_ERRORS = (500, 503)  # GET /models
HEADER_INT = {"schema": {"type": "string", "pattern": "^[0-9]+$"}}


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


def bound_schema(node: dict, key: str, value: int) -> None:
    """Put `key: value` on a property's schema, inside the non-null branch of an optional field."""
    for option in node.get("anyOf", ()):
        if option.get("type") != "null":
            option[key] = value
    if "anyOf" not in node:
        node[key] = value


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _responses(route: str, errors: list[int], secured: bool) -> dict:
    content = {
        media: {"schema": _ref(kind.__name__) if isinstance(kind, type) else kind}
        for media, kind in ANSWERS[route].items()
    }
    ok: dict = {
        "description": "the images (media type by `format`)" if route != "/models" else "the models",
        "content": content,
    }
    if route != "/models":
        ok["headers"] = {"X-Model": {"description": "model that answered", "schema": {"type": "string"}}}
        if route == "/generate":
            ok["headers"]["X-Seed"] = {"description": "the seed used (random when not given)", **HEADER_INT}
        if route == "/traverse":
            ok["headers"]["X-Code"] = {"description": "the swept code", "schema": {"type": "string"}}
    out = {"200": ok}
    for status in errors:
        if status == 401 and not secured:
            continue
        answer: dict = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": _ref("ErrorResponse")}},
        }
        if status == 503:
            answer["headers"] = {"Retry-After": {"description": "seconds to wait", **HEADER_INT}}
        out[str(status)] = answer
    return out


def api_document(
    base: dict, requests: dict[str, type[BaseModel]], settings: Settings, open_routes=(), extra_paths=None
) -> dict:
    """BentoML's document `base` with the API operations of `requests` {route: model} rebuilt, plus
    `extra_paths` {route: path item} of routes outside BentoML's APIs (POST /translate)."""
    entries = [
        (ErrorResponse, "serialization"),
        (ImagesResponse, "serialization"),
        (ModelsResponse, "serialization"),
    ]
    entries += [(model, "validation") for model in requests.values()]
    _, top = models_json_schema(entries, ref_template="#/components/schemas/{model}")
    schemas = top["$defs"]
    for route, limits in FIELD_LIMITS.items():  # bounds set by settings: the guard enforces them
        if route in requests:
            props = schemas[requests[route].__name__]["properties"]
            for lim in limits:
                bound_schema(props[lim.field], lim.schema_key, getattr(settings, lim.setting))
    secured = bool(settings.api_token)
    doc = json.loads(json.dumps(base))
    paths = doc.setdefault("paths", {})
    for route, model in requests.items():
        locked = secured and route not in open_routes
        old = paths.get(route, {}).get("post", {})
        keep = {k: old[k] for k in ("tags", "x-bentoml-name", "description") if k in old}
        post = {
            **keep,
            "operationId": route.strip("/") or "root",
            "requestBody": {
                "required": bool(schemas[model.__name__].get("required")),
                "content": {"application/json": {"schema": _ref(model.__name__)}},
            },
            "responses": _responses(route, [s for s in ERRORS if s != 404 or route != "/models"], locked),
        }
        if locked:
            post["security"] = [{"bearer": []}]
        paths[route] = {"post": post}
        if route == "/models":
            paths[route]["get"] = {
                **keep,
                "operationId": "models_get",
                "responses": _responses(route, list(BODYLESS_ERRORS), locked),
            }
    for route, item in (extra_paths or {}).items():
        item = json.loads(json.dumps(item))
        if secured and route not in open_routes:
            for op in item.values():
                op["security"] = [{"bearer": []}]
                op["responses"]["401"] = {
                    "description": ERRORS[401],
                    "content": {"application/json": {"schema": _ref("ErrorResponse")}},
                }
        paths[route] = item
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {}).update(schemas)
    if secured:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return openapi30(doc)


class ApiDocs:
    """ASGI middleware: GET /docs.json answers api_document() of BentoML's own document."""

    def __init__(
        self, app, requests: dict[str, type[BaseModel]], settings: Settings, open_routes=(), extra_paths=None
    ):
        self.app = app
        self.requests, self.settings, self.open_routes = requests, settings, open_routes
        self.extra_paths = extra_paths or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/docs.json" or scope["method"] != "GET":
            return await self.app(scope, receive, send)
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
            doc = api_document(
                json.loads(body), self.requests, self.settings, self.open_routes, self.extra_paths
            )
            body = json.dumps(doc).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
