"""Translation evaluation: label preservation on the target domain, FID to it, cycle error; the same
numbers from the checkpoint and from its two ONNX files; the grid source | translated | reconstructed."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from gan.cli import main
from gan_core.datasets import load_dataset
from training.evaluation.classifier import EvaluationError, load_evaluator
from training.evaluation.translation import direction_report


def test_an_identity_translator_keeps_labels_as_often_as_the_evaluator_reads_them(domain_pair):
    a = load_dataset(domain_pair / "a", "test")
    ev = load_evaluator()
    same = direction_report(lambda x: x, lambda x: x, a, a, str(domain_pair / "a"), ev, 200, 0)
    assert (
        same["label_preservation"]
        == same["evaluator_accuracy_on_target"]
        == ev.accuracy(a.images[:200], a.labels[:200])
    )
    assert same["cycle_l1"] == same["change_l1"] == 0.0 and abs(same["fid"]) < 1e-3
    inverted = direction_report(
        lambda x: 255 - x, lambda x: 255 - x, a, a, str(domain_pair / "a"), ev, 200, 0
    )
    assert inverted["cycle_l1"] == 0.0 and inverted["change_l1"] > 0.5 and inverted["fid"] > 100
    assert inverted["label_preservation"] < 0.5


def test_checkpoint_and_onnx_pair_measure_the_same(
    cyclegan_checkpoint, cyclegan_onnx, domain_pair, tmp_path, capsys
):
    assert (
        main(
            [
                "evaluate-translation",
                str(cyclegan_checkpoint),
                "--n",
                "60",
                "--out",
                str(tmp_path / "ck.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "evaluate-translation",
                str(cyclegan_onnx["b2a"][0]),
                "--data-a",
                str(domain_pair / "a"),
                "--data-b",
                str(domain_pair / "b"),
                "--n",
                "60",
                "--out",
                str(tmp_path / "ox.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "a2b: labels kept" in out and "b2a: labels kept" in out
    ck, ox = (json.loads((tmp_path / f).read_text()) for f in ("ck.json", "ox.json"))
    assert (ck["kind"], ox["kind"]) == ("checkpoint", "onnx") and ox["target"].endswith(
        "mnist-cyclegan-a2b.onnx"
    )
    for d in ("a2b", "b2a"):
        assert ck[d]["n"] == 60 and 0 <= ck[d]["label_preservation"] <= 1 and ck[d]["cycle_l1"] > 0
        for k in ("label_preservation", "cycle_l1", "change_l1"):
            assert ox[d][k] == pytest.approx(ck[d][k], abs=0.02), (
                d,
                k,
            )  # ORT vs torch: within 1 level per pixel
    assert ck["data"]["b"]["path"].endswith("pair/b") and ck["evaluators"]["a"]["id"] == "mnist-cnn-v1"
    assert Image.open(tmp_path / "ck.png").size == (
        2 * (10 * 30 + 2),
        2 * (6 * 30 + 2),
    )  # 6 rows of 10 digits


def test_a_lone_direction_and_gan_evaluate_are_refused(cyclegan_onnx, tmp_path, capsys):
    shutil.copy(cyclegan_onnx["a2b"][0], tmp_path / "a2b.onnx")
    assert main(["evaluate-translation", str(tmp_path / "a2b.onnx")]) == 2
    assert "no b2a file of translation model 'mnist-cyclegan' beside it" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "a2b.onnx"), "--n", "10"]) == 2
    err = capsys.readouterr().err
    assert "'mnist-cyclegan-a2b' translates images; measure it with `gan evaluate-translation`" in err
    with pytest.raises(EvaluationError, match="n must be >= 6"):
        from training.evaluation.translation import evaluate_translation

        evaluate_translation(cyclegan_onnx["a2b"][0], n=2)
