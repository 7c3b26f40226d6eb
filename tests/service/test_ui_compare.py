"""The playground's compare view in a real headless Chromium against a real `bentoml serve`: the same
seed (and class) through every model that generates from a seed, each labelled with its family and
its measured FID, and each image exactly the bytes POST /generate answers for that model."""

from __future__ import annotations

import shutil

import httpx
import pytest

from gan_core.card_files import read_card, write_card
from service.local_server import local_serve
from service.settings import DEFAULT_MODELS_DIR
from tests.service.browser import (
    DESKTOP,
    PHONE,
    Playground,
    console_errors,
    desktop_playground,
    emulate,
    wait_for,
)

MEASURED = {"mnist-dcgan": 20.0, "mnist-stylegan": 12.5}  # the other models carry no metrics


@pytest.fixture(scope="module")
def server(tmp_path_factory, family_routes_dir):
    d = tmp_path_factory.mktemp("ui-compare")
    for path in family_routes_dir.glob("*.onnx"):
        shutil.copy(path, d / path.name)
    for name, fid in MEASURED.items():
        card = read_card(d / f"{name}.onnx")
        write_card(
            d / f"{name}.onnx",
            card.model_copy(update={"metrics": {"fid": fid, "fid_floor": 2.5, "n": 10000}}),
        )
    with local_serve(d, env={"GAN_DEFAULT_MODEL": "mnist-cdcgan"}) as url:
        yield url


@pytest.fixture(scope="module")
def page(server, tmp_path_factory):
    with desktop_playground(server, tmp_path_factory.mktemp("downloads")) as p:
        yield p


def figures(page: Playground) -> list[dict]:
    return page.js(
        """return [...document.querySelectorAll('#compare-grid figure')].map((f) => ({
             model: f.dataset.model, caption: f.querySelector('figcaption').innerText.replace(/\\n/g, ' | '),
             png: (f.querySelector('img')?.src || '').split(',')[1] || null }));"""
    )


def compare(page: Playground, seed: str, cls: str) -> list[dict]:
    from selenium.webdriver.support.ui import Select

    box = page.find("#compare-seed")
    box.clear()
    box.send_keys(seed)
    Select(page.find("#compare-class")).select_by_value(cls)
    page.find("#compare-run").click()
    wait_for(lambda: page.find("#compare-status").text.startswith(f"Seed {seed}"), what="the comparison")
    return figures(page)


def test_the_same_seed_through_every_generating_model_best_fid_first(page, server):
    shown = compare(page, "7", "3")
    # generating models only (not the CycleGAN pair), measured ones by FID, then the rest by name
    assert [f["model"] for f in shown] == ["mnist-stylegan", "mnist-dcgan", "mnist-cdcgan", "mnist-infogan"]
    captions = {f["model"]: f["caption"] for f in shown}
    assert (
        captions["mnist-stylegan"]
        == "mnist-stylegan | stylegan / "
        + read_variant(server, "mnist-stylegan")
        + " | FID 12.5 (5x the floor)"
    )
    assert captions["mnist-dcgan"].endswith("| dcgan / ns | FID 20 (8x the floor)")
    assert captions["mnist-cdcgan"].endswith("| FID not measured")
    for f in shown:
        card = models(server)[f["model"]]
        body = {"model": f["model"], "count": 1, "seed": 7, **({"labels": 3} if card["conditional"] else {})}
        r = httpx.post(server + "/generate", json=body, timeout=60)
        assert r.status_code == 200 and f["png"] == r.json()["images"][0]["png"], f["model"]
    assert page.find("#compare-status").text == "Seed 7, class 3: 4 models."
    assert not console_errors(page.driver)


def test_any_class_leaves_each_model_its_own_draw_and_a_bad_seed_is_named(page, server):
    shown = compare(page, "11", "")
    cdcgan = next(f for f in shown if f["model"] == "mnist-cdcgan")
    r = httpx.post(server + "/generate", json={"model": "mnist-cdcgan", "count": 1, "seed": 11}, timeout=60)
    assert cdcgan["png"] == r.json()["images"][0]["png"]  # the service's own (balanced) class for image 0
    box = page.find("#compare-seed")
    box.clear()
    box.send_keys("-1")
    page.find("#compare-run").click()
    wait_for(
        lambda: page.find("#compare-status").text == "seed: must be a whole number >= 0", what="the error"
    )
    assert box.get_attribute("aria-invalid") == "true"
    assert [f["png"] for f in figures(page)] == [f["png"] for f in shown]  # the last comparison stays


def test_the_compare_view_fits_a_phone(page):
    emulate(page.driver, *PHONE, mobile=True)
    try:
        page.fresh()
        compare(page, "3", "1")
        assert page.no_horizontal_scroll()
    finally:
        emulate(page.driver, *DESKTOP)


def test_the_shipped_folder_is_compared_whole(page):
    """`make serve`'s own folder, whatever `gan bundle` put there: every model that generates from a seed is in
    the compare view, best FID first, each image /generate's own; with one model the view says it needs two."""
    with local_serve(DEFAULT_MODELS_DIR) as url:
        shipped = Playground(page.driver, url).fresh()
        doc = httpx.get(url + "/models", timeout=30).json()
        generating = [m for m in doc["models"] if m["does"] == "generates images (POST /generate)"]
        if len(generating) < 2:
            assert (
                shipped.find("#compare-status").text
                == "Comparing needs two or more models that generate from a seed."
            )
            return
        cls = "3" if any(m["card"]["conditional"] for m in generating) else ""
        shown = compare(shipped, "5", cls)
        by_fid = sorted(generating, key=lambda m: (m["card"]["metrics"]["fid"], m["name"]))
        assert [f["model"] for f in shown] == [m["name"] for m in by_fid]
        for f, m in zip(shown, by_fid, strict=True):
            body = {
                "model": m["name"],
                "count": 1,
                "seed": 5,
                **({"labels": 3} if cls and m["card"]["conditional"] else {}),
            }
            r = httpx.post(url + "/generate", json=body, timeout=60)
            assert r.status_code == 200 and f["png"] == r.json()["images"][0]["png"], m["name"]
            assert f["caption"].startswith(
                f"{m['name']} | {m['card']['arch']} / {m['card']['variant']} | FID "
            )
        assert not console_errors(page.driver)


def models(server: str) -> dict[str, dict]:
    return {m["name"]: m["card"] for m in httpx.get(server + "/models", timeout=30).json()["models"]}


def read_variant(server: str, name: str) -> str:
    return models(server)[name]["variant"]
