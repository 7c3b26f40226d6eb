"""The playground page in a real headless Chromium against a real `bentoml serve`.

One server holds every model family the service serves: the bundled conditional DCGAN, a tiny
unconditional DCGAN, a tiny MLP GAN and a toy generator with categorical / continuous / scalar code
inputs. The page must show exactly the bytes the API gives for the same request.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from export import export_generator
from gan_core.card import InputSpec, ModelCard, latent_input
from service.local_server import local_serve
from tests.conftest import REPO
from tests.service.browser import (
    DESKTOP,
    PHONE,
    Playground,
    chromium,
    console_errors,
    emulate,
    luminance,
    requested_urls,
    screenshot,
    wait_for,
)

BUNDLED = REPO / "service" / "models" / "mnist-cdcgan.onnx"
CODES_CARD = ModelCard(
    name="toy-codes", variant="toy", arch="toy", num_classes=1, class_names=["unlabeled"], image_shape=(1, 8, 8),
    inputs=[
        latent_input(8),
        InputSpec(name="digit", kind="categorical", dtype="int64", num_choices=4, description="which stroke"),
        InputSpec(name="slant", kind="continuous", dtype="float32", range=(-1.0, 1.0), distribution="uniform"),
        InputSpec(name="gain", kind="scalar", dtype="float32", default=1.0, range=(0.0, 2.0)),
    ],
)  # fmt: skip


class CodesGenerator(nn.Module):
    """z, a categorical code, a continuous code and a scalar -> an 8x8 image (tanh)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.code, self.slant = nn.Linear(8, 64), nn.Embedding(4, 64), nn.Linear(1, 64)

    def forward(self, z, digit, slant, gain):
        h = self.fc(z) + self.code(digit) + self.slant(slant[:, None])
        return torch.tanh(h * gain[:, None]).view(-1, 1, 8, 8)


@pytest.fixture(scope="module")
def server(tmp_path_factory, uncond_onnx, tiny_onnx):
    d = tmp_path_factory.mktemp("ui-models")
    shutil.copy(BUNDLED, d / "mnist-cdcgan.onnx")
    shutil.copy(uncond_onnx, d / "mnist-dcgan.onnx")
    shutil.copy(tiny_onnx("mnist-gan")[1], d / "mnist-gan.onnx")
    export_generator(CodesGenerator(), CODES_CARD, "0" * 64, d / "toy-codes.onnx")
    with local_serve(d) as url:
        yield url


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    with chromium(downloads) as drv:
        drv.downloads = downloads
        yield drv


@pytest.fixture
def page(driver, server):
    emulate(driver, *DESKTOP)
    return Playground(driver, server).fresh()


