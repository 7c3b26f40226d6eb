"""POST /traverse: one code swept at fixed seeds (rows = seeds, columns = values), through the
batcher, with the same images /generate gives, and one-line 4xx errors naming the field."""

from __future__ import annotations

import asyncio
import io
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from export import export_generator
from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from service.core import ClientError, ServingCore
from service.local_server import local_serve
from service.schemas import GenerateRequest, TraverseRequest, request_models
from service.settings import Settings
from service.traverse import encode_traversal, traverse_code
from tests.service.test_card_driven_inputs import CARD as TOY_CARD
from tests.service.test_card_driven_inputs import ToyGenerator


@pytest.fixture(scope="module")
def served(tiny_onnx, tmp_path_factory):
    d = tmp_path_factory.mktemp("traverse")
    shutil.copy(tiny_onnx("mnist-infogan")[1], d / "mnist-infogan.onnx")
    export_generator(ToyGenerator(), TOY_CARD, "0" * 64, d / "toy.onnx")
    return d


@pytest.fixture(scope="module")
def core(served):
    g = ServingCore(Settings(models_dir=served, default_model="mnist-infogan", ort_threads=1, max_count=64))
    yield g
    g.close()


def run(core, **kw):
    return asyncio.run(traverse_code(core, TraverseRequest(**kw)))


def direct(path, seed, index, values):
    sess = open_generator(path, threads=1)
    return sess.run(build_feeds(sess.card, seed, [index], values))[0]


def test_a_categorical_code_takes_every_value_and_each_cell_is_that_image(core, served):
    t = run(core, code="digit", seeds=[3, 8], index=5)
    assert t.values.tolist() == list(range(10)) and t.images.shape == (20, 28, 28, 1)
    for r, seed in enumerate([3, 8]):
        for v in (0, 4, 9):
            want = direct(served / "mnist-infogan.onnx", seed, 5, {"digit": v})
            np.testing.assert_array_equal(t.images[r * 10 + v], want)
    # column v of row r is what /generate gives image 5 of seed r with the code set to v
    g = asyncio.run(core.generate(GenerateRequest(seed=8, start_index=5, count=1, codes={"digit": 4})))
    np.testing.assert_array_equal(g.images[0], t.images[14])


def test_a_continuous_code_is_swept_over_its_range_and_keeps_the_other_codes(core, served):
    t = run(core, code="c1", seeds=[1], steps=5, codes={"digit": 2})
    assert t.values.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    for j, v in enumerate(t.values):
        want = direct(served / "mnist-infogan.onnx", 1, 0, {"digit": 2, "c1": float(v)})
        np.testing.assert_array_equal(t.images[j], want)
    explicit = run(core, code="c1", seeds=[1], values=[0.25, -0.75], codes={"digit": 2})
    np.testing.assert_array_equal(
        explicit.images[0], direct(served / "mnist-infogan.onnx", 1, 0, {"digit": 2, "c1": 0.25})
    )


def test_grid_and_npz_encodings(core):
    t = run(core, code="digit", seeds=[0, 1, 2], values=[1, 2, 3, 4])
    grid = asyncio.run(encode_traversal(t, "grid"))
    assert grid.media_type == "image/png" and grid.headers == {"X-Model": "mnist-infogan", "X-Code": "digit"}
    assert Image.open(io.BytesIO(grid.body)).size == (
        4 * 30 + 2,
        3 * 30 + 2,
    )  # columns = values, rows = seeds
    npz = np.load(io.BytesIO(asyncio.run(encode_traversal(t, "npz")).body))
    assert npz["images"].shape == (12, 28, 28, 1) and npz["seeds"].tolist() == [0, 1, 2]
    assert npz["values"].tolist() == [1, 2, 3, 4] and str(npz["code"]) == "digit"
    assert npz["labels"].tolist() == [-1] * 12


def test_conditional_rows_keep_their_class(core, served):
    t = run(core, model="toy-codes", code="gain", seeds=[4, 4], steps=3, labels=["a", "c"])
    assert t.values.tolist() == [0.0, 1.0, 2.0] and t.labels.tolist() == [0, 0, 0, 2, 2, 2]
    want = direct(served / "toy.onnx", 4, 0, {"labels": 2, "gain": 2.0})
    np.testing.assert_array_equal(t.images[5], want)
    default = run(core, model="toy-codes", code="gain", seeds=[4], index=7, steps=2)
    assert default.labels.tolist() == [1, 1]  # what /generate gives image 7: 7 % 3 classes


