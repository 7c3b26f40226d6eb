"""The shipped evaluator (accuracy, integrity) and `gan train-evaluator`."""

import json
import shutil

import numpy as np
import pytest

from gan.cli import main
from training.checkpoint import sha256_file
from training.evaluator import EVALUATOR_DIR, EvaluationError, find_evaluator, load_evaluator


def test_shipped_evaluator_card_and_size():
    card = json.loads((EVALUATOR_DIR / "mnist.json").read_text())
    weights = EVALUATOR_DIR / "mnist.safetensors"
    assert card["id"] == "mnist-cnn-v1" and card["weights_sha256"] == sha256_file(weights)
    assert card["test_accuracy"] >= 0.99 and card["test_n"] == 10_000
    assert card["feature_dim"] == 128 and card["image_shape"] == [1, 28, 28]
    assert weights.stat().st_size < 5_000_000
    assert card["training"]["command"].startswith("gan train-evaluator")


def test_shipped_evaluator_accuracy_and_features(mnist_dir):
    from gan_core.datasets import load_dataset

    test = load_dataset(mnist_dir, "test")
    ev = load_evaluator()
    feats, logits = ev.features_and_logits(test.images[:2000], batch_size=512)
    assert feats.shape == (2000, 128) and feats.dtype == np.float32 and logits.shape == (2000, 10)
    assert (feats >= 0).all()  # ReLU features
    assert (logits.argmax(1) == test.labels[:2000]).mean() >= 0.985
    # batching does not change the result beyond float noise
    f2, _ = ev.features_and_logits(test.images[:100], batch_size=7)
    np.testing.assert_allclose(f2, feats[:100], rtol=1e-4, atol=1e-4)


def test_find_evaluator_matches_shape_and_classes():
    assert find_evaluator((1, 28, 28), 10).id == "mnist-cnn-v1"
    assert find_evaluator((3, 28, 28), 10) is None
    assert find_evaluator((1, 28, 28), 3) is None


def test_check_images_names_the_shape():
    with pytest.raises(
        EvaluationError,
        match=r"image shape \(3, 28, 28\) \(C, H, W\) does not match evaluator 'mnist-cnn-v1'",
    ):
        load_evaluator().features_and_logits(np.zeros((2, 3, 28, 28), np.uint8))


def test_tampered_weights_are_refused(tmp_path):
    for suffix in (".safetensors", ".json"):
        shutil.copy(EVALUATOR_DIR / f"mnist{suffix}", tmp_path / f"ev{suffix}")
    data = bytearray((tmp_path / "ev.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "ev.safetensors").write_bytes(bytes(data))
    with pytest.raises(EvaluationError, match="does not match the card's"):
        load_evaluator(tmp_path / "ev")


def test_missing_evaluator_is_a_clean_cli_error(mnist_small, tmp_path, capsys):
    assert main(["evaluate", str(mnist_small), "--n", "50", "--evaluator", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"gan evaluate: error: {tmp_path / 'none'}: evaluator not found (needs .safetensors and .json; train one with `gan train-evaluator`)\n"
    )


def test_train_evaluator_cli_is_reproducible(mnist_dir, tmp_path, capsys):
    args = ["train-evaluator", "--data", str(mnist_dir), "--train-n", "2000", "--test-n", "500", "--epochs", "2",
            "--threads", "1", "--id", "tiny-v0", "--no-progress"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "evaluator tiny-v0: test accuracy" in capsys.readouterr().out
    a, b = (json.loads((tmp_path / f"{s}.json").read_text()) for s in "ab")
    assert a["weights_sha256"] == b["weights_sha256"] == sha256_file(tmp_path / "a.safetensors")
    assert a["training"]["train_n"] == 2000 and a["test_n"] == 500 and a["training"]["epochs"] == 2
    ev = load_evaluator(tmp_path / "a")
    from gan_core.datasets import load_dataset

    test = load_dataset(mnist_dir, "test")
    assert (
        ev.id == "tiny-v0" and ev.accuracy(test.images[:500], test.labels[:500]) == a["test_accuracy"] > 0.6
    )


def test_train_evaluator_rejects_bad_flags(tmp_path, capsys):
    assert main(["train-evaluator", "--out", str(tmp_path / "x"), "--epochs", "0"]) == 2
    assert capsys.readouterr().err == "gan train-evaluator: error: --epochs must be >= 1, got 0\n"


def test_train_evaluator_needs_a_test_split(mnist_small, tmp_path, capsys):
    assert main(["train-evaluator", "--data", str(mnist_small), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == (
        f"gan train-evaluator: error: {mnist_small}: no separate test split to measure accuracy on "
        "(give an IDX folder or train/ + test/ image folders)\n"
    )
