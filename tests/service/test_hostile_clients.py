"""Hostile clients against a real `bentoml serve` holding the family routes' models (tiny DCGANs,
InfoGAN, StyleGAN and CycleGAN): every size-like field is refused before anything
is built, headers are bounded, probe floods leave memory flat, forged npz bodies are 4xx, two
servers keep their own metrics, and refusals are logged throttled. Each case is answered within
a short client timeout (these requests once held a worker for 40 s) and the worker's RSS is
compared before and after."""

from __future__ import annotations

import http.client
import io
import socket
import threading
import zipfile

import httpx
import numpy as np
import pytest
from numpy.lib import format as npformat

from service.limits import FIELD_LIMITS
from service.local_server import local_server
from service.settings import Settings

MiB = 2**20


@pytest.fixture(scope="module")
def server(family_routes_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("hostile-log") / "serve.log"
    with local_server(family_routes_dir, env={"GAN_DEFAULT_MODEL": "mnist-cdcgan"}, log_path=log) as s:
        yield s


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def forged_npz(shape: tuple, payload: bytes = b"x" * 16) -> bytes:
    """An npz whose images.npy header claims `shape` over `payload`."""
    npy = io.BytesIO()
    npformat.write_array_header_1_0(npy, {"descr": "|u1", "fortran_order": False, "shape": shape})
    npy.write(payload)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("images.npy", npy.getvalue())
    return buf.getvalue()


LIMIT = Settings()
REFUSED = [
    ("/traverse", {"model": "mnist-infogan", "code": "c1", "steps": 10**9},
     f"steps: must be <= {LIMIT.max_steps} (GAN_MAX_STEPS), got 1000000000"),
    ("/traverse", {"model": "mnist-stylegan", "code": "truncation_psi", "steps": 10**8},
     f"steps: must be <= {LIMIT.max_steps} (GAN_MAX_STEPS), got 100000000"),
    ("/traverse", {"model": "mnist-infogan", "code": "c1", "values": [0.0] * 100_000},
     f"values: must be <= {LIMIT.max_steps} (GAN_MAX_STEPS), got 100000"),
    ("/traverse", {"model": "mnist-infogan", "code": "digit", "seeds": list(range(100_000))},
     f"seeds: must be <= {LIMIT.max_count} (GAN_MAX_COUNT), got 100000"),
    ("/traverse", {"model": "mnist-infogan", "code": "c1", "truncation": 1e308},
     "truncation: Input should be less than or equal to 10"),
    ("/interpolate", {"seeds": [1, 2], "label": 0, "steps": 10**9},
     f"steps: must be <= {LIMIT.max_steps} (GAN_MAX_STEPS), got 1000000000"),
    ("/generate", {"count": 10**12}, f"count: must be <= {LIMIT.max_count} (GAN_MAX_COUNT), got 1000000000000"),
    ("/generate_from_latents", {"latents": [[0.0]] * 100_000},
     f"latents: must be <= {LIMIT.max_latents} (GAN_MAX_LATENTS), got 100000"),
    ("/mix", {"model": "mnist-stylegan", "row_seeds": list(range(17)), "col_seeds": [1]},
     "row_seeds: List should have at most 16 items after validation, not 17"),
]  # fmt: skip


def post(url: str, route: str, body: dict) -> httpx.Response:
    return httpx.post(url + route, json=body, timeout=5)  # the allocations these once made took 2-40 s


def test_size_fields_are_refused_before_anything_is_built(server):
    rss = server.worker_rss()
    for route, body, message in REFUSED:
        r = post(server.url, route, body)
        assert (r.status_code, r.json()) == (400, {"error": message}), (route, body)
    # a one-image request right after is answered, and the worker grew by no allocation
    assert post(server.url, "/generate", {"seed": 1}).status_code == 200
    assert server.worker_rss() - rss < 32 * MiB
    assert "Traceback" not in server.log_path.read_text()


def test_openapi_shows_every_settings_bound(server):
    doc = httpx.get(server.url + "/docs.json", timeout=10).json()
    schemas = doc["components"]["schemas"]
    for route, limits in FIELD_LIMITS.items():
        ref = doc["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        props = schemas[ref.rsplit("/", 1)[1]]["properties"]
        for lim in limits:
            assert props[lim.field][lim.schema_key] == getattr(LIMIT, lim.setting), (route, lim)
    assert schemas["TraverseRequest"]["properties"]["truncation"]["maximum"] == 10


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (npz(images=np.uint8(7)), "npz: 'images' is a single value; it must be an array with one row per image"),
        (forged_npz((2**45,)), "images: must be <= 256 per request (GAN_MAX_TRANSLATE_IMAGES), got 35184372088832"),
        (forged_npz((2, 28, 28)), "npz: 'images' header claims shape [2, 28, 28] (1568 bytes) but the member holds 16"),
        (npz(images=np.zeros((2, 28, 28), np.uint8), labels=np.int64(3)),
         "npz: 'labels' is a single value; it must be an array with one row per image"),
    ],
    ids=["0-d", "huge-shape", "short-data", "0-d-labels"],
)  # fmt: skip
def test_forged_npz_bodies_are_400s_naming_the_field(server, body, message):
    r = httpx.post(
        server.url + "/translate?direction=a2b",
        content=body,
        headers={"content-type": "application/x-npz"},
        timeout=5,
    )
    assert (r.status_code, r.json()) == (400, {"error": message})
    assert "Traceback" not in server.log_path.read_text()


