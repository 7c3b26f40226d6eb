"""POST /restore and POST /upscale: multipart, base64-JSON and npz uploads (with or without masks) give the
model's pixels; larger images run in one call; every limit (pixels, size rule, mask shape, scale, model
kind, count, bytes, decompression bombs) is a 4xx naming it; /models says what each model does."""

from __future__ import annotations

import asyncio
import base64
import io
import shutil

import numpy as np
import pytest

from gan_core.imaging import centre_masks, png_bytes
from gan_core.runtime import open_generator
from tests.service.in_process import routes_client, serving_core
from tests.service.test_translate import _bomb_png, npz, pixels

LIMITS = {"GAN_MAX_TRANSLATE_IMAGES": "4", "GAN_MAX_IMAGE_BYTES": "6000", "GAN_MAX_REPAIR_PIXELS": "20000"}


@pytest.fixture(scope="module")
def served(tiny_onnx, cond_onnx, tmp_path_factory):
    d = tmp_path_factory.mktemp("served-repair")
    for name in ("mnist-sr4", "mnist-inpaint", "mnist-restore"):
        shutil.copy(tiny_onnx(name)[1], d / f"{name}.onnx")
    shutil.copy(cond_onnx, d / "mnist-cdcgan.onnx")
    return d


@pytest.fixture(scope="module")
def core(served):
    with serving_core(served, LIMITS) as core:
        yield core


