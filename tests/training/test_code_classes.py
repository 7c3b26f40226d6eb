"""A categorical code as a classifier: the Hungarian value -> class map, and `gan evaluate` storing it."""

from __future__ import annotations

import json
import shutil

import numpy as np

from gan.cli import main
from gan_core.card_files import read_card
from training.evaluation.codes import code_assignment

NAMES = [str(k) for k in range(10)]


def test_the_best_one_to_one_map_and_its_accuracy():
    rng = np.random.default_rng(0)
    perm = rng.permutation(10)
    codes = np.arange(1000) % 10
    predicted = perm[codes].copy()
    predicted[:50] = (predicted[:50] + 1) % 10  # 5 % of the images drawn as another digit
    a = code_assignment(codes, predicted, 10, NAMES)
    assert a["classes"] == {str(v): str(perm[v]) for v in range(10)}
    assert a["accuracy"] == a["purity"] == 0.95 and a["n"] == 1000
    assert np.array(a["confusion"]).sum() == 1000


def test_two_values_drawing_one_digit_cost_accuracy_not_purity():
    codes = np.arange(1000) % 10
    predicted = codes.copy()
    predicted[codes == 9] = 4  # values 4 and 9 both draw 4s; no value draws a 9
    a = code_assignment(codes, predicted, 10, NAMES)
    assert a["purity"] == 1.0 and a["accuracy"] == 0.9
    assert a["classes"]["4"] == "4" and a["classes"]["9"] == "9"  # one-to-one: 9 keeps the left-over class


def test_more_values_than_classes_leave_some_values_unmapped():
    codes = np.arange(120) % 12
    a = code_assignment(codes, codes % 10, 12, NAMES)
    assert len(a["classes"]) == 10 and a["accuracy"] == 100 / 120


def test_gan_evaluate_reports_and_stores_the_code_map(tiny_onnx, mnist_small_evaluator, tmp_path, capsys):
    _, onnx_path, _ = tiny_onnx("mnist-infogan")
    path = tmp_path / "infogan.onnx"
    shutil.copy(onnx_path, path)
    assert main(["evaluate", str(path), "--n", "200", "--out", str(tmp_path / "r.json")]) == 0
    assert "code digit as classifier" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    digit = report["code_classes"]["digit"]
    assert (
        digit["n"] == 200 and sorted(digit["classes"]) == NAMES and sorted(digit["classes"].values()) == NAMES
    )
    stored = read_card(path).metrics["code_classes"]["digit"]
    assert stored == {k: digit[k] for k in ("classes", "accuracy", "purity", "n")}
    assert "class_accuracy" not in report  # unconditional: no asked-for labels
