"""A real `bentoml serve` on a loopback port: BentoML's client, plain httpx, a restart, hostile
clients (hang-ups, stalled headers and bodies), bad model files and settings."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import bentoml
import httpx
import pytest

from service.local_server import REPO, bulk_requests_in_flight, generating, local_serve


def serving(models_dir):
    """A real `bentoml serve` of `models_dir` with one ORT thread (shared with the augment HTTP test)."""
    return local_serve(models_dir, threads=1)


def test_bentoml_serve_answers_clients_and_restarts_to_the_same_bytes(tmp_path, cond_onnx):
    shutil.copy(cond_onnx, tmp_path / "mnist-cdcgan.onnx")
    body = {"count": 6, "seed": 123, "format": "npz", "truncation": 2.0}
    with serving(tmp_path) as url:
        first = httpx.post(url + "/generate", json=body, timeout=60)
        assert first.status_code == 200
        parts = [
            httpx.post(url + "/generate", json={**body, "count": 3, "start_index": s}, timeout=60)
            for s in (0, 3)
        ]
        with bentoml.SyncHTTPClient(url) as client:
            assert client.is_ready()
            doc = client.generate(count=2, seed=123, start_index=4, truncation=2.0)
            models = client.models()
        assert httpx.get(url + "/livez").status_code == 200
        metrics = httpx.get(url + "/metrics").text
        assert 'gan_http_requests_total{model="mnist-cdcgan",route="/generate",status="2xx"}' in metrics
        bad = httpx.post(url + "/generate", json={"count": 100_000})
        assert (bad.status_code, bad.json()) == (
            400,
            {"error": "count: must be <= 1024 (GAN_MAX_COUNT), got 100000"},
        )
    with serving(tmp_path) as url:
        again = httpx.post(url + "/generate", json=body, timeout=60)
        png = httpx.post(
            url + "/generate", json={"count": 2, "seed": 123, "start_index": 4, "truncation": 2.0}, timeout=60
        )
    assert again.content == first.content  # byte-identical after a restart
    import io

    import numpy as np

    full = np.load(io.BytesIO(first.content))["images"]
    halves = [np.load(io.BytesIO(p.content))["images"] for p in parts]
    assert np.array_equal(np.concatenate(halves), full)
    doc = (
        doc
        if isinstance(doc, dict)
        else doc.model_dump()
        if hasattr(doc, "model_dump")
        else __import__("json").loads(doc)
    )
    assert [im["png"] for im in doc["images"]] == [im["png"] for im in png.json()["images"]]
    assert [im["index"] for im in doc["images"]] == [4, 5]
    assert base64.b64decode(doc["images"][0]["png"])[:8] == b"\x89PNG\r\n\x1a\n"
    models = models if isinstance(models, dict) else models.model_dump()
    assert models["models"][0]["card"]["name"] == "mnist-cdcgan"


@pytest.mark.parametrize("concurrency", [16])
def test_concurrent_clients_get_their_own_bytes(tmp_path, cond_onnx, concurrency):
    """Many simultaneous single-image requests (merged into shared ORT calls) vs one bulk request."""
    from concurrent.futures import ThreadPoolExecutor

    shutil.copy(cond_onnx, tmp_path / "mnist-cdcgan.onnx")
    with serving(tmp_path) as url, httpx.Client(base_url=url, timeout=60) as c:
        bulk = c.post("/generate", json={"count": 48, "seed": 9}).json()["images"]
        with ThreadPoolExecutor(concurrency) as pool:
            singles = list(
                pool.map(
                    lambda i: c.post("/generate", json={"count": 1, "seed": 9, "start_index": i}), range(48)
                )
            )
    assert all(r.status_code == 200 for r in singles)
    assert [r.json()["images"][0]["png"] for r in singles] == [im["png"] for im in bulk]


def bad_models(folder, good):
    """The good model beside a zero-byte, a truncated and a text .onnx, and a second file of its name."""
    shutil.copy(good, folder / "a-good.onnx")
    shutil.copy(good, folder / "b-same-name.onnx")
    (folder / "c-empty.onnx").write_bytes(b"")
    (folder / "d-truncated.onnx").write_bytes(good.read_bytes()[:5000])
    (folder / "e-text.onnx").write_text("not a model\n")
    return {
        "b-same-name.onnx": "b-same-name.onnx: model name 'mnist-cdcgan' is also used by a-good.onnx",
        "c-empty.onnx": "c-empty.onnx: not a readable ONNX file (not an ONNX model (no graph))",
        "d-truncated.onnx": "d-truncated.onnx: not a readable ONNX file (truncated or malformed protobuf record)",
        "e-text.onnx": "e-text.onnx: not a readable ONNX file (unsupported protobuf wire type 6)",
    }


def metric(url: str, series: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


in_progress = generating  # /generate requests being answered, from service.metrics' gauge


def first_line(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).split(b"\r\n")[0]
    except TimeoutError:
        return b"(nothing)"


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """The whole answer: headers and body may come in separate packets."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def test_bad_files_are_skipped_and_hostile_clients_do_not_pin_the_server(tmp_path, cond_onnx):
    failed = bad_models(tmp_path, cond_onnx)
    limits = {
        "GAN_MAX_CONNECTIONS": "16",
        "GAN_HEADER_TIMEOUT_S": "1",
        "GAN_BODY_TIMEOUT_S": "1",
        # one image per ORT call: 8,192 queued images take long even for a tiny model
        "GAN_MAX_BATCH": "1",
    }
    log = tmp_path / "serve.log"
    with local_serve(tmp_path, env=limits, log_path=log) as url:
        port = int(url.rsplit(":", 1)[1])
        doc = httpx.get(url + "/models").json()
        assert [m["name"] for m in doc["models"]] == ["mnist-cdcgan"]
        assert {f["file"]: f["error"] for f in doc["failed"]} == failed
        skipped = [ln for ln in log.read_text().splitlines() if "not serving" in ln]
        assert len(skipped) == 4 and all(
            str(tmp_path) in ln for ln in skipped
        )  # one line each, naming the file
        assert "Traceback" not in log.read_text()

        # hang-ups mid-body: headers promise 1,000 bytes, 12 come, the client leaves
        for _ in range(300):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b'Content-Length: 1000\r\n\r\n{"count": 1,')  # fmt: skip
        deadline = time.monotonic() + 5
        while in_progress(url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert in_progress(url) == 0  # none pinned (they used to wait out BentoML's 300 s timeout)

        # hang-ups after the whole body: the queued images are dropped, not computed for nobody
        body = b'{"count": 1024, "format": "npz"}'
        gone = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]  # 8,192 images
        for s in gone:
            s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        time.sleep(0.2)  # queued by now (some), most not yet computed
        for s in gone:
            s.close()
        deadline = time.monotonic() + 5
        while in_progress(url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert in_progress(url) == 0
        assert metric(url, 'gan_images_dropped_total{model="mnist-cdcgan"}') >= 1024

        # stalled headers: past the cap, new connections evict the oldest stalled ones; the rest time out
        stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(24)]
        for s in stalled:
            s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-")
        t0 = time.monotonic()
        ok = httpx.post(url + "/generate", json={"seed": 3}, timeout=10)
        assert ok.status_code == 200  # served although stalled connections fill the cap
        answers = [first_line(s, 5) for s in stalled]
        assert answers == [b"HTTP/1.1 408 Request Timeout"] * 24 and time.monotonic() - t0 < 4

        # a stalled body: headers complete, then silence
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b'Content-Length: 50\r\n\r\n{"count"')  # fmt: skip
            answer = read_until_closed(s, 5)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert answer.endswith(b'{"error": "body: not complete within 1 s (GAN_BODY_TIMEOUT_S)"}')
        refused = 'gan_http_connections_refused_total{reason="%s"}'
        evicted, late = metric(url, refused % "evicted"), metric(url, refused % "header_timeout")
        assert evicted >= 24 + 1 - 16 and evicted + late >= 24


