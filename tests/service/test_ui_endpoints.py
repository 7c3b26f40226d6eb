"""The playground against a stand-in service that also offers /mix, /traverse and /translate (not on
this branch's service yet) and can require a bearer token: tabs appear exactly when a model's card
declares the inputs and /docs.json lists the endpoint, requests have the documented shapes, the token
travels as `Authorization: Bearer`, every POST says `Content-Type: application/json`.

The stand-in serves the real page (service.ui) and answers with fixed PNGs; what it checks is the
page's side of the contract. The real endpoints' own tests live with them.
"""

from __future__ import annotations

import base64
import copy
import threading
import time

import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from gan_core.card import InputSpec, ModelCard, latent_input
from gan_core.imaging import png_bytes
from service.local_server import free_port
from service.ui import playground_app
from tests.service.browser import DESKTOP, Playground, chromium, emulate, screenshot, wait_for

TOKEN = "s3cret"


def card(name, inputs, **kw) -> dict:
    base = dict(
        name=name, variant="toy", arch="toy", num_classes=1, class_names=["unlabeled"], image_shape=(1, 8, 8)
    )
    return ModelCard(**{**base, **kw}, inputs=inputs).model_dump(mode="json")


NOISE = InputSpec(
    name="noise0", kind="noise", dtype="float32", shape=[1, 8, 8], description="per-pixel noise"
)
CARDS = [
    card("style-toy", [latent_input(16), latent_input(16, "z_mix"), NOISE]),
    card("codes-toy", [latent_input(8),
                       InputSpec(name="digit", kind="categorical", dtype="int64", num_choices=3),
                       InputSpec(name="slant", kind="continuous", dtype="float32", range=(-1, 1))]),
    card("cycle-toy", [InputSpec(name="image", kind="image", dtype="uint8", shape=[8, 8, 1])]),
    card("plain-toy", [latent_input(8)]),
]  # fmt: skip


def schema(**props) -> dict:
    return {"type": "object", "properties": {"model": {"type": "string"}, **props}}


INT = {"type": "integer"}
SEEDS = {"type": "array", "items": INT}
FORMAT = {"type": "string", "enum": ["png", "grid", "npz"]}
SCHEMAS = {
    "/generate": schema(count=INT, seed=INT, start_index=INT, labels=INT, truncation={"type": "number"},
                        codes={"type": "object"}, noise_mode={"type": "string", "enum": ["seeded", "const", "none"],
                        "default": "seeded", "description": "per-pixel noise"}, format=FORMAT),
    "/interpolate": schema(seeds=SEEDS, label=INT, steps=INT, method={"type": "string", "enum": ["slerp", "lerp"]},
                           codes={"type": "object"}, format={"type": "string", "enum": ["grid", "frames", "npz"]}),
    # the fields of the real routes (service.mixing.MixRequest, schemas.TraverseRequest, translate.TranslateJSON)
    "/mix": schema(row_seeds=SEEDS, col_seeds=SEEDS, crossover={"type": "integer", "minimum": 0, "maximum": 5},
                   labels=INT, truncation_psi={"type": "number"}, format={"type": "string", "enum": ["grid", "npz"]}),
    "/traverse": schema(code={"type": "string"}, seeds=SEEDS, steps=INT, labels=INT, codes={"type": "object"},
                        format={"type": "string", "enum": ["grid", "npz"]}),
    "/translate": schema(images={"type": "array", "items": {"type": "string"}, "description": "base64 PNG or JPEG images"},
                         direction={"type": "string", "enum": ["a2b", "b2a"]},
                         format={"type": "string", "enum": ["png", "grid", "npz"]}),
}  # fmt: skip
CORE = ("/generate", "/interpolate")


def image_png(k: int) -> bytes:
    return png_bytes(np.full((8, 8, 1), 25 * k, np.uint8))


class StandIn:
    """The service's HTTP contract for the page, plus the endpoints other branches are adding."""

    def __init__(self):
        self.paths = list(SCHEMAS)
        self.token: str | None = None
        self.requests: list[tuple[str, dict]] = []
        routes = [Route("/models", self.models), Route("/docs.json", self.docs)]
        routes += [Route(p, self.endpoint(p), methods=["POST"]) for p in SCHEMAS]
        self.app = Starlette(routes=[*routes, Mount("/ui", app=playground_app())])

    def refused(self, request: Request) -> JSONResponse | None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse(
                {"error": "authorization: missing or wrong bearer token (GAN_API_TOKEN)"}, 401
            )
        if request.method == "POST" and request.headers.get("content-type") != "application/json":
            return JSONResponse({"error": "content-type: must be application/json"}, 415)
        return None

    async def models(self, request):
        return self.refused(request) or JSONResponse(
            {"default": "style-toy", "models": [
                {"name": c["name"], "file": c["name"] + ".onnx", "sha256": "0" * 64, "provider": "CPUExecutionProvider",
                 "threads": 1, "default": c["name"] == "style-toy", "card": c} for c in CARDS]}
        )  # fmt: skip

    async def docs(self, request):
        ref = lambda p: {"$ref": f"#/components/schemas/{p.strip('/')}"}  # noqa: E731
        body = lambda p: {"requestBody": {"content": {"application/json": {"schema": ref(p)}}}}  # noqa: E731
        return JSONResponse({
            "openapi": "3.0.2", "paths": {p: {"post": body(p)} for p in self.paths},
            "components": {"schemas": {p.strip("/"): copy.deepcopy(SCHEMAS[p]) for p in self.paths}},
        })  # fmt: skip

    def endpoint(self, path):
        async def answer(request: Request):
            refused = self.refused(request)
            if refused:
                return refused
            body = await request.json()
            self.requests.append((path, body))
            if path == "/mix" and not 0 <= body.get("crossover", 0) <= 5:
                return JSONResponse({"error": f"crossover: must be in 0..5, got {body['crossover']}"}, 400)
            fmt = body.get("format", "png")
            if fmt in ("png", "frames"):
                images = [
                    {"png": base64.b64encode(image_png(k)).decode(), "index": k, "label": None}
                    for k in range(3)
                ]
                return JSONResponse({"images": images}, headers={"X-Seed": "7"})
            return Response(
                image_png(9), media_type="image/png" if fmt == "grid" else "application/octet-stream"
            )

        return answer