def send_head(port: int, size: int) -> bytes:
    """Open a request, send `size` bytes of one unfinished header, and return what comes back."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(size // 65536):
                s.sendall(b"a" * 65536)
        except OSError:
            pass  # refused and closed mid-send, as it should be
        s.settimeout(5)
        try:
            return s.recv(4096)
        except OSError:
            return b"(reset)"


def test_header_bytes_and_fields_are_bounded_with_431(server):
    port = int(server.url.rsplit(":", 1)[1])
    rss = server.worker_rss()
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(send_head(port, 4 * MiB))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 8 and server.worker_rss() - rss < 16 * MiB  # was +330 MiB for 8 x 32 MiB
    assert [a.split(b"\r\n")[0] for a in answers if a != b"(reset)"] == [
        b"HTTP/1.1 431 Request Header Fields Too Large"
    ] * len([a for a in answers if a != b"(reset)"])
    assert any(a != b"(reset)" for a in answers)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/readyz", headers={f"X-F{i}": "v" for i in range(LIMIT.max_headers + 1)})
    r = conn.getresponse()
    assert (r.status, r.read()) == (
        431,
        b'{"error": "headers: must be <= 65536 bytes (GAN_MAX_HEADER_BYTES) and <= 100 fields (GAN_MAX_HEADERS)"}',
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/readyz", headers={f"X-F{i}": "v" * 500 for i in range(90)})  # 45 KB: within both
    assert conn.getresponse().status == 200


def test_a_probe_flood_leaves_memory_flat(server):
    port = int(server.url.rsplit(":", 1)[1])

    def probe(path: str, n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(n):
            conn.request("GET", path)
            conn.getresponse().read()
        conn.close()

    probe("/readyz", 300)  # warm
    rss = server.worker_rss()
    for path in ("/readyz", "/livez", "/no-such-page"):
        probe(path, 3000)
    # each request held ~4.7 KB until BentoML's timeout fired (9,000 -> ~40 MiB)
    assert server.worker_rss() - rss < 8 * MiB


def test_refusals_are_logged_throttled(server):
    before = server.log_path.read_text().count("-> 400: count:")
    for _ in range(200):
        assert post(server.url, "/generate", {"count": 5000}).status_code == 400
    lines = server.log_path.read_text().count("-> 400: count:")
    assert lines - before <= 2  # was one line per refusal


def test_two_servers_under_one_home_keep_their_own_metrics(models_dir, tmp_path):
    home = {"BENTOML_HOME": str(tmp_path / "home")}
    series = 'gan_http_requests_total{model="mnist-cdcgan",route="/generate",status="2xx"}'

    def count(url: str) -> float:
        for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
            if line.startswith(series + " "):
                return float(line.split()[-1])
        return 0.0

    with local_server(models_dir, env=home) as first:
        for seed in range(3):
            assert post(first.url, "/generate", {"seed": seed}).status_code == 200
        with local_server(models_dir, env=home) as second:
            assert post(second.url, "/generate", {"seed": 9}).status_code == 200
            assert (count(first.url), count(second.url)) == (3.0, 1.0)
