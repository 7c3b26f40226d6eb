"""BentoML's traffic timeout with its timer cancelled when the request ends.

BentoML's TimeoutMiddleware arms a `loop.call_later` for every request, health probes and 404s
included, and never cancels it, so each request's timer and future stay alive for the whole
timeout (GAN_BODY_TIMEOUT_S + GAN_REQUEST_TIMEOUT_S + 30 s), so a health-probe flood grows the
worker by a few KB a request (docs/benchmarks.md, Overload). `install()` swaps in this subclass, which answers exactly as BentoML's does
(504 past the timeout), before BentoML builds its app in the worker.
"""

from __future__ import annotations

import asyncio

from bentoml._internal.server.http import traffic
from starlette.responses import JSONResponse


class CancellingTimeoutMiddleware(traffic.TimeoutMiddleware):
    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message) -> None:
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send))
        try:
            await waiter
        except asyncio.TimeoutError:
            if fut.cancel():
                message = {"error": f"Not able to process the request in {self.timeout} seconds"}
                await JSONResponse(message, status_code=504)(scope, receive, send)
        else:
            await fut
        finally:
            timer.cancel()
            if not fut.done():  # this request itself was cancelled (shutdown): so is its work
                fut.cancel()


def install() -> None:
    """Make BentoML's app factory use the cancelling middleware (it looks the class up when it
    builds the app, after the service module is imported)."""
    traffic.TimeoutMiddleware = CancellingTimeoutMiddleware
