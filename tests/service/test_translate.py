"""POST /translate: multipart, base64-JSON and npz uploads give the model's pixels in the /generate
answer formats; every limit (count, bytes, body, pixel size, decoding, decompression bombs) is a 4xx
naming it; the generic /generate path refuses translation models."""

from __future__ import annotations

import base64
import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gan_core.datasets import load_dataset
from gan_core.imaging import png_bytes
from gan_core.runtime import open_generator
from tests.service.in_process import routes_client, serving_core

NOISE_PNG = png_bytes(np.random.default_rng(0).integers(0, 256, (28, 28, 1), dtype=np.uint8))  # 880 bytes
LIMITS = {"GAN_MAX_TRANSLATE_IMAGES": "4", "GAN_MAX_IMAGE_BYTES": "3000", "GAN_MAX_BODY_BYTES": "60000"}


@pytest.fixture(scope="module")
def served(cyclegan_onnx, cond_onnx, tmp_path_factory):
    d = tmp_path_factory.mktemp("served-translate")
    for k, (path, _) in cyclegan_onnx.items():
        shutil.copy(path, d / f"0-{k}.onnx")  # sorts before the generator: still not the default model
    shutil.copy(cond_onnx, d / "mnist-cdcgan.onnx")
    return d


@pytest.fixture(scope="module")
def core(served):
    with serving_core(served, LIMITS) as core:
        yield core


@pytest.fixture(scope="module")
def client(core):
    """The /translate route in-process over a serving core (the real service mounts the same routes;
    BentoML's app can only be built once per process, so the full service runs in the last test)."""
    from service.translate import translate_routes

    with routes_client(translate_routes(lambda: core)) as c:
        yield c


@pytest.fixture(scope="module")
def digits(domain_pair):
    ds = load_dataset(domain_pair / "a", "test")
    return ds.images[:3].transpose(0, 2, 3, 1).copy(), ds.labels[:3].copy()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def pixels(doc) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.open(io.BytesIO(base64.b64decode(im["png"]))))[..., None] for im in doc["images"]]
    )


def test_every_upload_kind_gives_the_models_pixels(client, cyclegan_onnx, digits):
    images, labels = digits
    want = {k: open_generator(p, threads=1).run({"image": images}) for k, (p, _) in cyclegan_onnx.items()}
    pngs = [png_bytes(x) for x in images]
    r = client.post("/translate", json={"images": [b64(p) for p in pngs], "direction": "a2b"})
    assert (
        r.status_code == 200
        and r.headers["x-direction"] == "a2b"
        and r.headers["x-model"] == "mnist-cyclegan-a2b"
    )
    doc = r.json()
    assert (doc["model"], doc["count"], doc["seed"]) == ("mnist-cyclegan-a2b", 3, None)
    assert [im["index"] for im in doc["images"]] == [0, 1, 2] and np.array_equal(pixels(doc), want["a2b"])
    files = [("images", (f"{k}.png", p, "image/png")) for k, p in enumerate(pngs)]
    r = client.post("/translate", data={"direction": "b2a", "format": "npz"}, files=files)
    assert r.status_code == 200 and np.array_equal(np.load(io.BytesIO(r.content))["images"], want["b2a"])
    r = client.post("/translate?model=mnist-cyclegan&direction=a2b&format=npz", content=npz(images=images[..., 0], labels=labels),
                    headers={"content-type": "application/x-npz"})  # fmt: skip
    z = np.load(io.BytesIO(r.content))
    assert (
        np.array_equal(z["images"], want["a2b"]) and z["labels"].tolist() == labels.tolist()
    )  # labels echoed
    r = client.post("/translate?model=mnist-cyclegan-b2a&format=grid", content=npz(images=images),
                    headers={"content-type": "application/octet-stream"})  # fmt: skip
    assert r.headers["content-type"] == "image/png" and Image.open(io.BytesIO(r.content)).size == (
        2 * 30 + 2,
        2 * 30 + 2,
    )
    rgb = Image.fromarray(np.repeat(images[0], 3, axis=-1))
    jpeg = io.BytesIO()
    rgb.save(jpeg, "JPEG", quality=95)
    r = client.post(
        "/translate", data={"direction": "a2b"}, files=[("images", ("d.jpg", jpeg.getvalue(), "image/jpeg"))]
    )
    assert r.status_code == 200 and r.json()["count"] == 1  # colour JPEG converted to the model's grey


