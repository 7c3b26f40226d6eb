"""Connection limits below ASGI: a cap on open connections and a deadline for request headers.

A request whose headers never finish never reaches the ASGI app, so no middleware can time it
out: 20,400 idle half-sent requests once filled a worker's file descriptors and every new
request timed out, with nothing logged. uvicorn has no header timeout, and BentoML starts uvicorn
itself without passing it options, so `install()` registers this protocol as uvicorn's "auto"
HTTP protocol (read when the worker's server starts, after the service module is imported).
It is uvicorn's own protocol with these additions:

- a connection still waiting for a request's headers GAN_HEADER_TIMEOUT_S after it opened (or
  after its previous answer, on keep-alive) is answered 408 and closed;
- at GAN_MAX_CONNECTIONS open connections (per worker), a new one evicts the connection that has
  waited longest for headers (408, so slow or idle clients cannot lock others out); when every
  connection has a request in progress, the new one is answered 503 + Retry-After and closed;
  either way its file descriptor is freed at once instead of held;
- a request whose line and headers exceed GAN_MAX_HEADER_BYTES, or which sends more than
  GAN_MAX_HEADERS header fields, is answered 431 and closed as soon as the limit is passed:
  the httptools parser buffers an unfinished header whatever its size, so the bytes of a
  request's head are counted here as they arrive, and its fields as the parser reports them;
- each of these is logged, throttled (service.throttled_log), and counted in /metrics.

The body deadline (GAN_BODY_TIMEOUT_S) is kept by service.guard, where the body is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from service.metrics import connection_refused
from service.settings import Settings
from service.throttled_log import ThrottledLog

log = ThrottledLog(logging.getLogger("gan_service"))


def raw_answer(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 {"error": message} answer that closes the connection (503s say Retry-After)."""
    body = json.dumps({"error": message}).encode()
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
    head += f"content-length: {len(body)}\r\n" + ("retry-after: 1\r\n" if status == 503 else "")
    return (head + "connection: close\r\n\r\n").encode() + body


class LimitedHTTPProtocol(AutoHTTPProtocol):
    """uvicorn's HTTP protocol (h11 or httptools) with a connection cap and a header deadline."""

    settings = Settings()  # replaced by install()
    waiting: dict[LimitedHTTPProtocol, None] = {}  # connections waiting for headers, oldest first

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_open = False  # between a request's first byte and the end of its headers
        self._head_bytes = 0
        self._head_fields = 0
        self._parsed_bytes = 0
        self._head_refusal: str | None = None
        cap = self.settings.max_connections
        if len(self.connections) > cap:
            if self.waiting:
                oldest = next(iter(self.waiting))
                message = f"headers: not complete when a new connection needed the place (limit {cap}, GAN_MAX_CONNECTIONS)"
                oldest._refuse("evicted", 408, message)
            else:
                message = f"server busy: {cap} connections have requests in progress, limit {cap} (GAN_MAX_CONNECTIONS); retry later"
                self._refuse("limit", 503, message)
                return
        self._arm()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        head_open = self._head_open
        super().data_received(data)
        if self.cycle is not cycle:  # a request's headers are in: the ASGI side takes over
            self._disarm()
        if head_open and self._head_open and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.settings.max_header_bytes:
                self._refuse("header_size", 431, self._too_large_head())

    # httptools parser callbacks (uvicorn's h11 protocol bounds its own buffer instead: 400)
    # Two counts bound a head: the wire bytes received while it is open (from the chunk after the one
    # it began in: they catch an unfinished header, which the parser buffers unseen) and the bytes
    # of its parsed parts (a whole head that arrives in one chunk).
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open, self._head_bytes, self._head_fields, self._parsed_bytes = True, 0, 0, 0

    def on_url(self, url: bytes) -> None:
        self._parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        self._parsed(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _parsed(self, n: int) -> None:
        self._parsed_bytes += n
        if (
            self._head_fields > self.settings.max_headers
            or self._parsed_bytes > self.settings.max_header_bytes
        ):
            # the parser turns this into an error, which uvicorn answers through send_400_response
            self._head_refusal = self._too_large_head()
            raise ValueError(self._head_refusal)

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_refusal is not None:
            return self._refuse("header_size", 431, self._head_refusal)
        super().send_400_response(msg)

    def _too_large_head(self) -> str:
        s = self.settings
        return (
            f"headers: must be <= {s.max_header_bytes} bytes ({s.ENV['max_header_bytes']}) "
            f"and <= {s.max_headers} fields ({s.ENV['max_headers']})"
        )

    def on_response_complete(self) -> None:
        done = self.cycle
        super().on_response_complete()
        if self.cycle is done and not self.transport.is_closing():
            self._arm()  # keep-alive: the next request's headers get the same deadline

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.settings.header_timeout_s, self._headers_late)
        self.waiting[self] = None

    def _disarm(self) -> None:
        self.waiting.pop(self, None)
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        message = f"headers: not complete within {self.settings.header_timeout_s:g} s (GAN_HEADER_TIMEOUT_S)"
        self._refuse("header_timeout", 408, message)

    def _refuse(self, reason: str, status: int, message: str) -> None:
        """Answer `status` with `message` straight to the socket and close it (no request is running)."""
        self._disarm()
        if self.transport.is_closing():
            return
        client = self.client[0] if self.client else "-"
        log.warning(reason, "%s connection closed: %s", client, message)
        connection_refused(reason)
        self.transport.write(raw_answer(status, message))
        self.transport.close()


def install(settings: Settings) -> None:
    """Make uvicorn's default ("auto") HTTP protocol the limited one, configured by `settings`."""
    from uvicorn import config

    LimitedHTTPProtocol.settings = settings
    config.HTTP_PROTOCOLS["auto"] = f"{__name__}:LimitedHTTPProtocol"