def api(server, path, body):
    r = httpx.post(server + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r


def api_pngs(server, path, body) -> list[str]:
    return [im["png"] for im in api(server, path, body).json()["images"]]


def test_generate_shows_the_apis_bytes_for_a_class_and_seed_and_copies_as_curl(
    page, server, driver, tmp_path
):
    assert driver.current_url.startswith(server + "/ui/")  # / redirects to the playground
    names = [m.get_attribute("data-model") for m in page.all("#model-list .model")]
    assert names == ["mnist-cdcgan", "mnist-dcgan", "mnist-gan", "toy-codes"]
    card = page.find('.model[data-model="mnist-cdcgan"]').text
    assert "mnist (60,000 images, train split), 9,737 steps in 600 s; dcgan / hinge" in card
    assert "FID 5.53 (1.9x the real-data floor) at n=10,000, class accuracy 99.1%" in card
    assert "fp32, opset 18, max 1 uint8 level off torch (batches 1, 7, 256)" in card
    assert "not measured" in page.find('.model[data-model="mnist-dcgan"]').text
    assert page.tabs() == ["generate", "interpolate"]  # no /mix, /traverse, /translate on this service

    page.select("class", "3")
    page.type("seed", "42")
    page.type("count", "14")
    page.run()
    want = api_pngs(server, "/generate", {"model": "mnist-cdcgan", "seed": 42, "count": 14, "labels": "3"})
    assert page.pngs() == want
    assert [c.text for c in page.all("#grid figcaption")] == [f"#{i} · 3" for i in range(14)]
    assert page.find("#result-info").text == "mnist-cdcgan · seed 42 · 14 images · class 3"

    page.find("#copy-curl").click()
    curl = wait_for(lambda: page.find("#curl").text, what="the curl command")
    assert "-H 'Content-Type: application/json'" in curl and "Authorization" not in curl
    out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [im["png"] for im in json.loads(out.stdout)["images"]] == want

    shot = screenshot(driver, tmp_path / "playground.png")
    assert Image.open(shot).size == DESKTOP
    # offline: every request stayed on this service (or in the page), nothing was blocked or broken
    urls = requested_urls(driver)
    assert urls and all(u.startswith((server + "/", "data:", "blob:")) for u in urls), urls
    assert console_errors(driver) == []


def test_random_seed_is_shown_and_downloads_are_the_apis_files(page, server, driver):
    page.find('.field[data-name="seed"] input[type=checkbox]').click()
    page.type("count", "3")
    page.run()
    seed = int(page.control("seed").get_attribute("value"))  # the seed the service picked, exactly
    body = {"model": "mnist-cdcgan", "seed": seed, "count": 3, "labels": "balanced"}
    assert page.pngs() == api_pngs(server, "/generate", body)
    for f in driver.downloads.iterdir():
        f.unlink()
    page.find("#download-npz").click()
    page.find("#download-png").click()
    npz = driver.downloads / f"mnist-cdcgan-generate-seed{seed}.npz"
    png = driver.downloads / f"mnist-cdcgan-generate-seed{seed}.png"
    wait_for(lambda: npz.exists() and png.exists(), what="both downloads")
    assert npz.read_bytes() == api(server, "/generate", {**body, "format": "npz"}).content
    assert png.read_bytes() == api(server, "/generate", {**body, "format": "grid"}).content
    with np.load(io.BytesIO(npz.read_bytes())) as z:
        assert int(z["seed"]) == seed and z["images"].shape == (3, 28, 28, 1)


def test_api_errors_appear_as_the_apis_message_next_to_their_field(page):
    page.type("count", "2000")
    page.run()
    assert page.error("count") == "count: must be <= 1024 (GAN_MAX_COUNT), got 2000"
    assert page.control("count").get_attribute("aria-invalid") == "true"
    assert page.js("return document.activeElement.id") == page.control("count").get_attribute("id")
    page.type("count", "2")
    page.type("truncation", "0.05")
    page.run()
    assert page.error("count") == ""
    assert page.error("truncation") == "truncation: Input should be greater than or equal to 0.1"
    page.type("truncation", "")
    page.type("seed", "abc")
    page.run()
    assert page.error("seed") == "seed: Input should be a valid integer"
    page.type("seed", "1")
    page.run()
    assert len(page.pngs()) == 2 and page.find("#form-error").text == ""


def test_every_family_gets_the_controls_its_card_declares(page, server, driver, tmp_path):
    for name in ("mnist-dcgan", "mnist-gan"):
        page.choose_model(name)
        assert page.tabs() == ["generate", "interpolate"]
        assert not page.has_field("class") and page.has_field("seed") and page.has_field("truncation")
        page.type("seed", "5")
        page.type("count", "4")
        page.run()
        assert page.pngs() == api_pngs(server, "/generate", {"model": name, "seed": 5, "count": 4})

    page.choose_model("toy-codes")
    assert not page.has_field("class")
    sliders = {n: page.control(f"code-{n}") for n in ("digit", "slant", "gain")}
    assert [(s.get_attribute("min"), s.get_attribute("max")) for s in sliders.values()] == [
        ("0", "3"), ("-1", "1"), ("0", "2"),
    ]  # fmt: skip
    outputs = [page.field(f"code-{n}").find_element("css selector", "output").text for n in sliders]
    assert outputs == ["from the seed", "from the seed", "default 1"]

    def toy(**codes):
        body = {"model": "toy-codes", "seed": 3, "count": 4, **({"codes": codes} if codes else {})}
        return api_pngs(server, "/generate", body)

    def shows(want, what):
        wait_for(lambda: page.pngs() == want and not page.busy(), what=what)

    page.type("seed", "3")
    page.type("count", "4")
    page.run()
    assert page.pngs() == toy()
    # moving a code slider with the keyboard fixes that code and redraws the images
    from selenium.webdriver.common.keys import Keys

    sliders["digit"].send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    assert toy(digit=2) != toy()
    shows(toy(digit=2), "images with digit=2")
    sliders["gain"].send_keys(Keys.HOME)
    shows(toy(digit=2, gain=0.0), "images with gain=0")
    sliders["gain"].send_keys(Keys.END)
    shows(toy(digit=2, gain=2.0), "images with gain=2")
    page.field("code-gain").find_element("css selector", "input[type=checkbox]").click()  # unfixed: default
    shows(toy(digit=2), "images with the default gain")
    page.js("arguments[0].value = '0.5'; arguments[0].dispatchEvent(new Event('input'))", sliders["slant"])
    page.run()
    assert page.pngs() == toy(digit=2, slant=0.5) != toy(digit=2)
    screenshot(driver, tmp_path / "playground-codes.png")


def test_interpolation_plays_the_apis_frames(page, server, driver, tmp_path):
    page.tab("interpolate")
    assert page.has_field("seeds") and not page.has_field("count")
    a, b = page.field("seeds").find_elements("css selector", "input")
    a.clear(), a.send_keys("1"), b.clear(), b.send_keys("2")
    page.select("class", "5")
    page.type("steps", "6")
    page.run()
    body = {
        "model": "mnist-cdcgan",
        "seeds": [1, 2],
        "label": "5",
        "steps": 6,
        "method": "slerp",
        "format": "frames",
    }
    frames = api_pngs(server, "/interpolate", body)
    assert page.pngs() == frames and len(set(frames)) == 6
    anim = page.find("#anim")
    seen = set()
    deadline = time.monotonic() + 5
    while len(seen) < 4 and time.monotonic() < deadline:
        seen.add(anim.get_attribute("src").split(",", 1)[1])
        time.sleep(0.03)
    assert len(seen) >= 4 and seen <= set(frames)  # the animation steps through the frames
    page.find("#play").click()  # pause
    assert page.find("#play").get_attribute("aria-pressed") == "false"
    still = anim.get_attribute("src")
    time.sleep(0.4)
    assert anim.get_attribute("src") == still
    page.js("arguments[0].value = '5'; arguments[0].dispatchEvent(new Event('input'))", page.find("#frame"))
    assert anim.get_attribute("src").split(",", 1)[1] == frames[5] and page.find("#frame-out").text == "6/6"
    assert page.find("#download-png").is_displayed() and page.find("#download-npz").is_displayed()
    screenshot(driver, tmp_path / "playground-interpolate.png")


def test_keyboard_alone_reaches_every_control_and_generates(page, server, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    order = []  # the page was just loaded: nothing has the focus yet
    for _ in range(40):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        el = driver.switch_to.active_element
        key = el.get_attribute("data-mode") or el.get_attribute("id") or el.tag_name
        outline = page.js("return getComputedStyle(arguments[0]).outlineStyle", el)
        assert outline != "none", key  # a visible focus ring
        order.append(key)
        if key == "run":
            break
    seed_id, count_id = page.control("seed").get_attribute("id"), page.control("count").get_attribute("id")
    for want in ("model-0", "generate", seed_id, count_id, page.control("class").get_attribute("id"), "run"):
        assert want in order, (want, order)
    # arrow keys move between the modes, Enter in a field generates
    page.find("#tab-generate").send_keys(Keys.ARROW_RIGHT)
    assert driver.switch_to.active_element.get_attribute("data-mode") == "interpolate"
    driver.switch_to.active_element.send_keys(Keys.ARROW_LEFT)
    seed = page.control("seed")
    seed.send_keys(Keys.CONTROL, "a")
    before = page.answered()
    seed.send_keys("77", Keys.ENTER)
    page.wait_answered(before)
    assert page.pngs() == api_pngs(server, "/generate", {"model": "mnist-cdcgan", "seed": 77, "count": 10})


def test_phone_width_and_dark_mode(page, server, driver, tmp_path):
    from selenium.webdriver.support.ui import Select

    emulate(driver, *PHONE, dark=True, mobile=True)
    page.open()
    page.type("seed", "42")
    page.run()
    assert len(page.pngs()) == 10 and page.no_horizontal_scroll()
    bg = page.js("return getComputedStyle(document.body).backgroundColor")
    fg = page.js("return getComputedStyle(document.body).color")
    assert luminance(bg) < 0.1 and luminance(fg) > 0.7, (bg, fg)
    assert not page.find(
        '.model[data-model="mnist-dcgan"] dl'
    ).is_displayed()  # a phone shows the chosen card only
    page.js("document.getElementById('modes').scrollIntoView()")
    screenshot(driver, tmp_path / "playground-phone-dark.png")
    Select(page.find("#theme")).select_by_value("light")  # the menu overrides the OS setting
    assert luminance(page.js("return getComputedStyle(document.body).backgroundColor")) > 0.8

    emulate(driver, *DESKTOP, dark=False)
    Select(page.find("#theme")).select_by_value("dark")
    assert luminance(page.js("return getComputedStyle(document.body).backgroundColor")) < 0.1
    page.open()  # the choice is remembered
    assert page.find("#theme").get_attribute("value") == "dark"
    assert luminance(page.js("return getComputedStyle(document.body).backgroundColor")) < 0.1
    page.tab("interpolate")
    page.run()
    assert len(page.pngs()) == 12
    screenshot(driver, tmp_path / "playground-dark.png")


def test_pages_come_from_this_service_under_a_strict_policy(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        for path in ("/", "/ui"):
            r = c.get(path, follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (307, "/ui/")
        page = c.get("/ui/")
        assert page.status_code == 200 and "<title>GAN playground</title>" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert c.get("/ui/js/main.js").headers["content-type"].startswith("text/javascript")
        docs = c.get("/docs")
        assert (
            docs.status_code == 200
            and "swagger-ui-bundle.js" in docs.text
            and "script-src 'self'" in docs.headers["content-security-policy"]
        )
        assert c.get("/static_content/swagger-ui-bundle.js").status_code == 200
        assert c.post("/generate", json={"seed": 1}).status_code == 200  # the API is unchanged


def test_static_files_name_no_other_host():
    static = REPO / "service" / "ui" / "static"
    files = [p for p in static.rglob("*") if p.is_file()]
    assert {p.relative_to(static).as_posix() for p in files} >= {"index.html", "playground.css", "js/main.js"}
    for p in files:
        text = p.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), p  # no URL of another host
        assert "@import" not in text and "fonts." not in text, p


def test_api_reference_renders_offline(page, server, driver, tmp_path):
    driver.get(server + "/docs")
    wait_for(lambda: page.all(".opblock-summary-path"), what="the API reference")
    paths = {e.text for e in page.all(".opblock-summary-path")}
    assert {"/generate", "/interpolate", "/models"} <= paths
    urls = requested_urls(driver)
    assert all(u.startswith((server + "/", "data:", "blob:")) for u in urls), urls
    screenshot(driver, tmp_path / "api-reference.png")