def _bomb_png(w: int, h: int) -> bytes:
    """A few dozen bytes whose header claims w x h pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))
        )

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "kwargs, status, error",
    [
        ({"json": {"images": ["x"] * 5, "direction": "a2b"}}, 400,
         "images: must be <= 4 per request (GAN_MAX_TRANSLATE_IMAGES), got 5"),
        ({"files": [("images", ("a.png", b"x", "image/png"))] * 6, "data": {"direction": "a2b"}}, 400,
         "images: must be <= 4 per request (GAN_MAX_TRANSLATE_IMAGES), got 5"),
        ({"json": {"images": [b64(b"\0" * 3001)], "direction": "a2b"}}, 413,
         "images[0]: must be <= 3000 bytes (GAN_MAX_IMAGE_BYTES)"),
        ({"content": b"{" + b" " * 60000 + b"}", "headers": {"content-type": "application/json"}}, 413,
         "body: must be <= 60000 bytes (GAN_MAX_BODY_BYTES)"),
        ({"json": {"images": [b64(png_bytes(np.zeros((32, 32, 1), np.uint8)))], "direction": "a2b"}}, 400,
         "images[0]: image is 32x32 pixels; the model takes 28x28 (no resizing)"),
        ({"json": {"images": [b64(b"GIF89a not a png")], "direction": "a2b"}}, 400, "images[0]: not a PNG or JPEG image"),
        ({"json": {"images": [b64(NOISE_PNG[:400])], "direction": "a2b"}}, 400,
         "images[0]: cannot decode the image"),
        ({"json": {"images": [b64(_bomb_png(30000, 30000))], "direction": "a2b"}}, 413,
         "images[0]: refused as a decompression bomb (more pixels than Pillow allows)"),
        ({"json": {"images": [b64(_bomb_png(5000, 5000))], "direction": "a2b"}}, 400,
         "images[0]: image is 5000x5000 pixels; the model takes 28x28 (no resizing)"),
        ({"json": {"images": ["!!!"], "direction": "a2b"}}, 400, "images[0]: not valid base64"),
        ({"json": {"images": [b64(b"x")]}}, 400, "direction: required, one of a2b, b2a"),
        ({"json": {"images": [b64(b"x")], "direction": "sideways"}}, 400, "direction: Input should be 'a2b' or 'b2a'"),
        ({"json": {"images": [b64(b"x")], "model": "mnist-cyclegan-a2b", "direction": "b2a"}}, 400,
         "direction: model 'mnist-cyclegan-a2b' translates a2b, not b2a"),
        ({"json": {"images": [b64(b"x")], "model": "horse2zebra", "direction": "a2b"}}, 404,
         "model: unknown translation model 'horse2zebra'; known: mnist-cyclegan"),
        ({"json": {"images": [], "direction": "a2b"}}, 400, "images: List should have at least 1 item"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415,
         "content-type: must be multipart/form-data, application/json or application/x-npz, got 'text/plain'"),
        ({"files": [("photo", ("a.png", b"x", "image/png"))], "data": {"direction": "a2b"}}, 400,
         "photo: unknown file field (files go in 'images')"),
    ],
)  # fmt: skip
def test_limits_and_bad_uploads_are_4xx_naming_them(client, kwargs, status, error):
    r = client.post("/translate", **kwargs)
    assert r.status_code == status and r.json()["error"].startswith(error), r.text


def test_npz_uploads_are_checked_before_they_are_expanded(client):
    def post(body, query="direction=a2b"):
        return client.post(f"/translate?{query}", content=body, headers={"content-type": "application/x-npz"})

    buf = io.BytesIO()
    np.savez_compressed(buf, images=np.zeros((200, 28, 28), np.uint8))  # 156 kB unpacked, 300 bytes sent
    r = post(buf.getvalue())
    assert r.status_code == 413 and r.json()["error"].startswith(
        "npz: member images.npy expands to 156928 bytes"
    )
    cases = [
        (npz(images=np.zeros((2, 28, 28), np.float32)), "npz: 'images' must be uint8 pixels, got float32"),
        (npz(images=np.zeros((2, 27, 28), np.uint8)), "npz: 'images' is [2, 27, 28]; model 'mnist-cyclegan-a2b' takes [N, 28, 28, 1]"),
        (npz(images=np.zeros((5, 28, 28), np.uint8)), "images: must be <= 4 per request"),
        (npz(pixels=np.zeros((2, 28, 28), np.uint8)), "npz: needs an 'images' array (found pixels)"),
        (b"not a zip", "npz: not a readable .npz file"),
    ]  # fmt: skip
    for body, error in cases:
        r = post(body)
        assert r.status_code == 400 and r.json()["error"].startswith(error), r.text
    r = post(npz(images=np.zeros((1, 28, 28), np.uint8)), "direction=a2b&seed=3")
    assert r.status_code == 400 and r.json()["error"] == "seed: Extra inputs are not permitted"


def test_a_real_service_mounts_translate_and_generate_refuses_translation_models(served, digits):
    import httpx

    from service.local_server import local_serve

    with local_serve(served, threads=1, env=LIMITS) as url:
        r = httpx.post(url + "/generate", json={"model": "mnist-cyclegan-a2b"})
        assert (r.status_code, r.json()) == (
            400,
            {"error": "model: 'mnist-cyclegan-a2b' translates images; use POST /translate"},
        )
        models = httpx.get(url + "/models").json()
        assert models["default"] == "mnist-cdcgan" and len(models["models"]) == 3  # not the first file
        assert httpx.post(url + "/generate", json={"count": 2}).status_code == 200
        png = png_bytes(digits[0][0])
        r = httpx.post(
            url + "/translate", data={"direction": "b2a"}, files=[("images", ("d.png", png, "image/png"))]
        )
        assert r.status_code == 200 and r.json()["model"] == "mnist-cyclegan-b2a"
        big = b"{" + b" " * 70000 + b"}"
        r = httpx.post(url + "/translate", content=big, headers={"content-type": "application/json"})
        assert (r.status_code, r.json()) == (
            413,
            {"error": "body: must be <= 60000 bytes (GAN_MAX_BODY_BYTES)"},
        )
