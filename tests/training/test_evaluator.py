"""The shipped evaluator (accuracy, integrity, its data binding) and `gan train-evaluator` for any dataset."""

import json
import shutil

import numpy as np
import pytest
import torch

from gan.cli import main
from training.checkpoint import sha256_file
from training.evaluation.classifier import EVALUATOR_DIR, EvaluationError, EvaluatorNet, load_evaluator
from training.evaluation.store import bound_evaluator


def test_shipped_evaluator_card_and_size():
    card = json.loads((EVALUATOR_DIR / "mnist.json").read_text())
    weights = EVALUATOR_DIR / "mnist.safetensors"
    assert card["id"] == "mnist-cnn-v1" and card["weights_sha256"] == sha256_file(weights)
    assert card["test_accuracy"] >= 0.99 and card["test_n"] == 10_000
    assert card["feature_dim"] == 128 and card["image_shape"] == [1, 28, 28]
    assert weights.stat().st_size < 5_000_000
    assert card["training"]["command"].startswith("gan train-evaluator")
    # bound to MNIST: its training split's fingerprint (what the bundled model's card records) and test split
    assert card["task"] == "classes" and card["dataset"]["fingerprint"] == "d18cfd466eb143ac"
    assert card["dataset"]["test"] == {"kind": "split", "fingerprint": "a0863a96c44e5666"}


def test_cards_written_before_the_binding_still_load(tmp_path):
    card = json.loads((EVALUATOR_DIR / "mnist.json").read_text())
    del card["dataset"], card["task"]
    (tmp_path / "old.json").write_text(json.dumps(card))
    shutil.copy(EVALUATOR_DIR / "mnist.safetensors", tmp_path / "old.safetensors")
    ev = load_evaluator(tmp_path / "old")
    assert ev.card.task == "classes" and ev.card.dataset.fingerprint == "d18cfd466eb143ac"
    assert ev.card.dataset.test["fingerprint"] == "a0863a96c44e5666" and ev.card.dataset.name == "mnist"


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


def test_the_bound_evaluator_is_found_by_fingerprint_not_by_shape(mnist_train):
    from gan_core.datasets import ImageDataset

    assert bound_evaluator(mnist_train.fingerprint()).id == "mnist-cnn-v1"
    # MNIST's shape and class count, other pixels (a clothing set, say): no evaluator, not MNIST's
    other = ImageDataset(
        255 - mnist_train.images[:500], mnist_train.labels[:500], mnist_train.class_names, "x", "x"
    )
    assert other.image_shape == (1, 28, 28) and other.num_classes == 10
    assert bound_evaluator(other.fingerprint()) is None


def test_evaluator_net_scales_with_the_image_size():
    convs = {
        s: sum(isinstance(m, torch.nn.Conv2d) for m in EvaluatorNet(3, 10, size=s).blocks)
        for s in (28, 32, 64)
    }
    assert convs == {28: 2, 32: 2, 64: 3}
    for s in (28, 32, 64):
        f, logits = EvaluatorNet(3, 10, size=s).forward_both(torch.zeros(2, 3, s, s))
        assert f.shape == (2, 128) and logits.shape == (2, 10)


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


def test_train_evaluator_holds_out_a_split_when_the_data_has_none(mnist_small, tmp_path, capsys, monkeypatch):
    # a store of its own: the session's holds the tiny evaluator of the same data (mnist_small_evaluator),
    # which later tests expect to be the one bound to it
    monkeypatch.setenv("GAN_EVALUATOR_DIR", str(tmp_path / "store"))
    args = ["train-evaluator", "--data", str(mnist_small), "--epochs", "1", "--threads", "1", "--no-progress"]
    assert main(args) == 0  # no --out: into the store, where evaluation finds it by the data's fingerprint
    out = capsys.readouterr().out
    assert "test accuracy" in out and "on 199 images of the held-out 10% of the training split" in out
    from gan_core.datasets import load_dataset

    fp = load_dataset(mnist_small).fingerprint()
    ev = bound_evaluator(fp)
    assert ev.id == f"mnist2k-cnn-{fp[:8]}" and f"bound to mnist2k ({fp})" in out
    assert (
        ev.card.dataset.test["kind"] == "holdout"
        and ev.card.test_n == 199
        and ev.card.training["train_n"] == 1801
    )


def test_unlabelled_data_gets_a_self_supervised_rotation_evaluator(mnist_train, tmp_path):
    from training.evaluation.store import train_for_data

    np.savez(tmp_path / "flat.npz", images=mnist_train.images[:660, 0])  # no labels
    card, stem = train_for_data(tmp_path / "flat.npz", out=tmp_path / "ev", epochs=8, width=8, threads=1)
    ev = load_evaluator(stem)
    assert ev.card.task == "rotation" and not ev.measures_classes
    assert ev.card.class_names == ["rot0", "rot90", "rot180", "rot270"] and ev.card.dataset.labelled is False
    assert ev.card.dataset.classes == ["unlabeled"] and ev.card.test_n == 66  # held out: no test split
    assert ev.card.test_accuracy > 0.6  # digits have an upright: chance is 0.25
