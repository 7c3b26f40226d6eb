"""A generator with inputs the service has no code for (a categorical code, a scalar) is exported,
served and used by the augmentation job through its card alone."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import torch
from torch import nn

from augment.job import run_job
from export import export_generator
from gan_core.card import InputSpec, ModelCard, class_input, latent_input
from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from service.local_server import local_serve

CARD = ModelCard(
    name="toy-codes", variant="toy", arch="toy", num_classes=3, class_names=["a", "b", "c"], image_shape=(1, 8, 8),
    inputs=[
        latent_input(8),
        class_input(),
        InputSpec(name="digit", kind="categorical", dtype="int64", num_choices=4, description="toy code"),
        InputSpec(name="gain", kind="scalar", dtype="float32", default=1.0, range=(0.0, 2.0)),
    ],
)  # fmt: skip


class ToyGenerator(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 64)
        self.cls, self.code = nn.Embedding(3, 64), nn.Embedding(4, 64)

    def forward(self, z, labels, digit, gain):
        h = self.fc(z) + self.cls(labels) + self.code(digit)
        return torch.tanh(h * gain[:, None]).view(-1, 1, 8, 8)


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    card = export_generator(ToyGenerator(), CARD, "0" * 64, d / "toy.onnx")
    assert [i.name for i in card.inputs] == [
        "z",
        "labels",
        "digit",
        "gain",
    ] and card.export.parity_max_abs_diff <= 1
    return d


def direct(toy_dir, seed, idx, values):
    sess = open_generator(toy_dir / "toy.onnx", threads=1)
    return sess.run(build_feeds(sess.card, seed, idx, values))


def test_codes_through_a_real_server_and_its_openapi(toy_dir):
    with local_serve(toy_dir) as url:
        body = {
            "count": 4,
            "seed": 5,
            "labels": "b",
            "codes": {"digit": 2, "gain": [0.5, 1.0, 1.5, 2.0]},
            "format": "npz",
        }
        r = httpx.post(url + "/generate", json=body, timeout=30)
        assert r.status_code == 200, r.text
        with np.load(io.BytesIO(r.content)) as z:
            got = z["images"]
        want = direct(toy_dir, 5, range(4), {"labels": 1, "digit": 2, "gain": [0.5, 1.0, 1.5, 2.0]})
        np.testing.assert_array_equal(got, want)
        # a code left out is drawn from the seed: image i is the same whatever else the request holds
        one = httpx.post(
            url + "/generate", json={"count": 1, "seed": 5, "start_index": 2, "format": "npz"}, timeout=30
        )
        with np.load(io.BytesIO(one.content)) as z:
            np.testing.assert_array_equal(z["images"][0], direct(toy_dir, 5, range(4), {})[2])
        bad = httpx.post(url + "/generate", json={"codes": {"gain": 3}}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"].startswith("codes.gain")
        unknown = httpx.post(url + "/generate", json={"codes": {"slant": 0.1}}, timeout=30)
        assert unknown.status_code == 400 and "slant" in unknown.json()["error"]
        schema = httpx.get(url + "/docs.json", timeout=30).json()["components"]["schemas"]
        codes = schema["Codes"]["properties"]
        assert set(codes) == {"digit", "gain"} and "toy code" in codes["digit"]["description"]


def test_augmentation_job_fixes_a_code_and_draws_the_rest(toy_dir, tmp_path):
    res = run_job(
        toy_dir / "toy.onnx", tmp_path / "out", per_class=2, format="npz", seed=3, codes={"gain": 0.5}
    )
    assert res.complete and res.config.codes == {"gain": 0.5}
    with np.load(tmp_path / "out" / "train.npz") as z:
        images, labels = z["images"], z["labels"]
    want = direct(toy_dir, 3, range(6), {"labels": labels, "gain": 0.5})
    np.testing.assert_array_equal(images, want[..., 0])
    from augment.errors import AugmentError

    with pytest.raises(AugmentError, match=r"code gain: must be in \[0, 2\], got 5"):
        run_job(toy_dir / "toy.onnx", tmp_path / "bad", per_class=1, codes={"gain": 5})
    with pytest.raises(AugmentError, match=r"code labels: model 'toy-codes' has no such code input"):
        run_job(toy_dir / "toy.onnx", tmp_path / "bad2", per_class=1, codes={"labels": 1})
