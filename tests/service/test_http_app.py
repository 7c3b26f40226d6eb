"""The BentoML service in-process (its ASGI app through a test client): routes, bodies, errors, OpenAPI."""

from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gan_core.latents import latents
from gan_core.runtime import open_generator
from service.guard import flood_log
from service.settings import Settings
from tests.conftest import REPO, zl_feeds


@pytest.fixture(scope="module")
def client(models_dir):
    from starlette.testclient import TestClient

    env = {"GAN_MODELS_DIR": str(models_dir), "GAN_DEFAULT_MODEL": "mnist-cdcgan", "GAN_MAX_COUNT": "64"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from service.app import GeneratorService  # settings and models are read on import

        with TestClient(GeneratorService.to_asgi(), raise_server_exceptions=False) as c:
            yield c
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def pixels(png_b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))))[..., None]


def without_source(card) -> dict:
    doc = card.model_dump(mode="json")
    doc["dataset"].pop("source", None)
    return doc


def test_models_lists_every_card_without_the_data_location(client, cond_onnx, uncond_onnx):
    for r in (client.get("/models"), client.post("/models")):
        assert r.status_code == 200
        doc = r.json()
        assert doc["default"] == "mnist-cdcgan" and [m["name"] for m in doc["models"]] == [
            "mnist-cdcgan",
            "mnist-dcgan",
        ]
        assert doc["models"][0]["card"] == without_source(open_generator(cond_onnx, threads=1).card)
        assert doc["models"][1]["card"] == without_source(open_generator(uncond_onnx, threads=1).card)
        assert doc["models"][0]["provider"] == "CPUExecutionProvider" and doc["failed"] == []
        assert doc["models"][0]["card"]["dataset"]["fingerprint"] and "/tmp" not in r.text


def test_png_answer_matches_direct_ort_and_echoes_the_seed(client, cond_onnx):
    r = client.post("/generate", json={"count": 3, "seed": 11, "start_index": 5, "labels": "balanced"})
    assert r.status_code == 200 and r.headers["x-seed"] == "11"
    doc = r.json()
    assert (doc["seed"], doc["start_index"], doc["count"]) == (11, 5, 3)
    assert [(im["index"], im["label"]) for im in doc["images"]] == [(5, 5), (6, 6), (7, 7)]
    sess = open_generator(cond_onnx, threads=1)
    want = sess.run(zl_feeds(latents(11, range(5, 8), 64), np.array([5, 6, 7])))
    assert np.array_equal(np.stack([pixels(im["png"]) for im in doc["images"]]), want)
    auto = client.post("/generate", json={}).json()
    assert isinstance(auto["seed"], int) and auto["count"] == 1  # random seed, echoed
    again = client.post("/generate", json={"seed": auto["seed"]}).json()
    assert again["images"][0]["png"] == auto["images"][0]["png"]


