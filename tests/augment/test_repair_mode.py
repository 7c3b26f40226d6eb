"""`gan augment --translate DATASET` with repair and super-resolution models: every image of a dataset
upscaled or repaired (a fill-in model fills the centre box it was trained on), labels kept, in shards
that merge to the same bytes, resumable after a crash, and the same bytes through POST /upscale."""

from __future__ import annotations

import numpy as np
import pytest

from augment.backends import LocalBackend
from augment.errors import AugmentError
from augment.job import execute, run_job
from augment.merge import merge_outputs
from augment.source import resolve_translate_job
from gan_core.datasets import load_dataset
from gan_core.fileio import sha256_file
from gan_core.imaging import centre_masks
from gan_core.runtime import open_generator
from tests.augment.test_job import visible
from tests.augment.test_translate_mode import Flaky


@pytest.fixture(scope="module")
def digits(mnist_small, tmp_path_factory):
    """50 digits as they are (28 px) and shrunk 4x (7 px), labels kept."""
    ds = load_dataset(mnist_small)
    d = tmp_path_factory.mktemp("repair-src")
    images, labels = ds.images[:50, 0], ds.labels[:50]
    small = images.reshape(50, 7, 4, 7, 4).mean((2, 4)).round().astype(np.uint8)
    np.savez(d / "full.npz", images=images, labels=labels)
    np.savez(d / "small.npz", images=small, labels=labels)
    return d


def test_upscaling_a_dataset_in_shards_keeps_labels_and_merges_to_the_models_pixels(
    tiny_onnx, digits, tmp_path
):
    model = tiny_onnx("mnist-sr4")[1]
    src = load_dataset(digits / "small.npz")
    want = open_generator(model, threads=1).run({"image": src.images.transpose(0, 2, 3, 1).copy()})
    job = dict(translate=str(digits / "small.npz"), format="npz", chunk_size=16)
    ref = run_job(model, tmp_path / "ref", batch_size=7, **job)
    out = load_dataset(tmp_path / "ref")
    assert ref.complete and out.image_shape == (1, 28, 28) and np.array_equal(out.labels, src.labels)
    assert np.array_equal(out.images.transpose(0, 2, 3, 1), want)
    for s in (0, 1):
        run_job(model, tmp_path / f"s{s}", shard=s, num_shards=2, **job)
    merged = merge_outputs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    assert merged.complete and visible(tmp_path / "merged") == visible(ref.out)


def test_filling_in_a_dataset_resumes_after_a_crash_to_the_same_bytes(tiny_onnx, digits, tmp_path):
    model = tiny_onnx("mnist-inpaint")[1]
    src = load_dataset(digits / "full.npz")
    images = src.images.transpose(0, 2, 3, 1).copy()
    want = open_generator(model, threads=1).run({"image": images, "mask": centre_masks(50, 28, 28, 0.5)})
    ref = run_job(model, tmp_path / "ref", translate=str(digits / "full.npz"), format="npz", chunk_size=20)
    assert np.array_equal(load_dataset(tmp_path / "ref").images.transpose(0, 2, 3, 1), want)
    backend = LocalBackend(model, threads=1)
    cfg = resolve_translate_job(
        backend.card, sha256_file(model), str(digits / "full.npz"), format="npz", chunk_size=20
    )
    with pytest.raises(RuntimeError, match="worker lost"):
        execute(cfg, tmp_path / "o", Flaky(backend, fail_at=2))
    res = run_job(model, tmp_path / "o", translate=str(digits / "full.npz"), format="npz", chunk_size=20)
    assert res.complete and visible(tmp_path / "o") == visible(ref.out)


def test_a_dataset_the_model_cannot_take_is_one_line(tiny_onnx, tmp_path):
    bad = tmp_path / "odd.npz"
    np.savez(bad, images=np.zeros((3, 30, 30), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(AugmentError) as e:
        run_job(tiny_onnx("mnist-restore")[1], tmp_path / "x", translate=str(bad))
    assert str(e.value) == (
        f"translate: {bad} holds [1, 30, 30] (C, H, W) images; model 'mnist-restore' takes 1-channel images "
        "of sides that are multiples of 4"
    )


def test_the_http_backend_upscales_through_the_service(tiny_onnx, digits, tmp_path):
    from service.local_server import local_serve

    model = tiny_onnx("mnist-sr4")[1]
    local = run_job(
        model, tmp_path / "local", translate=str(digits / "small.npz"), format="npz", chunk_size=16
    )
    serve = tmp_path / "models"
    serve.mkdir()
    (serve / "mnist-sr4.onnx").write_bytes(model.read_bytes())
    with local_serve(serve, threads=1) as url:
        remote = run_job(f"{url}#mnist-sr4", tmp_path / "remote", translate=str(digits / "small.npz"), format="npz",
                         chunk_size=16, batch_size=8)  # fmt: skip
    assert remote.complete and np.array_equal(load_dataset(remote.out).images, load_dataset(local.out).images)
