"""The request guard as plain ASGI: hang-ups, slow bodies, the concurrency cap and the bearer token."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from service.guard import RequestGuard
from service.schemas import GenerateRequest, ModelsRequest
from service.settings import Settings

SCHEMAS = {"/generate": GenerateRequest, "/models": ModelsRequest}
JSON = [(b"content-type", b"application/json")]


class Inner:
    """The app behind the guard: records calls; optionally waits for `release` before answering."""

    def __init__(self, release: asyncio.Event | None = None):
        self.calls, self.release = [], release

    async def __call__(self, scope, receive, send):
        self.calls.append((await receive())["body"])
        if self.release is not None:
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def scope(path="/generate", method="POST", headers=JSON):
    return {
        "type": "http",
        "path": path,
        "method": method,
        "headers": list(headers),
        "client": ("1.2.3.4", 5),
    }


async def call(guard, sc, messages):
    """Run one request; `messages` are what the client sends, then it goes silent. -> (status, body, headers)."""
    queue = list(messages)
    out = []

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        out.append(message)

    await guard(sc, receive, send)
    status = out[0]["status"] if out else None
    body = json.loads(out[1]["body"]) if len(out) > 1 and out[1]["body"][:1] == b"{" else None
    return status, body, dict(out[0]["headers"]) if out else {}


def chunk(data: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": data, "more_body": more}


def test_a_client_hanging_up_mid_body_finishes_the_request_at_once():
    inner = Inner()
    guard = RequestGuard(inner, SCHEMAS, Settings(body_timeout_s=60))
    t0 = time.perf_counter()
    status, body, _ = asyncio.run(
        call(guard, scope(), [chunk(b'{"count": 1,', True), {"type": "http.disconnect"}])
    )
    assert time.perf_counter() - t0 < 1 and inner.calls == [] and guard.in_progress == 0
    # answered (into the void) so that the middlewares around the guard see the request end
    assert (status, body) == (499, {"error": "body: client hung up mid-body"})


def test_a_client_hanging_up_after_its_body_cancels_the_work_at_once():
    async def scenario():
        cancelled = asyncio.Event()

        async def slow_app(scope, receive, send):
            assert (await receive())["body"] == b'{"count": 5}'
            try:
                await asyncio.sleep(60)  # queued images, never answered
            except asyncio.CancelledError:
                cancelled.set()
                raise

        guard = RequestGuard(slow_app, SCHEMAS, Settings())
        t0 = time.perf_counter()
        answer = await call(guard, scope(), [chunk(b'{"count": 5}'), {"type": "http.disconnect"}])
        return answer, time.perf_counter() - t0, cancelled.is_set(), guard.in_progress

    (status, body, _), took, cancelled, in_progress = asyncio.run(scenario())
    assert took < 1 and cancelled and in_progress == 0
    assert (status, body) == (499, {"error": "client hung up before the answer; its work was dropped"})


def test_the_app_still_sees_the_disconnect_and_a_finished_answer_is_not_cut():
    async def scenario():
        seen = []

        async def app(scope, receive, send):
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            seen.append((await receive())["type"])  # as Starlette does after answering

        guard = RequestGuard(app, SCHEMAS, Settings())
        answer = await call(guard, scope(), [chunk(b"{}"), {"type": "http.disconnect"}])
        return answer, seen

    (status, _, _), seen = asyncio.run(scenario())
    assert status == 200 and seen == ["http.disconnect"]


def test_a_body_that_stops_arriving_gets_408_after_the_deadline():
    guard = RequestGuard(Inner(), SCHEMAS, Settings(body_timeout_s=0.3))
    t0 = time.perf_counter()
    status, body, headers = asyncio.run(call(guard, scope(), [chunk(b'{"count"', True)]))
    assert 0.25 < time.perf_counter() - t0 < 2
    assert (status, body) == (408, {"error": "body: not complete within 0.3 s (GAN_BODY_TIMEOUT_S)"})
    assert headers[b"connection"] == b"close" and guard.in_progress == 0


def test_requests_past_the_concurrency_cap_get_503_and_the_others_go_on():
    async def scenario():
        release = asyncio.Event()
        inner = Inner(release)
        guard = RequestGuard(inner, SCHEMAS, Settings(max_concurrency=2))
        running = [asyncio.create_task(call(guard, scope(), [chunk(b"{}")])) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await call(guard, scope(), [chunk(b"{}")])
        release.set()
        done = await asyncio.gather(*running)
        after = await call(guard, scope(), [chunk(b"{}")])
        return refused, done, after, inner.calls

    refused, done, after, calls = asyncio.run(scenario())
    status, body, headers = refused
    assert (status, headers[b"retry-after"]) == (503, b"1")
    assert body == {
        "error": "server busy: 2 requests in progress, limit 2 (GAN_MAX_CONCURRENCY); retry later"
    }
    assert [d[0] for d in done] == [200, 200] and after[0] == 200 and len(calls) == 3


def test_bearer_token_guards_the_generation_routes_only():
    inner = Inner()
    guard = RequestGuard(inner, SCHEMAS, Settings(api_token="s3cret"))
    message = {"error": "authorization: send the header Authorization: Bearer <GAN_API_TOKEN>"}
    for auth in (None, b"Bearer wrong", b"Basic s3cret", b"s3cret"):
        headers = JSON + ([(b"authorization", auth)] if auth else [])
        status, body, hdrs = asyncio.run(call(guard, scope(headers=headers), [chunk(b"{}")]))
        assert (status, body, hdrs[b"www-authenticate"]) == (401, message, b"Bearer")
    ok = JSON + [(b"authorization", b"Bearer s3cret")]
    assert asyncio.run(call(guard, scope(headers=ok), [chunk(b'{"count": 2}')]))[0] == 200
    assert asyncio.run(call(guard, scope("/models", "GET", headers=[]), []))[0] == 200  # open route
    assert inner.calls == [b'{"count": 2}', b"{}"]


@pytest.mark.parametrize("ctype", [b"text/plain", b"application/x-www-form-urlencoded", None])
def test_a_post_must_be_labelled_json(ctype):
    inner = Inner()
    guard = RequestGuard(inner, SCHEMAS, Settings())
    headers = [(b"content-type", ctype)] if ctype else []
    status, body, _ = asyncio.run(call(guard, scope(headers=headers), [chunk(b'{"count": 1}')]))
    got = ctype.decode() if ctype else "none"
    want = f"content-type: must be application/json (send the header Content-Type: application/json), got {got!r}"
    assert (status, body, inner.calls) == (415, {"error": want}, [])
