"""The playground in a real headless Chromium against a real `bentoml serve` of the families with
their own endpoints: StyleGAN (POST /mix), InfoGAN (POST /traverse) and CycleGAN (POST /translate).
The page must send what those routes take and show exactly the bytes they answer.
"""

from __future__ import annotations

import base64
import io
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from gan_core.imaging import png_bytes
from service.local_server import local_serve
from tests.service.browser import Playground, desktop_playground

# The grid answer is shown from a blob: URL (the page's CSP lets nothing fetch it): read its pixels back
# through a canvas, as RGBA, to compare with the API's PNG decoded the same way.
GRID_RGBA = """
const img = document.querySelector("#grid img.whole");
const c = document.createElement("canvas");
[c.width, c.height] = [img.naturalWidth, img.naturalHeight];
const ctx = c.getContext("2d");
ctx.drawImage(img, 0, 0);
const px = ctx.getImageData(0, 0, c.width, c.height).data;
let s = "";
for (let i = 0; i < px.length; i++) s += String.fromCharCode(px[i]);
return [c.width, c.height, btoa(s)];
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_onnx, cyclegan_onnx):
    d = tmp_path_factory.mktemp("ui-families")
    for preset in ("mnist-stylegan", "mnist-infogan"):
        shutil.copy(tiny_onnx(preset)[1], d / f"{preset}.onnx")
    for path, _ in cyclegan_onnx.values():
        shutil.copy(path, d / path.name)
    with local_serve(d, env={"GAN_DEFAULT_MODEL": "mnist-stylegan"}) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with desktop_playground(server, tmp_path_factory.mktemp("downloads")) as p:
        yield p


def api(server: str, path: str, body: dict) -> httpx.Response:
    r = httpx.post(server + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r


def shown_grid(page: Playground) -> np.ndarray:
    w, h, data = page.js(GRID_RGBA)
    return np.frombuffer(base64.b64decode(data), np.uint8).reshape(h, w, 4)


def rgba(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def test_style_mixing_sends_the_mix_route_its_fields_and_shows_its_grid(page, server):
    page.choose_model("mnist-stylegan")
    assert "mix" in page.tabs()
    page.tab("mix")
    page.select("class", "3")
    a, b = page.field("seeds").find_elements("css selector", "input")
    a.clear(), a.send_keys("11"), b.clear(), b.send_keys("12")
    slider = page.control("crossover")
    layers = int(slider.get_attribute("max"))
    assert slider.get_attribute("min") == "0" and layers >= 2  # the card's mix_layer range: 0..style layers
    page.js("arguments[0].value = '1'; arguments[0].dispatchEvent(new Event('input'))", slider)
    page.run()
    body = {"model": "mnist-stylegan", "row_seeds": [11], "col_seeds": [12], "labels": "3", "crossover": 1,
            "format": "grid"}  # fmt: skip
    np.testing.assert_array_equal(shown_grid(page), rgba(api(server, "/mix", body).content))
    page.js("arguments[0].max = '99'; arguments[0].value = '99'", slider)  # past the style layers
    page.run()
    assert page.error("crossover") == f"crossover: must be in 0..{layers} (the model's style layers), got 99"


def test_traversing_an_infogan_code_shows_the_traverse_grid(page, server):
    page.choose_model("mnist-infogan")
    assert "traverse" in page.tabs()
    page.tab("traverse")
    page.select("code", "digit")
    page.type("traverse-seeds", "4, 5")
    page.run()
    want = api(
        server, "/traverse", {"model": "mnist-infogan", "code": "digit", "seeds": [4, 5], "format": "grid"}
    )
    assert want.headers["x-code"] == "digit"
    np.testing.assert_array_equal(shown_grid(page), rgba(want.content))


def test_translating_an_upload_shows_the_translate_routes_images(page, server, tmp_path):
    page.choose_model("mnist-cyclegan-a2b")
    assert page.tabs() == ["translate"]
    upload = tmp_path / "digit.png"
    upload.write_bytes(png_bytes(np.tile(np.arange(28, dtype=np.uint8)[:, None, None] * 9, (1, 28, 1))))
    page.control("image").send_keys(str(upload))
    page.run()
    body = {"model": "mnist-cyclegan-a2b", "images": [base64.b64encode(upload.read_bytes()).decode()]}
    want = [im["png"] for im in api(server, "/translate", body).json()["images"]]
    assert page.pngs() == want and len(want) == 1