@pytest.fixture(scope="module")
def client(core):
    from service.repair import repair_routes

    with routes_client(repair_routes(lambda: core)) as c:
        yield c


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def noise(*shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def run(served, name, **feeds):
    return open_generator(served / f"{name}.onnx", threads=1).run(feeds)


def test_upscale_takes_every_body_kind_and_images_larger_than_the_training_size(client, served):
    small = noise(3, 7, 7, 1)
    want = run(served, "mnist-sr4", image=small)
    r = client.post("/upscale", json={"images": [b64(png_bytes(x)) for x in small]})
    assert r.status_code == 200 and r.headers["x-scale"] == "4" and r.headers["x-model"] == "mnist-sr4"
    assert np.array_equal(pixels(r.json()), want) and want.shape == (3, 28, 28, 1)
    files = [("images", (f"{k}.png", png_bytes(x), "image/png")) for k, x in enumerate(small)]
    r = client.post("/upscale", data={"format": "npz", "scale": "4"}, files=files)
    assert np.array_equal(np.load(io.BytesIO(r.content))["images"], want)
    big = noise(2, 20, 30, 1, seed=1)
    r = client.post("/upscale?format=npz", content=npz(images=big[..., 0], labels=np.array([3, 4])),
                    headers={"content-type": "application/x-npz"})  # fmt: skip
    z = np.load(io.BytesIO(r.content))
    assert z["images"].shape == (2, 80, 120, 1) and np.array_equal(
        z["images"], run(served, "mnist-sr4", image=big)
    )
    assert z["labels"].tolist() == [3, 4]  # labels kept


def test_restore_fills_the_given_mask_or_the_centre_box_and_keeps_known_pixels(client, served):
    img = noise(2, 28, 28, 1)
    mask = np.zeros((2, 28, 28, 1), np.uint8)
    mask[:, 2:12, 3:9] = 255
    files = [("images", (f"{k}.png", png_bytes(x), "image/png")) for k, x in enumerate(img)]
    files += [("masks", (f"m{k}.png", png_bytes(m), "image/png")) for k, m in enumerate(mask)]
    r = client.post("/restore", data={"model": "mnist-inpaint", "format": "npz"}, files=files)
    out = np.load(io.BytesIO(r.content))["images"]
    assert np.array_equal(out, run(served, "mnist-inpaint", image=img, mask=mask))
    assert np.array_equal(out[mask == 0], img[mask == 0])
    r = client.post("/restore", json={"model": "mnist-inpaint", "images": [b64(png_bytes(x)) for x in img]})
    box = centre_masks(2, 28, 28, 0.5)
    assert np.array_equal(pixels(r.json()), run(served, "mnist-inpaint", image=img, mask=box))
    big, big_mask = noise(1, 36, 44, 1), centre_masks(1, 36, 44, 0.25)
    r = client.post("/restore?model=mnist-inpaint&format=npz", content=npz(images=big, masks=big_mask),
                    headers={"content-type": "application/x-npz"})  # fmt: skip
    assert np.array_equal(
        np.load(io.BytesIO(r.content))["images"], run(served, "mnist-inpaint", image=big, mask=big_mask)
    )
    r = client.post("/restore", json={"model": "mnist-restore", "images": [b64(png_bytes(img[0]))]})
    assert np.array_equal(pixels(r.json()), run(served, "mnist-restore", image=img[:1]))


P28 = b64(png_bytes(np.zeros((28, 28, 1), np.uint8)))


@pytest.mark.parametrize(
    "route, kwargs, status, error",
    [
        ("/upscale", {"json": {"images": [b64(png_bytes(np.zeros((80, 80, 1), np.uint8)))]}}, 413,
         "images[0]: image is 80x80 pixels (x4: 102400 output pixels); must be <= 20000 output pixels (GAN_MAX_REPAIR_PIXELS)"),
        ("/upscale", {"json": {"images": [b64(_bomb_png(30000, 30000))]}}, 413,
         "images[0]: refused as a decompression bomb (more pixels than Pillow allows)"),
        ("/upscale", {"json": {"images": [b64(_bomb_png(5000, 5000))]}}, 413,
         "images[0]: image is 5000x5000 pixels (x4: 400000000 output pixels); must be <= 20000"),
        ("/upscale", {"json": {"images": [b64(b"GIF89a")]}}, 400, "images[0]: not a PNG or JPEG image"),
        ("/upscale", {"json": {"images": [P28], "scale": 2}}, 400, "scale: model 'mnist-sr4' upscales x4, not x2"),
        ("/upscale", {"json": {"images": [P28], "model": "mnist-restore"}}, 400,
         "model: 'mnist-restore' does not upscale images (GET /models says what each model does)"),
        ("/upscale", {"json": {"images": [P28, b64(png_bytes(np.zeros((8, 8, 1), np.uint8)))]}}, 400,
         "images[1]: is 8x8 pixels, images[0] is 28x28; one size per request"),
        ("/restore", {"json": {"images": [P28]}}, 400,
         "model: several restore models are served; name one of mnist-inpaint, mnist-restore"),
        ("/restore", {"json": {"images": [P28], "model": "nope"}}, 404,
         "model: unknown restore model 'nope'; known: mnist-inpaint, mnist-restore"),
        ("/restore", {"json": {"images": [b64(png_bytes(np.zeros((30, 28, 1), np.uint8)))], "model": "mnist-restore"}}, 400,
         "images[0]: image is 28x30 pixels; model 'mnist-restore' takes sides that are multiples of 4"),
        ("/restore", {"json": {"images": [P28], "masks": [b64(png_bytes(np.zeros((24, 28, 1), np.uint8)))],
                               "model": "mnist-inpaint"}}, 400, "masks[0]: mask is 28x24 pixels; its image is 28x28"),
        ("/restore", {"json": {"images": [P28], "masks": [P28, P28], "model": "mnist-inpaint"}}, 400,
         "masks: give one per image (1), got 2"),
        ("/restore", {"json": {"images": [P28], "masks": [P28], "model": "mnist-restore"}}, 400,
         "masks: model 'mnist-restore' does not fill in (it takes no mask)"),
        ("/restore", {"json": {"images": [P28] * 5, "model": "mnist-restore"}}, 400,
         "images: must be <= 4 per request (GAN_MAX_TRANSLATE_IMAGES), got 5"),
        ("/restore", {"files": [("photo", ("a.png", b"x", "image/png"))], "data": {"model": "mnist-restore"}}, 400,
         "photo: unknown file field (files go in 'images' and 'masks')"),
        ("/restore", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415, "content-type: must be"),
    ],
)  # fmt: skip
def test_limits_and_bad_uploads_are_4xx_naming_them(client, route, kwargs, status, error):
    r = client.post(route, **kwargs)
    assert r.status_code == status and r.json()["error"].startswith(error), r.text


def test_npz_masks_and_images_are_checked(client):
    def post(body, query="model=mnist-inpaint"):
        return client.post(f"/restore?{query}", content=body, headers={"content-type": "application/x-npz"})

    img = np.zeros((2, 28, 28), np.uint8)
    cases = [
        (npz(images=img, masks=np.zeros((2, 28, 24), np.uint8)), "npz: 'masks' is [2, 28, 24, 1]; its images need [2, 28, 28, 1]"),
        (npz(images=img, masks=np.zeros((2, 28, 28), np.float32)), "npz: 'masks' must be uint8 pixels, got float32"),
        (npz(images=np.zeros((2, 28, 28, 3), np.uint8)), "npz: 'images' is [2, 28, 28, 3]; model 'mnist-inpaint' takes [N, H, W, 1]"),
        (npz(images=np.zeros((1, 30, 28), np.uint8)), "npz: 'images': image is 28x30 pixels; model 'mnist-inpaint' takes sides that are multiples of 4"),
    ]  # fmt: skip
    for body, error in cases:
        r = post(body)
        assert r.status_code == 400 and r.json()["error"].startswith(error), r.text
    r = post(npz(images=img, masks=img), "model=mnist-restore")
    assert (
        r.status_code == 400
        and r.json()["error"] == "npz: 'masks': model 'mnist-restore' does not fill in (it takes no mask)"
    )


def test_requests_of_different_sizes_are_never_stacked_into_one_call(core):
    """Concurrent requests of two sizes on one dynamic-size model: each gets its own pixels."""
    model = core.models["mnist-restore"]
    a, b = noise(3, 28, 28, 1), noise(2, 32, 36, 1, seed=4)

    async def both():
        return await asyncio.gather(core.run(model, {"image": a}), core.run(model, {"image": b}),
                                    core.run(model, {"image": a[:1]}))  # fmt: skip

    ra, rb, r1 = asyncio.run(both())
    assert ra.shape == (3, 28, 28, 1) and rb.shape == (2, 32, 36, 1) and np.array_equal(r1, ra[:1])
    assert np.array_equal(rb, model.session.run({"image": b})) and np.array_equal(
        ra, model.session.run({"image": a})
    )


def test_models_say_what_each_model_does(core):
    does = {m["name"]: m["does"] for m in core.models_doc()["models"]}
    assert does == {
        "mnist-sr4": "upscales images x4 (POST /upscale)",
        "mnist-inpaint": "repairs mask:box damage, fills in masked pixels (POST /restore)",
        "mnist-restore": "repairs noise:0.2+blur:1 damage (POST /restore)",
        "mnist-cdcgan": "generates images (POST /generate)",
    }
    from service.inputs import ClientError

    with pytest.raises(ClientError, match=r"^model: 'mnist-sr4' upscales images; use POST /upscale$"):
        core.model("mnist-sr4")


def test_a_real_service_mounts_the_routes_behind_the_token(served):
    import httpx

    from service.local_server import local_serve

    body = {"model": "mnist-sr4", "images": [b64(png_bytes(noise(7, 7, 1)))]}
    with local_serve(served, threads=1, env={**LIMITS, "GAN_API_TOKEN": "s3cret"}) as url:
        assert httpx.post(url + "/upscale", json=body).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        r = httpx.post(url + "/upscale", json=body, headers=auth)
        assert r.status_code == 200 and r.json()["count"] == 1
        r = httpx.post(
            url + "/restore", json={"model": "mnist-restore", "images": body["images"]}, headers=auth
        )
        assert r.status_code == 400 and r.json()["error"].startswith("images[0]: image is 7x7 pixels; model")
        r = httpx.post(url + "/generate", json={"model": "mnist-sr4"}, headers=auth)
        assert (r.status_code, r.json()) == (
            400,
            {"error": "model: 'mnist-sr4' upscales images; use POST /upscale"},
        )
        doc = httpx.get(url + "/docs.json").json()
        assert {"/restore", "/upscale"} <= set(doc["paths"]) and "masks" in str(doc["paths"]["/restore"])