def test_sigterm_answers_bulk_requests_in_flight_and_leaves_no_process(tmp_path, cond_onnx):
    """`bentoml serve` signals its whole process group: the worker's bulk process (service.bulk)
    must outlive the signal until the requests it works for are answered, then go with the worker."""
    import psutil

    shutil.copy(cond_onnx, tmp_path / "mnist-cdcgan.onnx")
    log = tmp_path / "serve.log"
    with local_serve(tmp_path, env={"GAN_MAX_BATCH": "1"}, log_path=log) as url:
        (server,) = [p for p in psutil.Process().children() if "serve" in " ".join(p.cmdline())]
        tree = [server, *server.children(recursive=True)]
        assert any("multiprocessing" in " ".join(p.cmdline()) for p in tree)  # the bulk process is there
        clients, answers = bulk_requests_in_flight(url, 3)  # > 8 images: made in the bulk process
        assert in_progress(url) == 3
        os.killpg(server.pid, signal.SIGTERM)
        for t in clients:
            t.join(60)
        server.wait(30)
    assert answers == [200, 200, 200]
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []
    # the worker's shutdown hook ends the bulk process and releases its queues' semaphores
    assert "leaked semaphore" not in log.read_text()


def serve_refused(env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bentoml", "serve", "service.app:GeneratorService", "--port", "1"]
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **env}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"GAN_MAX_COUNT": "abc"}, "GAN_MAX_COUNT: must be an integer >= 1, got 'abc'"),
        (
            {"GAN_DEFAULT_MODEL": "nope", "GAN_MODELS_DIR": "ONE"},  # ONE: the shipped default alone
            "GAN_DEFAULT_MODEL: unknown model 'nope'; usable: mnist-cdcgan",
        ),
        (
            {"GAN_MODELS_DIR": "EMPTY"},
            "GAN_MODELS_DIR: no usable model in EMPTY (the folder holds no .onnx file)",
        ),
    ],
    ids=["bad-setting", "unknown-default", "empty-folder"],
)
def test_serve_refuses_to_start_with_one_line(tmp_path, env, line):
    if "ONE" in env.values():
        (tmp_path / "one").mkdir()
        shutil.copy(REPO / "service" / "models" / "mnist-cdcgan.onnx", tmp_path / "one")
    env = {k: {"EMPTY": str(tmp_path), "ONE": str(tmp_path / "one")}.get(v, v) for k, v in env.items()}
    out = serve_refused(env)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "gan_service: cannot start: " + line.replace(
        "EMPTY", str(tmp_path)
    )
    assert "Traceback" not in out.stderr + out.stdout


def test_a_port_taken_before_the_server_binds_it_is_replaced(tmp_path, cond_onnx, monkeypatch):
    """local_serve picks a free port, and something may take it before BentoML binds it: another port."""
    from service import local_server

    shutil.copy(cond_onnx, tmp_path / "mnist-cdcgan.onnx")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        picks, free = iter([taken]), local_server.free_port
        monkeypatch.setattr(local_server, "free_port", lambda: next(picks, None) or free())
        with serving(tmp_path) as url:
            assert url != f"http://127.0.0.1:{taken}"
            assert httpx.get(url + "/readyz", timeout=10).status_code == 200
