"""The HTTP backend against a stand-in that follows the service's /generate contract (npz answers).

The stand-in computes images with the same ONNX file and gan_core.latents, and misbehaves on
demand (429, 503, dropped connections), so the tests see retries, bounded concurrency and that no
image is lost or duplicated: the dataset is byte-identical to the local backend's. One test runs
a job against a real `bentoml serve` of the model folder, so the backend follows the real contract.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from augment.backends import HttpBackend, RetryPolicy
from augment.errors import AugmentError
from augment.job import execute, run_job
from augment.request import resolve_job
from gan_core.fileio import sha256_file
from gan_core.latents import latents
from gan_core.runtime import open_generator
from tests.augment.test_job import visible
from tests.conftest import zl_feeds
from tests.service.test_http_serve import serving


class FakeService:
    """POST /generate {"model","count","seed","start_index","labels","truncation","format":"npz"}; GET /models."""

    def __init__(self, model, failures=(), delay_s=0.0):
        self.sess = open_generator(model, threads=1)
        self.sha = sha256_file(model)
        self.failures = list(failures)  # per /generate call: None (answer), 429, 503 or "drop"
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.active = self.max_active = 0
        self.served: list[int] = []  # start_index of every batch answered 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/models":
            return httpx.Response(
                200,
                json={
                    "models": [
                        {
                            "card": self.sess.card.model_dump(mode="json"),
                            "sha256": self.sha,
                            "provider": "CPU",
                        }
                    ]
                },
            )
        body = json.loads(request.content)
        with self.lock:
            fail = self.failures.pop(0) if self.failures else None
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay_s)
            if fail == "drop":
                raise httpx.ConnectError("connection reset by peer", request=request)
            if fail is not None:
                return httpx.Response(fail, json={"error": "busy"}, headers={"retry-after": "0"})
            if body["model"] != self.sess.card.name:
                return httpx.Response(404, json={"error": f"model: unknown model {body['model']!r}"})
            idx = np.arange(body["start_index"], body["start_index"] + body["count"])
            labels = np.asarray(body["labels"], np.int64)
            images = self.sess.run(
                zl_feeds(
                    latents(body["seed"], idx, self.sess.card.latent_dim, body.get("truncation")), labels
                )
            )
            buf = io.BytesIO()
            np.savez(buf, images=images, labels=labels, indices=idx, seed=body["seed"])
            with self.lock:
                self.served.append(int(body["start_index"]))
            return httpx.Response(
                200, content=buf.getvalue(), headers={"content-type": "application/octet-stream"}
            )
        finally:
            with self.lock:
                self.active -= 1


JOB = dict(per_class=4, classes="0,2,5,8,9", seed=7, truncation=1.5, chunk_size=6, batch_size=4)


def test_http_backend_gives_the_local_bytes_despite_429_503_and_drops(cond_onnx, tmp_path):
    run_job(cond_onnx, tmp_path / "local", **JOB)
    fake = FakeService(cond_onnx, failures=[429, None, 503, "drop", None, 429], delay_s=0.01)
    res = run_job(
        "http://svc.test#mnist-cdcgan",
        tmp_path / "http",
        concurrency=2,
        transport=httpx.MockTransport(fake),
        **JOB,
    )
    assert res.complete and res.generated == 20
    assert visible(tmp_path / "http") == visible(tmp_path / "local")
    assert sorted(fake.served) == [0, 4, 6, 10, 12, 16, 18]  # each batch answered once: none lost, none twice
    assert 1 <= fake.max_active <= 2  # bounded concurrency


def test_http_backend_gives_up_with_a_clear_error(cond_onnx, tmp_path):
    fake = FakeService(cond_onnx, failures=[503] * 10)
    backend = HttpBackend(
        "http://svc.test#mnist-cdcgan",
        batch_size=4,
        concurrency=1,
        retry=RetryPolicy(attempts=3, base_s=0.001),
        transport=httpx.MockTransport(fake),
    )
    cfg = resolve_job(backend.card, backend.model_sha256, per_class=1)
    with pytest.raises(AugmentError) as e:
        execute(cfg, tmp_path / "o", backend)
    assert str(e.value) == "http://svc.test/generate: gave up after 3 attempts (HTTP 503)"
    assert backend.retries == 2


def test_http_backend_names_unknown_models(cond_onnx, tmp_path):
    with pytest.raises(AugmentError) as e:
        run_job(
            "http://svc.test#nope",
            tmp_path / "o",
            per_class=1,
            transport=httpx.MockTransport(FakeService(cond_onnx)),
        )
    assert str(e.value) == "http://svc.test: unknown model 'nope'; known: mnist-cdcgan"


def test_http_backend_against_a_real_bentoml_serve_gives_the_local_bytes(cond_onnx, tmp_path, monkeypatch):
    """The real service's contract (/models shape, sha256, npz keys, labels, the bearer token
    GAN_API_TOKEN that server and backend both read), not the stand-in's."""
    job = dict(per_class=3, seed=11, truncation=1.5, format="npz", chunk_size=8, batch_size=5)
    run_job(cond_onnx, tmp_path / "local", **job)
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(cond_onnx, models / "mnist-cdcgan.onnx")
    monkeypatch.setenv("GAN_API_TOKEN", "s3cret")
    with serving(models) as url:
        assert httpx.post(url + "/generate", json={}).status_code == 401
        res = run_job(f"{url}#mnist-cdcgan", tmp_path / "http", concurrency=2, **job)
    assert res.complete and res.generated == 30
    assert visible(tmp_path / "http") == visible(tmp_path / "local")
    manifest = [json.loads(ln) for ln in (tmp_path / "http" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(m["index"] for m in manifest) == list(range(30))  # none missing, none twice
    assert {m["model_sha256"] for m in manifest} == {sha256_file(cond_onnx)}
