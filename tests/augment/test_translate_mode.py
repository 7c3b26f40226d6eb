"""`gan augment --translate DATASET`: every image of a dataset through an image-to-image model, its
label kept, in every output format; resumable; refused when the data changes under the job; the same
bytes through the HTTP service's POST /translate."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from augment.backends import LocalBackend
from augment.errors import AugmentError
from augment.job import execute, run_job
from augment.source import resolve_translate_job
from augment.state import done_chunks
from gan.cli import main as gan
from gan_core.datasets import load_dataset
from gan_core.fileio import sha256_file
from gan_core.runtime import open_generator
from tests.augment.test_job import visible


@pytest.fixture(scope="module")
def source(domain_pair, tmp_path_factory):
    """90 test digits of domain A as an .npz dataset."""
    ds = load_dataset(domain_pair / "a", "test")
    path = tmp_path_factory.mktemp("src") / "digits.npz"
    np.savez(path, images=ds.images[:90, 0], labels=ds.labels[:90])
    return path


def test_every_format_holds_the_translations_with_the_source_labels(cyclegan_onnx, source, tmp_path):
    model = cyclegan_onnx["a2b"][0]
    src = load_dataset(source)
    want = open_generator(model, threads=1).run({"image": src.images.transpose(0, 2, 3, 1).copy()})
    for fmt in ("npz", "idx", "folder"):
        res = run_job(model, tmp_path / fmt, translate=str(source), format=fmt, chunk_size=32, batch_size=7)
        assert res.complete and res.generated == 90
        if fmt == "folder":  # class folders: read back in the manifest's (index) order
            images, labels = _by_manifest(tmp_path / fmt)
        else:
            out = load_dataset(tmp_path / fmt)
            images, labels = out.images, out.labels
        assert np.array_equal(images.transpose(0, 2, 3, 1), want) and np.array_equal(labels, src.labels)
    lines = [json.loads(x) for x in (tmp_path / "npz" / "manifest.jsonl").read_text().splitlines()]
    assert [(r["index"], r["source_index"], r["label"]) for r in lines[:2]] == [
        (0, 0, int(src.labels[0])),
        (1, 1, int(src.labels[1])),
    ]
    job = json.loads((tmp_path / "npz" / "job.json").read_text())["config"]
    assert job["source"] == {"path": str(source), "split": "train", "fingerprint": src.fingerprint(), "n": 90}


def _by_manifest(out):
    from PIL import Image

    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    images = np.stack([np.asarray(Image.open(out / r["file"]))[None] for r in rows])
    return images, np.array([r["label"] for r in rows])


class Flaky:
    """A backend whose translate fails on its `fail_at`-th call (a crash in the middle of a job)."""

    def __init__(self, backend, fail_at):
        self.backend, self.calls, self.fail_at = backend, 0, fail_at
        self.card, self.model_sha256 = backend.card, backend.model_sha256

    def translate(self, images):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("worker lost")
        return self.backend.translate(images)

    def close(self):
        pass


def test_a_failed_job_resumes_to_the_same_bytes_and_a_changed_source_is_refused(
    cyclegan_onnx, source, tmp_path
):
    model = cyclegan_onnx["b2a"][0]
    ref = run_job(model, tmp_path / "ref", translate=str(source), format="npz", chunk_size=20)
    backend = LocalBackend(model, threads=1)
    cfg = resolve_translate_job(backend.card, sha256_file(model), str(source), format="npz", chunk_size=20)
    with pytest.raises(RuntimeError, match="worker lost"):
        execute(cfg, tmp_path / "o", Flaky(backend, fail_at=3))
    assert done_chunks(tmp_path / "o") == {0}
    res = run_job(model, tmp_path / "o", translate=str(source), format="npz", chunk_size=20)
    assert res.complete and res.generated == 70 and visible(tmp_path / "o") == visible(ref.out)
    changed = tmp_path / "changed.npz"
    ds = load_dataset(source)
    np.savez(changed, images=ds.images[:, 0], labels=ds.labels)
    with pytest.raises(RuntimeError):
        execute(resolve_translate_job(backend.card, sha256_file(model), str(changed), chunk_size=20), tmp_path / "p",
                Flaky(backend, fail_at=3))  # fmt: skip
    np.savez(
        changed, images=255 - ds.images[:, 0], labels=ds.labels
    )  # the data changes under the half-done job
    with pytest.raises(AugmentError, match=r"out: .* holds a different job \(source: existing"):
        run_job(model, tmp_path / "p", translate=str(changed), chunk_size=20)
    cfg_p = resolve_translate_job(backend.card, sha256_file(model), str(source), chunk_size=20)
    stale = cfg_p.model_copy(update={"source": cfg_p.source.model_copy(update={"path": str(changed)})})
    with pytest.raises(AugmentError, match="translate: .* changed since the job started"):
        execute(stale, tmp_path / "q", backend)


def test_bad_requests_fail_with_one_line(cyclegan_onnx, cond_onnx, source, tmp_path, capsys):
    a2b = str(cyclegan_onnx["a2b"][0])
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, images=np.zeros((4, 28, 28, 3), np.uint8))
    cases = [
        (["--model", a2b, "--out", str(tmp_path / "x"), "--translate", str(rgb)],
         f"translate: {rgb} holds [3, 28, 28] (C, H, W) images; model 'mnist-cyclegan-a2b' translates [1, 28, 28] (a2b, domain a)"),
        (["--model", a2b, "--out", str(tmp_path / "x"), "--translate", str(source), "--per-class", "3"],
         "per_class: translate mode translates every image of the dataset; omit it"),
        (["--model", a2b, "--out", str(tmp_path / "x"), "--total", "3"],
         "model 'mnist-cyclegan-a2b' translates images: give --translate DATASET (images to translate)"),
        (["--model", str(cond_onnx), "--out", str(tmp_path / "x"), "--translate", str(source)],
         "translate: model 'mnist-cdcgan' does not translate images (it has no image input)"),
        (["--model", a2b, "--out", str(tmp_path / "x"), "--translate", str(tmp_path / "nope")],
         f"translate: {tmp_path / 'nope'}: no such file or folder"),
    ]  # fmt: skip
    for args, message in cases:
        assert gan(["augment", *args, "--no-progress"]) == 2
        assert capsys.readouterr().err.strip() == f"gan augment: error: {message}"


def test_http_backend_translates_through_the_service(cyclegan_onnx, source, tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from service.core import ServingCore
    from service.settings import Settings
    from service.translate import translate_routes

    local = run_job(
        cyclegan_onnx["a2b"][0], tmp_path / "local", translate=str(source), format="npz", chunk_size=40
    )
    core = ServingCore(
        Settings.from_env({"GAN_MODELS_DIR": str(cyclegan_onnx["a2b"][0].parent), "GAN_ORT_THREADS": "1"})
    )
    routes = [*translate_routes(lambda: core), Route("/models", lambda r: JSONResponse(core.models_doc()))]
    with TestClient(Starlette(routes=routes)) as app:

        def forward(request: httpx.Request) -> httpx.Response:
            r = app.request(request.method, request.url.raw_path.decode(), content=request.content,
                            headers=dict(request.headers))  # fmt: skip
            return httpx.Response(r.status_code, content=r.content, headers=r.headers)

        res = run_job("http://svc#mnist-cyclegan-a2b", tmp_path / "http", translate=str(source), format="npz",
                      chunk_size=40, batch_size=16, transport=httpx.MockTransport(forward))  # fmt: skip
    core.close()
    assert (
        res.complete
        and (tmp_path / "http" / "train.npz").read_bytes() == (local.out / "train.npz").read_bytes()
    )
