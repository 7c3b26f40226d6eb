"""A real `bentoml serve` on a loopback port: BentoML's client, plain httpx, and a restart."""

from __future__ import annotations

import base64
import shutil

import bentoml
import httpx
import pytest

from service.local_server import local_serve


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
        assert "bentoml_service_request_total" in metrics and 'endpoint="/generate"' in metrics
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