ERRORS = [
    ({"code": "slant"}, "code: model 'mnist-infogan' has no code 'slant' (codes: digit, c1, c2)"),
    ({"code": "digit", "steps": 4}, "steps: code 'digit' is categorical; it takes all its values (or give values)"),
    ({"code": "digit", "values": [1, 10]}, "values[1]: must be a whole number in 0..9, got 10"),
    ({"code": "digit", "values": [1.5]}, "values[0]: must be a whole number in 0..9, got 1.5"),
    ({"code": "c1", "values": [0, 2]}, "values[1]: must be in [-1, 1], got 2"),
    ({"code": "c1", "values": [0], "steps": 3}, "steps: give either steps or values, not both"),
    ({"code": "c1", "steps": 65}, "steps: must be <= 64 (GAN_MAX_STEPS), got 65"),
    ({"code": "c1", "steps": 10**9}, "steps: must be <= 64 (GAN_MAX_STEPS), got 1000000000"),
    ({"code": "c1", "values": [0.5] * 65}, "values: must be <= 64 (GAN_MAX_STEPS), got 65"),
    ({"code": "digit", "seeds": list(range(7))}, "seeds: 7 rows x 10 columns = 70 images, must be <= 64 (GAN_MAX_COUNT)"),
    ({"code": "c1", "codes": {"c1": 0}}, "codes.c1: is the swept code; its columns come from steps or values"),
    ({"code": "c1", "codes": {"digit": [1, 2]}}, "codes.digit: a traversal takes one value for every image, not a list"),
    ({"code": "c1", "codes": {"c2": 5}}, "codes.c2: must be in [-1, 1], got 5"),
    ({"code": "c1", "labels": 1}, "labels: model 'mnist-infogan' is unconditional; omit labels"),
    ({"model": "toy-codes", "code": "gain", "seeds": [1, 2], "labels": ["a"]}, "labels: list has 1 entries, expected 2 (one per seed)"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "message"), ERRORS, ids=[m.split(":")[0] for _, m in ERRORS])
def test_client_mistakes_name_the_field(core, body, message):
    with pytest.raises(ClientError) as e:
        run(core, **body)
    assert (str(e.value), e.value.status) == (message, 400)


def test_the_http_route_validates_and_answers(served):
    env = {"GAN_DEFAULT_MODEL": "mnist-infogan", "GAN_MAX_COUNT": "64"}
    with local_serve(served, env=env) as url:
        r = httpx.post(url + "/traverse", json={"code": "c2", "seeds": [5, 6], "steps": 3}, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        assert r.headers["x-code"] == "c2" and Image.open(io.BytesIO(r.content)).size == (92, 62)
        bad = httpx.post(url + "/traverse", json={"code": "digit", "seeds": [-1]}, timeout=30)
        assert (bad.status_code, bad.json()) == (
            400,
            {"error": "seeds.0: Input should be greater than or equal to 0"},
        )
        missing = httpx.post(url + "/traverse", json={}, timeout=30)
        assert (missing.status_code, missing.json()) == (400, {"error": "code: Field required"})
        over = httpx.post(url + "/traverse", json={"code": "digit", "seeds": list(range(7))}, timeout=30)
        assert over.status_code == 400 and "GAN_MAX_COUNT" in over.json()["error"]
        assert "post" in httpx.get(url + "/docs.json", timeout=30).json()["paths"]["/traverse"]


def test_bulk_requests_with_typed_codes_are_answered_like_small_ones(core):
    """Past ENCODE_INLINE images the feeds are made in the bulk process: the request's codes (the
    card-typed model the guard validates with) must reach it as plain values, not a 500."""
    typed = request_models([m.card for m in core.models.values()])["generate"]
    big = typed.model_validate({"model": "mnist-infogan", "seed": 4, "count": 12, "codes": {"digit": 3}})
    images = asyncio.run(core.generate(big)).images
    for start in (0, 6):
        small = typed.model_validate({"model": "mnist-infogan", "seed": 4, "count": 6, "start_index": start,
                                      "codes": {"digit": 3}})  # fmt: skip
        np.testing.assert_array_equal(asyncio.run(core.generate(small)).images, images[start : start + 6])
    with pytest.raises(ClientError) as e:
        asyncio.run(
            core.generate(typed.model_validate({"model": "toy-codes", "count": 12, "codes": {"c1": 0.5}}))
        )
    assert str(e.value) == "codes.c1: model 'toy-codes' has no such code (codes: digit, gain)"
