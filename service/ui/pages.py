"""The playground's ASGI pieces: the static page (mounted at /ui) and the two root pages.

The page must work on a machine with no internet, so every answer carries a Content-Security-Policy
that lets the browser load scripts, styles and data only from this service. BentoML's own root page
loads a remote tag-manager script, so `/` redirects to the playground instead, and `/docs` serves
the API reference (Swagger UI from the files BentoML bundles, without that script and without
Swagger's online validator badge).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse, RedirectResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
# Swagger UI sets inline style attributes and inlines its icons as data: URIs
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)


def _with_headers(app, csp: str):
    """Wrap an ASGI app so that each of its answers carries the CSP and nosniff headers."""
    extra = [(b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff")]

    async def wrapped(scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


def playground_app() -> Starlette:
    """The page and its scripts as static files (index.html for the folder itself)."""
    files = _with_headers(StaticFiles(directory=STATIC, html=True), PAGE_CSP)
    return Starlette(routes=[Mount("/", app=files)])


class RootPages:
    """ASGI middleware: GET / (and /ui) -> 307 to the playground, GET /docs -> the offline API reference."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path in ("/", "/ui"):
                target = scope.get("root_path", "") + "/ui/"
                return await RedirectResponse(target, status_code=307)(scope, receive, send)
            if path == "/docs":
                docs = _with_headers(FileResponse(STATIC / "api-docs.html"), DOCS_CSP)
                return await docs(scope, receive, send)
        return await self.app(scope, receive, send)
