"""The playground's repair tabs in a real headless Chromium against a real `bentoml serve`: a fill-in
model (upload an image, paint a mask, input | output side by side, download) and a super-resolution
model (a drawn example upscaled). The page must send what /restore and /upscale take and show exactly
the bytes they answer."""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains

from gan_core.imaging import png_bytes
from service.local_server import local_serve
from tests.service.browser import DESKTOP, Playground, chromium, emulate, wait_for
from tests.service.test_ui_families import api

# the mask as the page sends it: its canvas composed onto black
MASK_PNG = """
const m = document.querySelector("canvas.repair-mask");
const c = document.createElement("canvas");
[c.width, c.height] = [m.width, m.height];
const ctx = c.getContext("2d");
ctx.fillStyle = "#000"; ctx.fillRect(0, 0, c.width, c.height); ctx.drawImage(m, 0, 0);
return c.toDataURL("image/png").split(",")[1];
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_onnx, cond_onnx):
    d = tmp_path_factory.mktemp("ui-repair")
    shutil.copy(cond_onnx, d / "mnist-cdcgan.onnx")
    for name in ("mnist-inpaint", "mnist-sr4"):
        shutil.copy(tiny_onnx(name)[1], d / f"{name}.onnx")
    with local_serve(d, env={"GAN_DEFAULT_MODEL": "mnist-cdcgan"}) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    with chromium(downloads) as drv:
        drv.downloads = downloads
        emulate(drv, *DESKTOP)
        yield Playground(drv, server).fresh()


def grey(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"))


def test_filling_in_a_painted_mask_shows_input_and_output_and_downloads_them(page, server, tmp_path):
    page.choose_model("mnist-inpaint")
    assert page.tabs() == ["restore"]
    assert (
        "repairs mask:box damage, fills in masked pixels (POST /restore)"
        in page.find('.model[data-model="mnist-inpaint"]').text
    )
    upload = tmp_path / "digit.png"
    upload.write_bytes(png_bytes(np.tile(np.arange(28, dtype=np.uint8)[:, None, None] * 9, (1, 28, 1))))
    page.control("image").send_keys(str(upload))
    mask = page.find("canvas.repair-mask")
    wait_for(lambda: page.js("return arguments[0].width", mask) == 28, what="the mask at the image's size")
    ActionChains(page.driver).move_to_element_with_offset(mask, -20, -20).click_and_hold().move_by_offset(
        30, 10
    ).release().perform()
    painted = page.js(MASK_PNG)
    assert (grey(painted) > 127).sum() > 20  # the stroke is in the mask
    page.run()
    sent = base64.b64encode(upload.read_bytes()).decode()
    want = api(server, "/restore", {"model": "mnist-inpaint", "images": [sent], "masks": [painted]}).json()
    shown = page.pngs()
    assert shown == [sent, want["images"][0]["png"]]  # input | output
    assert [c.text for c in page.all("#grid figcaption")] == ["input", "output"]
    out, src, m = grey(shown[1]), grey(sent), grey(painted) > 127
    assert np.array_equal(out[~m], src[~m])  # the known pixels are kept
    page.find("#download-npz").click()
    npz = page.driver.downloads / "mnist-inpaint-restore.npz"
    wait_for(npz.exists, what="the npz download")
    wait_for(lambda: npz.stat().st_size > 0, what="the npz bytes")
    assert np.array_equal(np.load(npz)["images"][0, ..., 0], out)


def test_upscaling_a_drawn_example_shows_the_upscale_routes_image(page, server):
    page.choose_model("mnist-sr4")
    assert page.tabs() == ["upscale"] and not page.has_field("mask")
    page.field("image").find_element("css selector", "button").click()
    page.run()
    sent = page.pngs()[0]
    assert grey(sent).shape == (7, 7)
    want = api(server, "/upscale", {"model": "mnist-sr4", "images": [sent]}).json()["images"][0]["png"]
    assert page.pngs() == [sent, want] and grey(want).shape == (28, 28)