@pytest.fixture(scope="module")
def stand_in():
    s = StandIn()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(s.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="the stand-in server")
    s.url = f"http://127.0.0.1:{port}"
    yield s
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("downloads")) as drv:
        yield drv


@pytest.fixture
def page(driver, stand_in):
    stand_in.paths, stand_in.token, stand_in.requests[:] = list(SCHEMAS), None, []
    emulate(driver, *DESKTOP)
    return Playground(driver, stand_in.url).fresh("/ui/")


def last_request(stand_in, path):
    wait_for(lambda: stand_in.requests and stand_in.requests[-1][0] == path, what=f"a request to {path}")
    return stand_in.requests[-1][1]


def test_tabs_follow_the_card_and_the_documented_endpoints(page, stand_in):
    expected = {
        "style-toy": ["generate", "interpolate", "mix"],
        "codes-toy": ["generate", "interpolate", "traverse"],
        "cycle-toy": ["translate"],
        "plain-toy": ["generate", "interpolate"],
    }
    for name, tabs in expected.items():
        page.choose_model(name)
        assert page.tabs() == tabs, name
    page.choose_model("style-toy")
    assert page.has_field("x-noise_mode")  # the card has a noise input and /generate a noise_mode field
    page.choose_model("codes-toy")
    assert not page.has_field("x-noise_mode")

    stand_in.paths = list(CORE)  # this branch's service: no /mix, /traverse, /translate in /docs.json
    page.open("/ui/")
    for name in ("style-toy", "codes-toy", "plain-toy"):
        page.choose_model(name)
        assert page.tabs() == ["generate", "interpolate"], name
    page.choose_model("cycle-toy")
    assert page.tabs() == [] and "has no /translate endpoint" in page.find("#no-modes").text


def test_mix_traverse_and_translate_send_the_documented_shapes(page, stand_in, tmp_path):
    page.tab("mix")
    a, b = page.field("seeds").find_elements("css selector", "input")
    a.clear(), a.send_keys("11"), b.clear(), b.send_keys("12")
    slider = page.control("crossover")
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("0", "5")
    page.js("arguments[0].value = '4'; arguments[0].dispatchEvent(new Event('input'))", slider)
    page.run()
    assert last_request(stand_in, "/mix") == {
        "model": "style-toy",
        "row_seeds": [11],
        "col_seeds": [12],
        "crossover": 4,
        "format": "grid",
    }
    assert page.find("#grid img.whole").is_displayed() and page.find("#download-npz").is_displayed()
    page.js(
        "arguments[0].max = '9'; arguments[0].value = '9'", slider
    )  # an out-of-range value reaches the API
    page.run()
    assert page.error("crossover") == "crossover: must be in 0..5, got 9"
    screenshot(page.driver, tmp_path / "playground-mix.png")

    page.tab("generate")
    page.select("x-noise_mode", '"const"')
    page.type("seed", "3")
    page.run()
    body = last_request(stand_in, "/generate")
    assert body["noise_mode"] == "const" and body["seed"] == 3 and len(page.pngs()) == 3

    page.choose_model("codes-toy")
    page.tab("traverse")
    page.select("code", "slant")
    page.type("traverse-seeds", "4, 5")
    page.type("steps", "7")
    page.control("code-digit").send_keys("\ue014")  # ArrowRight: fixes digit = 1 for every row
    page.run()
    assert last_request(stand_in, "/traverse") == {
        "model": "codes-toy", "code": "slant", "seeds": [4, 5], "steps": 7, "codes": {"digit": 1}, "format": "grid",
    }  # fmt: skip

    page.choose_model("cycle-toy")
    upload = tmp_path / "in.png"
    upload.write_bytes(image_png(5))
    page.control("image").send_keys(str(upload))
    page.select("x-direction", '"b2a"')
    time.sleep(0.1)
    page.run()
    assert last_request(stand_in, "/translate") == {
        "model": "cycle-toy", "images": [base64.b64encode(upload.read_bytes()).decode()], "direction": "b2a", "format": "png",
    }  # fmt: skip
    assert len(page.pngs()) == 3
    screenshot(page.driver, tmp_path / "playground-translate.png")


def test_a_bearer_token_is_asked_for_and_sent(page, stand_in):
    stand_in.token = TOKEN
    page.driver.get(stand_in.url + "/ui/")
    error = wait_for(lambda: page.find("#token-error").text, what="the token error")
    assert error == "authorization: missing or wrong bearer token (GAN_API_TOKEN)"
    assert page.js("return document.activeElement.id") == "token"
    page.find("#token").send_keys(TOKEN, "\ue007")  # Enter
    wait_for(lambda: page.tabs(), what="the models after the token")
    page.choose_model("plain-toy")
    page.type("seed", "8")
    page.run()
    assert last_request(stand_in, "/generate")["seed"] == 8 and len(page.pngs()) == 3
    page.find("#copy-curl").click()
    curl = wait_for(lambda: page.find("#curl").text, what="the curl command")
    assert '-H "Authorization: Bearer $GAN_API_TOKEN"' in curl and TOKEN not in curl
