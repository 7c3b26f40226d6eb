"""The serving core without HTTP: reproducibility, batching, labels, limits and encodings."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
from PIL import Image

from gan_core.card_files import read_card
from gan_core.errors import UserError
from gan_core.latents import latents
from gan_core.runtime import ModelFileError, cuda_device_present, open_generator
from service.core import ClientError, ServingCore, grid_image, path
from service.model_set import public_card, scan_models
from service.schemas import GenerateRequest, InterpolateRequest, LatentsRequest
from service.settings import DEFAULT_MODELS_DIR, Settings, SettingsError
from tests.conftest import zl_feeds


def make_core(models_dir, **kw) -> ServingCore:
    return ServingCore(Settings(models_dir=models_dir, default_model="mnist-cdcgan", ort_threads=1, **kw))


@pytest.fixture(scope="module")
def core(models_dir):
    g = make_core(models_dir)
    yield g
    g.close()


def gen(core, **kw):
    return asyncio.run(core.generate(GenerateRequest(**kw)))


def test_settings_from_env_and_bad_values(tmp_path):
    s = Settings.from_env(
        {"GAN_MODELS_DIR": str(tmp_path), "GAN_MAX_COUNT": "7", "GAN_WORKERS": "2", "GAN_ACCESS_LOG": "yes"}
    )
    assert (s.models_dir, s.max_count, s.workers, s.access_log, s.max_latents) == (tmp_path, 7, 2, True, 1024)
    assert Settings.from_env({"GAN_ORT_THREADS": "3"}).ort_threads == 3
    with pytest.raises(SettingsError) as e:
        Settings.from_env({"GAN_MAX_COUNT": "lots"})
    assert str(e.value) == "GAN_MAX_COUNT: must be an integer >= 1, got 'lots'"
    with pytest.raises(SettingsError) as e:
        Settings.from_env({"GAN_DEVICE": "tpu"})
    assert str(e.value) == "GAN_DEVICE: must be one of auto, cpu, cuda, got 'tpu'"


def test_images_match_direct_ort_whatever_count_and_start_index(core, cond_onnx):
    whole = gen(core, count=10, seed=42, truncation=1.5)
    assert whole.images.dtype == np.uint8 and whole.images.shape == (10, 28, 28, 1)
    assert whole.labels.tolist() == list(range(10))  # balanced by default
    part = gen(core, count=3, seed=42, start_index=4, truncation=1.5)
    assert part.indices.tolist() == [4, 5, 6]
    assert np.array_equal(part.images, whole.images[4:7])
    sess = open_generator(cond_onnx, threads=1)
    direct = sess.run(zl_feeds(latents(42, range(10), sess.card.latent_dim, 1.5), np.arange(10)))
    assert np.array_equal(whole.images, direct)
    assert not np.array_equal(gen(core, count=10, seed=43, truncation=1.5).images, whole.images)


def test_concurrent_requests_share_ort_calls_and_keep_their_bytes(models_dir):
    core = make_core(models_dir, max_batch=64, inline_images=0)
    try:
        model = core.models["mnist-cdcgan"]
        single = [gen(core, count=1, seed=s, labels=s % 10).images for s in range(24)]
        calls = model.batcher.calls

        async def burst():
            reqs = [core.generate(GenerateRequest(count=1, seed=s, labels=s % 10)) for s in range(24)]
            return await asyncio.gather(*reqs)

        merged = asyncio.run(burst())
        assert all(np.array_equal(m.images, s) for m, s in zip(merged, single, strict=True))
        assert model.batcher.calls - calls < 24  # merged into fewer ORT calls
        assert model.batcher.largest_batch > 1
    finally:
        core.close()


def test_full_queue_is_refused_with_503(models_dir):
    core = make_core(models_dir, max_queue=10)
    try:
        with pytest.raises(ClientError) as e:
            gen(core, count=11, seed=1)
        assert e.value.status == 503
        assert str(e.value) == "server busy: 0 images queued, limit 10 (GAN_MAX_QUEUE); retry later"
        assert gen(core, count=10, seed=1).images.shape[0] == 10
    finally:
        core.close()


def test_labels_by_index_name_list_and_their_errors(core):
    assert gen(core, count=3, seed=1, labels=7).labels.tolist() == [7, 7, 7]
    assert gen(core, count=3, seed=1, labels="4").labels.tolist() == [4, 4, 4]  # class name
    assert gen(core, count=3, seed=1, labels=[1, "2", 3]).labels.tolist() == [1, 2, 3]
    assert gen(core, count=3, seed=1, start_index=8, labels="balanced").labels.tolist() == [8, 9, 0]
    cases = {
        12: "labels: class 12 is not in 0..9 (model 'mnist-cdcgan')",
        "cat": "labels: unknown class 'cat'; model 'mnist-cdcgan' has 0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
        (1, 2): "labels: list has 2 entries, expected 3 (one per image)",
        (1, 2, -1): "labels[2]: class -1 is not in 0..9 (model 'mnist-cdcgan')",
    }
    for spec, message in cases.items():
        with pytest.raises(ClientError) as e:
            gen(core, count=3, seed=1, labels=list(spec) if isinstance(spec, tuple) else spec)
        assert (str(e.value), e.value.status) == (message, 400)
    with pytest.raises(ClientError) as e:
        gen(core, model="mnist-dcgan", count=2, labels=1)
    assert str(e.value) == "labels: model 'mnist-dcgan' is unconditional; omit labels"
    assert gen(core, model="mnist-dcgan", count=2, seed=3).labels is None


def test_limits_and_unknown_model(models_dir):
    core = make_core(models_dir, max_count=5, max_latents=2, max_steps=3)
    try:
        with pytest.raises(ClientError) as e:
            gen(core, count=6)
        assert str(e.value) == "count: must be <= 5 (GAN_MAX_COUNT), got 6"
        with pytest.raises(ClientError) as e:
            asyncio.run(core.from_latents(LatentsRequest(latents=[[0.0] * 64] * 3)))
        assert str(e.value) == "latents: must be <= 2 (GAN_MAX_LATENTS), got 3"
        with pytest.raises(ClientError) as e:
            asyncio.run(core.interpolate(InterpolateRequest(seeds=[1, 2], label=0, steps=4)))
        assert str(e.value) == "steps: must be <= 3 (GAN_MAX_STEPS), got 4"
        with pytest.raises(ClientError) as e:
            gen(core, model="nope")
        assert (str(e.value), e.value.status) == (
            "model: unknown model 'nope'; known: mnist-cdcgan, mnist-dcgan",
            404,
        )
    finally:
        core.close()


def test_generate_from_latents_checks_sizes_against_the_card(core):
    z = latents(9, range(2), 64)
    out = asyncio.run(core.from_latents(LatentsRequest(latents=z.tolist(), labels=[3, 5])))
    assert np.array_equal(out.images, gen(core, count=2, seed=9, labels=[3, 5]).images)
    with pytest.raises(ClientError) as e:
        asyncio.run(core.from_latents(LatentsRequest(latents=[[0.0] * 64, [0.0] * 10])))
    assert str(e.value) == "latents[1]: has 10 values; model 'mnist-cdcgan' expects 64 (latent_dim)"
    with pytest.raises(ClientError) as e:
        asyncio.run(core.from_latents(LatentsRequest(latents=[[1e300] * 64])))
    assert str(e.value) == "latents: values must be finite float32 numbers"


@pytest.mark.parametrize("method", ["slerp", "lerp"])
def test_interpolation_ends_are_the_seeds_images(core, method):
    out = asyncio.run(
        core.interpolate(InterpolateRequest(seeds=[5, 6], indices=[2, 0], label=4, steps=6, method=method))
    )
    assert out.images.shape[0] == 6 and out.labels.tolist() == [4] * 6
    assert np.array_equal(out.images[0], gen(core, count=1, seed=5, start_index=2, labels=4).images[0])
    assert np.array_equal(out.images[-1], gen(core, count=1, seed=6, labels=4).images[0])
    a, b = latents(1, [0], 64)[0], latents(2, [0], 64)[0]
    mid = path(a, b, 3, method)[1]
    if method == "slerp":  # on the great circle: norm between the ends' norms
        assert (
            min(np.linalg.norm(a), np.linalg.norm(b)) - 1e-4
            <= np.linalg.norm(mid)
            <= max(np.linalg.norm(a), np.linalg.norm(b)) + 1e-4
        )
    else:
        assert np.allclose(mid, (a + b) / 2, atol=1e-6)
    with pytest.raises(ClientError) as e:
        asyncio.run(core.interpolate(InterpolateRequest(seeds=[5, 6], steps=4)))
    assert str(e.value) == "label: required for conditional model 'mnist-cdcgan' (a class index or name)"
    with pytest.raises(ClientError) as e:
        asyncio.run(core.interpolate(InterpolateRequest(seeds=[5, 6], latents=[[0.0] * 64] * 2, label=1)))
    assert str(e.value) == "seeds: give either seeds [a, b] or latents [z_a, z_b], not both or neither"


def test_encodings_png_grid_npz(core):
    res = gen(core, count=12, seed=3, labels=[0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 1, 0])
    npz = np.load(io.BytesIO(asyncio.run(core.encode(res, "npz")).body))
    assert np.array_equal(npz["images"], res.images) and npz["labels"].dtype == np.int64
    assert npz["indices"].tolist() == list(range(12)) and int(npz["seed"]) == 3
    g = grid_image(res)  # rows per class: 3 classes, widest class has 5 images
    assert g.shape == (3 * 30 + 2, 5 * 30 + 2, 1)
    assert np.array_equal(g[2:30, 2:30], res.images[0]) and np.array_equal(g[32:60, 2:30], res.images[3])
    reply = asyncio.run(core.encode(res, "grid"))
    assert reply.media_type == "image/png" and reply.headers == {"X-Model": "mnist-cdcgan", "X-Seed": "3"}
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(reply.body)))[..., None], g)


def test_scan_skips_unusable_files_and_refuses_only_when_none_is_left(tmp_path, cond_onnx, caplog):
    from tests.service.test_http_serve import bad_models

    failed = bad_models(tmp_path, cond_onnx)
    scan = scan_models(Settings(models_dir=tmp_path))
    assert list(scan.usable) == ["mnist-cdcgan"] and scan.default == "mnist-cdcgan"
    assert {f.file: f.error for f in scan.failed} == failed
    assert len([r for r in caplog.records if r.getMessage().startswith("not serving ")]) == 4
    with pytest.raises(SettingsError) as e:
        scan_models(Settings(models_dir=tmp_path, default_model="nope"))
    assert str(e.value) == "GAN_DEFAULT_MODEL: unknown model 'nope'; usable: mnist-cdcgan"
    (tmp_path / "a-good.onnx").unlink()
    scan = scan_models(Settings(models_dir=tmp_path))  # the second file of that name is served now
    assert [p.name for p, _ in scan.usable.values()] == ["b-same-name.onnx"]
    (tmp_path / "b-same-name.onnx").unlink()
    with pytest.raises(ModelFileError) as e:
        scan_models(Settings(models_dir=tmp_path))
    assert str(e.value).startswith(
        f"GAN_MODELS_DIR: no usable model in {tmp_path} (c-empty.onnx: not a readable"
    )
    if not cuda_device_present():
        with pytest.raises(SettingsError, match=r"^GAN_DEVICE: 'cuda' asked for, but no CUDA GPU is present"):
            scan_models(Settings(device="cuda"))


def test_settings_limits_and_timeouts_from_env():
    s = Settings.from_env({"GAN_BODY_TIMEOUT_S": "2.5", "GAN_MAX_CONNECTIONS": "8", "GAN_API_TOKEN": " t0k "})
    assert (s.body_timeout_s, s.max_connections, s.api_token, s.request_timeout_s) == (2.5, 8, "t0k", 30.0)
    for raw in ("0", "-1", "soon", "inf"):
        with pytest.raises(SettingsError) as e:
            Settings.from_env({"GAN_HEADER_TIMEOUT_S": raw})
        assert str(e.value) == f"GAN_HEADER_TIMEOUT_S: must be a number of seconds > 0, got {raw!r}"
    with pytest.raises(SettingsError, match=r"^GAN_WORKERS: must be an integer >= 1, got 0$"):
        Settings.from_env({"GAN_WORKERS": "0"})


def test_the_bundled_card_is_served_without_the_training_data_location():
    bundled = read_card(DEFAULT_MODELS_DIR / "mnist-cdcgan.onnx")
    # a card trained from a local folder records where the data was; the served card must not say it
    card = bundled.model_copy(update={"dataset": {**bundled.dataset, "source": "/work/shared/data/mnist"}})
    doc = public_card(card)
    assert doc["dataset"] == {
        "name": "mnist",
        "n": 60000,
        "fingerprint": "d18cfd466eb143ac",
        "format": "idx",
        "split": "train",
    }
    assert "/work" not in str(doc) and doc["metrics"] == card.model_dump(mode="json")["metrics"]


def test_a_graph_that_loads_but_cannot_run_is_skipped_by_the_scan(tmp_path, cond_onnx, caplog):
    import onnx
    from onnx import helper

    m = onnx.load(cond_onnx)  # out = Reshape(Reshape(raw, [-1, 5]), Shape(raw)): 784 % 5 != 0 at run time
    out = m.graph.output[0].name
    for node in m.graph.node:
        node.output[:] = [o + "_raw" if o == out else o for o in node.output]
        node.input[:] = [i + "_raw" if i == out else i for i in node.input]
    m.graph.initializer.append(helper.make_tensor("five", onnx.TensorProto.INT64, [2], [-1, 5]))
    m.graph.node.extend([
        helper.make_node("Reshape", [out + "_raw", "five"], ["by_five"]),
        helper.make_node("Shape", [out + "_raw"], ["raw_shape"]),
        helper.make_node("Reshape", ["by_five", "raw_shape"], [out]),
    ])  # fmt: skip
    onnx.save(m, tmp_path / "a-cannot-run.onnx")
    (tmp_path / "b-good.onnx").write_bytes(cond_onnx.read_bytes())
    with pytest.raises(ModelFileError, match=r"a-cannot-run\.onnx: ONNX Runtime cannot run it \("):
        from service.model_set import warm_up

        warm_up(open_generator(tmp_path / "a-cannot-run.onnx", threads=1))
    scan = scan_models(Settings(models_dir=tmp_path), report=False)
    assert [p.name for p, _ in scan.usable.values()] == ["b-good.onnx"]
    assert [f.file for f in scan.failed] == ["a-cannot-run.onnx"]
    assert scan.failed[0].error.startswith("a-cannot-run.onnx: ONNX Runtime cannot run it (")


def test_a_model_that_fails_in_the_worker_is_skipped_and_the_default_failing_is_one_error(
    tmp_path, cond_onnx
):
    from service.model_set import load_models

    (tmp_path / "a.onnx").write_bytes(cond_onnx.read_bytes())
    scan = scan_models(Settings(models_dir=tmp_path), report=False)
    (tmp_path / "a.onnx").write_bytes(b"changed since the scan")
    with pytest.raises(ModelFileError, match=r"default model 'mnist-cdcgan' failed to open$"):
        load_models(Settings(models_dir=tmp_path), None, scan)
    assert [f.file for f in scan.failed] == ["a.onnx"]


def test_the_default_is_the_one_the_folder_names_and_gan_default_model_overrides_it(
    tmp_path, cond_onnx, uncond_onnx
):
    from gan_core.default_model import DEFAULT_FILE, write_default

    # file names sort the other way round: without the file, "a-..." (mnist-dcgan) would be the default
    (tmp_path / "a-uncond.onnx").write_bytes(uncond_onnx.read_bytes())
    (tmp_path / "b-cond.onnx").write_bytes(cond_onnx.read_bytes())
    assert scan_models(Settings(models_dir=tmp_path), report=False).default == "mnist-dcgan"
    write_default(tmp_path, "mnist-cdcgan")
    assert (tmp_path / DEFAULT_FILE).read_text() == "mnist-cdcgan\n"
    assert scan_models(Settings(models_dir=tmp_path), report=False).default == "mnist-cdcgan"
    assert (
        scan_models(Settings(models_dir=tmp_path, default_model="mnist-dcgan"), report=False).default
        == "mnist-dcgan"
    )
    write_default(tmp_path, "mnist-gone")
    with pytest.raises(ModelFileError) as e:
        scan_models(Settings(models_dir=tmp_path), report=False)
    assert str(e.value) == (
        f"{tmp_path / DEFAULT_FILE}: names default model 'mnist-gone', which is not usable here "
        "(usable: mnist-dcgan, mnist-cdcgan); fix the file or set GAN_DEFAULT_MODEL"
    )
    (tmp_path / DEFAULT_FILE).write_text("two\nlines\n")
    with pytest.raises(
        UserError,
        match=r"default-model\.txt: must hold one line, the default model's name; got 'two\\nlines\\n'$",
    ):
        scan_models(Settings(models_dir=tmp_path), report=False)