def test_npz_and_grid_formats(client):
    r = client.post("/generate", json={"model": "mnist-dcgan", "count": 4, "seed": 2, "format": "npz"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    z = np.load(io.BytesIO(r.content))
    assert z["images"].shape == (4, 28, 28, 1) and z["indices"].tolist() == [0, 1, 2, 3]
    assert z["labels"].tolist() == [-1] * 4 and int(z["seed"]) == 2
    g = client.post("/generate", json={"count": 20, "seed": 2, "format": "grid"})
    assert g.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(g.content)).size == (2 * 30 + 2, 10 * 30 + 2)  # 10 class rows of 2
    frames = client.post(
        "/interpolate", json={"seeds": [1, 2], "label": "3", "steps": 4, "format": "frames"}
    ).json()
    assert [im["index"] for im in frames["images"]] == [0, 1, 2, 3] and {
        im["label"] for im in frames["images"]
    } == {3}
    lat = client.post(
        "/generate_from_latents",
        json={"latents": latents(2, range(2), 64).tolist(), "labels": 1, "format": "npz"},
    )
    ref = np.load(
        io.BytesIO(
            client.post("/generate", json={"count": 2, "seed": 2, "labels": 1, "format": "npz"}).content
        )
    )
    assert np.array_equal(np.load(io.BytesIO(lat.content))["images"], ref["images"])


SAME_BOTH_WAYS = [
    ("/generate", {"count": 3, "seed": 11, "start_index": 5, "labels": "balanced"}),
    ("/generate", {"model": "mnist-dcgan", "count": 4, "seed": 2, "format": "npz"}),
    ("/generate", {"count": 20, "seed": 2, "format": "grid"}),
    ("/generate", {"count": 65}),
    ("/generate", {"model": "x"}),
    ("/generate_from_latents", {"latents": [[0.5] * 64], "labels": 3}),
    ("/interpolate", {"seeds": [1, 2], "label": "3", "steps": 4, "format": "frames"}),
    ("/interpolate", {"seeds": [1], "label": 0}),
    ("/models", {}),
]


def test_direct_dispatch_answers_as_the_bentoml_route_does(client, monkeypatch):
    """The guard answers validated requests itself; GAN_DIRECT_DISPATCH=0 routes them through
    BentoML: the same status, headers and bytes either way, and only the latter reaches BentoML."""
    import _bentoml_impl.server.app as bento_app

    import service.app as app

    endpoint = bento_app.ServiceAppFactory.api_endpoint
    reached: list[str] = []

    async def counted(self, name, request):
        reached.append(name)
        return await endpoint(self, name, request)

    monkeypatch.setattr(bento_app.ServiceAppFactory, "api_endpoint", counted)
    keep = ("content-type", "server", "x-seed", "x-model", "retry-after")

    def answers():
        out = []
        for route, body in SAME_BOTH_WAYS:
            r = client.post(route, json=body)
            out.append((route, r.status_code, {k: r.headers.get(k) for k in keep}, r.content))
        return out

    direct = answers()
    assert reached == []
    monkeypatch.setattr(app, "DIRECT_DISPATCH", False)
    routed = answers()
    # all but count 65, which the guard refuses itself (service.limits) before any route
    assert len(reached) == len(SAME_BOTH_WAYS) - 1
    assert direct == routed
    assert [s for _, s, _, _ in direct] == [200, 200, 200, 400, 404, 200, 200, 400, 200]
    guarded = SAME_BOTH_WAYS.index(("/generate", {"count": 65}))
    assert {h["server"] for k, (_, _, h, _) in enumerate(direct) if k != guarded} == {
        "BentoML Service/gan_generator"
    }


def test_an_unexpected_failure_is_a_500_without_details_either_way(client, monkeypatch, caplog):
    import service.app as app

    async def broken(core, req):
        raise RuntimeError("secret internals")

    monkeypatch.setitem(app.ANSWERS, "/generate", broken)
    for direct in (True, False):
        monkeypatch.setattr(app, "DIRECT_DISPATCH", direct)
        with caplog.at_level(logging.ERROR):
            r = client.post("/generate", json={"count": 1})
        assert (r.status_code, r.json()) == (500, {"error": app.UNEXPECTED})
        assert "secret" not in r.text and any(rec.exc_info for rec in caplog.records)
        caplog.clear()


BAD = [
    ("/generate", {"count": 65}, 400, "count: must be <= 64 (GAN_MAX_COUNT), got 65"),
    ("/generate", {"count": 0}, 400, "count: Input should be greater than or equal to 1"),
    ("/generate", {"model": "x"}, 404, "model: unknown model 'x'; known: mnist-cdcgan, mnist-dcgan"),
    (
        "/generate",
        {"labels": "cat"},
        400,
        "labels: unknown class 'cat'; model 'mnist-cdcgan' has 0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
    ),
    (
        "/generate",
        {"labels": [1.5]},
        400,
        "labels: must be a class index, a class name, a list of them, or 'balanced'",
    ),
    ("/generate", {"truncation": 0}, 400, "truncation: Input should be greater than or equal to 0.1"),
    ("/generate", {"seed": -1}, 400, "seed: Input should be greater than or equal to 0"),
    ("/generate", {"format": "gif"}, 400, "format: Input should be 'png', 'grid' or 'npz'"),
    ("/generate", {"cout": 2}, 400, "cout: Extra inputs are not permitted"),
    ("/generate", [1], 400, "body: must be a JSON object"),
    (
        "/generate_from_latents",
        {"latents": [[0.0] * 3]},
        400,
        "latents[0]: has 3 values; model 'mnist-cdcgan' expects 64 (latent_dim)",
    ),
    (
        "/generate_from_latents",
        {"latents": []},
        400,
        "latents: List should have at least 1 item after validation, not 0",
    ),
    (
        "/interpolate",
        {"seeds": [1, 2], "label": 0, "steps": 65},
        400,
        "steps: must be <= 64 (GAN_MAX_STEPS), got 65",
    ),
    ("/interpolate", {"seeds": [1], "label": 0}, 400, "seeds: must hold exactly 2 values, got 1"),
    # strict types: a string, a float or a bool is not an integer (nor a bool a class)
    ("/generate", {"count": "3"}, 400, "count: Input should be a valid integer"),
    ("/generate", {"count": 2.0}, 400, "count: Input should be a valid integer"),
    ("/generate", {"count": True}, 400, "count: Input should be a valid integer"),
    ("/generate", {"seed": "7"}, 400, "seed: Input should be a valid integer"),
    (
        "/generate",
        {"labels": True},
        400,
        "labels: must be a class index, a class name, a list of them, or 'balanced'",
    ),
    ("/generate", {"model": ""}, 400, "model: String should have at least 1 character"),
    ("/generate", {"truncation": 11}, 400, "truncation: Input should be less than or equal to 10"),
    ("/generate", {"truncation": 1e308}, 400, "truncation: Input should be less than or equal to 10"),
    (
        "/interpolate",
        {"seeds": [1, -2], "label": 0},
        400,
        "seeds.1: Input should be greater than or equal to 0",
    ),
]


@pytest.mark.parametrize(
    ("route", "body", "status", "message"), BAD, ids=[b[3].split(":")[0] + str(i) for i, b in enumerate(BAD)]
)
def test_client_mistakes_get_one_line_4xx_and_one_log_line(client, caplog, route, body, status, message):
    flood_log.reset()  # refusals are logged throttled: the first of a kind gets its line at once
    with caplog.at_level(logging.WARNING):
        r = client.post(route, json=body)
    assert (r.status_code, r.json()) == (status, {"error": message})
    ours = [rec for rec in caplog.records if message in rec.getMessage()]
    assert len(ours) == 1 and ours[0].exc_info is None
    assert not [rec for rec in caplog.records if rec.exc_info]  # no traceback anywhere


def test_invalid_json_and_oversized_body(client):
    r = client.post("/generate", content=b'{"count":', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"].startswith("body: invalid JSON (EOF while parsing")
    r = client.post(
        "/generate", content=b'{"count": 2}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 200 and r.json()["count"] == 2
    big = b'{"latents": [[' + b"0.0," * 1_100_000 + b"0.0]]}"
    r = client.post("/generate_from_latents", content=big, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (
        413,
        {"error": "body: must be <= 4194304 bytes (GAN_MAX_BODY_BYTES)"},
    )


def test_openapi_document_is_valid_and_true(client):
    from openapi_spec_validator import validate

    doc = client.get("/docs.json").json()
    validate(doc)
    paths, schemas = doc["paths"], doc["components"]["schemas"]
    for route in ("/generate", "/generate_from_latents", "/interpolate", "/models"):
        assert "post" in paths[route], route
    assert "get" in paths["/models"]
    for route in ("/livez", "/readyz", "/metrics"):
        assert route in paths
    op = paths["/generate"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    props = schemas[ref.split("/")[-1]]["properties"]
    assert {"model", "count", "seed", "start_index", "labels", "truncation", "format"} <= set(props)
    # unions and nulls as they are accepted, limits as they are enforced
    assert [o["type"] for o in props["labels"]["anyOf"]] == ["integer", "string", "array"]
    assert props["labels"]["nullable"] and props["seed"]["nullable"] and props["truncation"]["nullable"]
    assert (props["count"]["maximum"], props["truncation"]["maximum"], props["model"]["minLength"]) == (
        64,
        10,
        1,
    )
    # every answer: the three media types of 200 and each refusal, with its headers
    assert set(op["responses"]["200"]["content"]) == {
        "application/json",
        "image/png",
        "application/octet-stream",
    }
    assert {"400", "404", "408", "413", "415", "503", "504"} <= set(op["responses"]) and "401" not in op[
        "responses"
    ]
    assert (
        "Retry-After" in op["responses"]["503"]["headers"] and "X-Seed" in op["responses"]["200"]["headers"]
    )
    out = schemas["ImagesResponse"]["properties"]
    assert (
        out["seed"]["nullable"]
        and out["truncation"]["nullable"]
        and schemas["ImageOut"]["properties"]["label"]["nullable"]
    )
    assert "failed" in schemas["ModelsResponse"]["required"]


def test_form_posts_are_refused_with_415(client):
    """curl -d labels bodies form-urlencoded, a web page's simple request text/plain: neither runs."""
    for ctype in ("application/x-www-form-urlencoded", "text/plain"):
        r = client.post("/generate", content=b'{"count": 1}', headers={"content-type": ctype})
        assert (r.status_code, r.json()["error"]) == (
            415,
            f"content-type: must be application/json (send the header Content-Type: application/json), got '{ctype}'",
        )


def metric_series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_unknown_paths_add_no_metric_series(client):
    client.post("/generate", json={"seed": 1})
    client.post("/generate", json={"model": "nope"})
    client.get("/no/such/path")
    client.get("/metrics")  # a scrape is counted once it is answered
    before = client.get("/metrics").text
    for i in range(300):
        client.get(f"/random-{i}/x{i * 7919}")
        client.post(f"/generate/{i}", json={})
    after = client.get("/metrics").text
    assert metric_series(after) == metric_series(before) and "random-" not in after
    assert 'gan_http_requests_total{model="mnist-cdcgan",route="/generate",status="2xx"}' in after
    assert 'gan_http_requests_total{model="unknown",route="/generate",status="4xx"}' in after
    assert (
        float(after.split('gan_http_requests_total{model="",route="other",status="4xx"} ')[1].split()[0])
        >= 601
    )


def test_importing_the_service_does_not_import_torch():
    code = "import sys, service.app, service.core, service.schemas; print('torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAN_")}  # the bundled model
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_openapi_document_with_a_token_names_the_scheme_and_401(client):
    from openapi_spec_validator import validate

    from service.app import API_ROUTES
    from service.guard import OPEN_ROUTES
    from service.openapi import api_document

    base = {"openapi": "3.0.2", "info": {"title": "t", "version": "1"}, "paths": {}}
    doc = api_document(base, API_ROUTES, Settings(api_token="s3cret"), OPEN_ROUTES)
    validate(doc)
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    gen, models = doc["paths"]["/generate"]["post"], doc["paths"]["/models"]["post"]
    assert gen["security"] == [{"bearer": []}] and "401" in gen["responses"]
    assert "security" not in models and "401" not in models["responses"]
