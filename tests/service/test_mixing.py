"""StyleGAN models served through their cards: truncation_psi and noise_mode on /generate, and the
style mixing grid of POST /mix (layout, determinism, agreement with /generate, errors)."""

from __future__ import annotations

import asyncio
import io
import shutil

import httpx
import numpy as np
import pytest
from PIL import Image

from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from service.core import ClientError, ServingCore
from service.local_server import local_serve
from service.mixing import MixRequest, mix
from service.schemas import GenerateRequest
from service.settings import Settings


@pytest.fixture(scope="module")
def style_dir(tmp_path_factory, tiny_onnx, cond_onnx):
    d = tmp_path_factory.mktemp("style-served")
    shutil.copy(tiny_onnx("mnist-stylegan")[1], d / "mnist-stylegan.onnx")
    shutil.copy(cond_onnx, d / "mnist-cdcgan.onnx")
    return d


@pytest.fixture(scope="module")
def core(style_dir):
    g = ServingCore(
        Settings(models_dir=style_dir, default_model="mnist-stylegan", ort_threads=1, max_count=64)
    )
    yield g
    g.close()


def generate(core, **kw) -> np.ndarray:
    return asyncio.run(core.generate(GenerateRequest(**kw))).images


def grid_npz(core, **kw) -> dict[str, np.ndarray]:
    reply = asyncio.run(mix(core, MixRequest(format="npz", **kw)))
    with np.load(io.BytesIO(reply.body)) as z:
        return {k: z[k] for k in z.files}


def test_generate_takes_truncation_psi_and_noise_mode(core, style_dir):
    seeded = generate(core, count=3, seed=4, labels=2)
    sess = open_generator(style_dir / "mnist-stylegan.onnx", threads=1)
    assert np.array_equal(seeded, sess.run(build_feeds(sess.card, 4, range(3), {"labels": 2})))
    for mode in ("const", "none"):
        want = sess.run(build_feeds(sess.card, 4, range(3), {"labels": 2}, noise_mode=mode))
        assert np.array_equal(generate(core, count=3, seed=4, labels=2, noise_mode=mode), want)
    # psi 0 in W: every image of a class is the class's average w (noise off): the same picture
    avg = generate(core, count=3, seed=4, labels=2, noise_mode="none", codes={"truncation_psi": 0.0})
    assert np.array_equal(avg[0], avg[1]) and np.array_equal(avg[0], avg[2])
    with pytest.raises(ClientError, match=r"codes.truncation_psi: must be in \[0, 1.5\], got 2"):
        generate(core, seed=4, labels=2, codes={"truncation_psi": 2.0})


def test_mixing_grid_layout_matches_generate_and_is_deterministic(core):
    rows, cols = [5, 6, 7], [8, 9]
    z = grid_npz(core, row_seeds=rows, col_seeds=cols, crossover=3, labels=1, truncation_psi=0.8)
    cells = z["images"]
    assert cells.shape == (4, 3, 28, 28, 1) and not cells[0, 0].any()
    assert z["row_seeds"].tolist() == rows and z["col_seeds"].tolist() == cols and int(z["crossover"]) == 3
    psi = {"truncation_psi": 0.8}
    for j, s in enumerate(cols):
        assert np.array_equal(cells[0, j + 1], generate(core, seed=s, labels=1, codes=psi)[0])
    for i, s in enumerate(rows):
        assert np.array_equal(cells[i + 1, 0], generate(core, seed=s, labels=1, codes=psi)[0])
    assert not np.array_equal(cells[1, 1], cells[1, 0]) and not np.array_equal(cells[1, 1], cells[0, 1])
    # a cell depends on its row and column seeds only, not on the grid around it
    alone = grid_npz(core, row_seeds=[6], col_seeds=[9], crossover=3, labels=1, truncation_psi=0.8)
    assert np.array_equal(alone["images"][1, 1], cells[2, 2])
    png = asyncio.run(mix(core, MixRequest(row_seeds=rows, col_seeds=cols, crossover=3, labels=1)))
    again = asyncio.run(mix(core, MixRequest(row_seeds=rows, col_seeds=cols, crossover=3, labels=1)))
    assert png.media_type == "image/png" and png.body == again.body
    assert Image.open(io.BytesIO(png.body)).size == (3 * 30 + 2, 4 * 30 + 2)


def test_crossover_ends_give_the_unmixed_images(core):
    n_ws = 6  # 7, 14, 28 px: 3 resolutions x 2 style layers
    top = grid_npz(core, row_seeds=[1, 2], col_seeds=[3], crossover=n_ws, labels=0)["images"]
    assert np.array_equal(top[1:, 1], top[1:, 0])  # no layer from the column seed
    bottom = grid_npz(core, row_seeds=[1, 2], col_seeds=[3], crossover=0, labels=0, noise_mode="none")[
        "images"
    ]
    assert np.array_equal(bottom[1, 1], bottom[0, 1]) and np.array_equal(bottom[2, 1], bottom[0, 1])
    default = grid_npz(core, row_seeds=[1], col_seeds=[3], labels=0)
    assert int(default["crossover"]) == n_ws // 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "mnist-cdcgan", "labels": 1}, "model: 'mnist-cdcgan' has no style mixing inputs (z_mix, mix_layer)"),
        ({"crossover": 7, "labels": 1}, "crossover: must be in 0..6 (the model's style layers), got 7"),
        ({}, "labels: required for conditional model 'mnist-stylegan' (a class index or name)"),
        ({"labels": 12}, "labels: class 12 is not in 0..9 (model 'mnist-stylegan')"),
        ({"labels": 1, "truncation_psi": -1}, "truncation_psi: must be in [0, 1.5], got -1"),
        ({"labels": 1, "row_seeds": list(range(8)), "col_seeds": list(range(8))},
         "row_seeds: a 8 x 8 grid makes 80 images, more than 64 (GAN_MAX_COUNT)"),
    ],
)  # fmt: skip
def test_mixing_mistakes_name_the_field(core, fields, message):
    body = {"row_seeds": [1], "col_seeds": [2], **fields}
    with pytest.raises(ClientError) as e:
        asyncio.run(mix(core, MixRequest(**body)))
    assert str(e.value) == message and e.value.status == 400


def test_mix_route_through_the_http_app(style_dir):
    with local_serve(style_dir, env={"GAN_DEFAULT_MODEL": "mnist-stylegan"}) as url:
        body = {"row_seeds": [1, 2], "col_seeds": [3], "labels": "4", "crossover": 2}
        r = httpx.post(url + "/mix", json=body, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        assert r.headers["x-model"] == "mnist-stylegan"
        bad = httpx.post(url + "/mix", json={"row_seeds": [], "col_seeds": [3]}, timeout=30)
        assert bad.status_code == 400
        assert bad.json() == {"error": "row_seeds: List should have at least 1 item after validation, not 0"}
        bad = httpx.post(
            url + "/mix", json={"row_seeds": [1], "col_seeds": [3], "noise_mode": "loud"}, timeout=30
        )
        assert bad.json() == {"error": "noise_mode: Input should be 'seeded', 'const' or 'none'"}
        assert "/mix" in httpx.get(url + "/docs.json", timeout=30).json()["paths"]
