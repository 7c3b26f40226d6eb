"""`gan augment --label-from code:NAME`: an InfoGAN's categorical code labels the images it makes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from augment.errors import AugmentError
from augment.job import run_job
from gan.cli import main as gan
from gan_core.card_files import read_card, write_card
from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator

# what `gan evaluate` would store: value v of the code draws digit (v + 3) % 10
MAP = {str(v): str((v + 3) % 10) for v in range(10)}


@pytest.fixture()
def infogan(tiny_onnx, tmp_path):
    path = tmp_path / "infogan.onnx"
    shutil.copy(tiny_onnx("mnist-infogan")[1], path)
    return path


def with_map(path, classes=MAP):
    card = read_card(path)
    metrics = {**(card.metrics or {}), "code_classes": {"digit": {"classes": classes, "accuracy": 0.9}}}
    write_card(path, card.model_copy(update={"metrics": metrics}))
    return path


def test_labels_come_from_the_code_and_the_images_from_its_mapped_value(infogan, tmp_path):
    with_map(infogan)
    res = run_job(infogan, tmp_path / "o", per_class=3, classes="0,7", format="npz", seed=4, chunk_size=4,
                  batch_size=2, codes={"c1": 0.5}, label_from="code:digit")  # fmt: skip
    assert res.complete and res.config.label_from == "code:digit" and res.config.labelled
    with np.load(tmp_path / "o" / "train.npz") as z:
        images, labels = z["images"], z["labels"]
    assert labels.tolist() == [0, 7] * 3
    sess = open_generator(infogan, threads=1)
    digit = np.array([(int(lab) - 3) % 10 for lab in labels])  # class k <- value (k - 3) % 10
    want = sess.run(build_feeds(sess.card, 4, range(6), {"digit": digit, "c1": 0.5}))
    np.testing.assert_array_equal(images, want[..., 0])


def test_the_http_backend_sends_the_same_per_image_codes(infogan, tmp_path):
    from service.local_server import local_serve

    with_map(infogan)
    local = run_job(infogan, tmp_path / "a", per_class=2, format="npz", label_from="code:digit")
    with local_serve(infogan.parent) as url:
        remote = run_job(
            url, tmp_path / "b", per_class=2, format="npz", label_from="code:digit", batch_size=7
        )
    assert remote.complete and local.config.label_codes == remote.config.label_codes
    a, b = np.load(tmp_path / "a" / "train.npz"), np.load(tmp_path / "b" / "train.npz")
    np.testing.assert_array_equal(a["images"], b["images"])
    np.testing.assert_array_equal(a["labels"], b["labels"])


def test_refusals_name_the_flag_and_what_to_do(infogan, tmp_path, capsys):
    assert gan(["augment", "--model", str(infogan), "--out", str(tmp_path / "x"), "--per-class", "1",
                "--label-from", "code:digit", "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err == (
        "gan augment: error: label_from: the card of model 'mnist-infogan' has no measured value -> class map "
        "for code 'digit'; run `gan evaluate MODEL.onnx` first (it stores metrics.code_classes in the card)"
    )
    with pytest.raises(AugmentError, match=r"label_from: model 'mnist-infogan' has no categorical code 'c1'"):
        run_job(infogan, tmp_path / "y", per_class=1, label_from="code:c1")
    with pytest.raises(AugmentError, match=r"label_from: expected code:NAME"):
        run_job(infogan, tmp_path / "y", per_class=1, label_from="digit")
    with_map(infogan, {k: v for k, v in MAP.items() if k != "0"})  # no value draws a 3
    with pytest.raises(AugmentError, match=r"classes: no value of code 'digit' draws class '3'"):
        run_job(infogan, tmp_path / "y", per_class=1, classes="3", label_from="code:digit")
    with pytest.raises(AugmentError, match=r"code digit: is the label_from code"):
        run_job(infogan, tmp_path / "y", per_class=1, codes={"digit": 1}, label_from="code:digit")
    res = run_job(infogan, tmp_path / "z", per_class=1, format="npz", label_from="code:digit")
    assert res.config.classes == [k for k in range(10) if k != 3]  # the mapped classes by default
