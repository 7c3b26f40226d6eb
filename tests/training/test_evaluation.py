"""Calibration of the metrics on real MNIST, `gan evaluate` on every target kind, quick eval in training."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gan.cli import main
from gan_core.card import ModelCard
from training.evaluation import (
    QuickEval,
    attach_quick_eval,
    evaluate_samples,
    evaluate_target,
    real_reference,
    sample_target,
)
from training.evaluation.classifier import EvaluationError, load_evaluator

N = 1000
REPORT_KEYS = {
    "fid",
    "classifier_score",
    "density",
    "coverage",
    "precision",
    "recall",
    "modes",
    "n",
    "evaluator",
    "target",
}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GAN_EVAL_CACHE", str(tmp_path_factory.getbasetemp() / "eval-cache"))


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    from gan_core.datasets import load_dataset

    return load_dataset(mnist_dir, "test")


def _npz(path: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def calibration(mnist_train, tmp_path_factory):
    """Reports for real train digits, blurred digits, uniform noise and a single class."""
    tmp = tmp_path_factory.mktemp("calib")
    x = mnist_train.images[:N, 0]
    blurred = np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(1.5))) for im in x])
    noise = np.random.default_rng(0).integers(0, 256, size=(N, 28, 28), dtype=np.uint8)
    ones = mnist_train.images[mnist_train.labels == 1][:N, 0]
    sets = {
        "real": (x, mnist_train.labels[:N]),
        "blurred": (blurred, None),
        "noise": (noise, None),
        "ones": (ones, None),
    }
    return {k: evaluate_target(_npz(tmp / f"{k}.npz", *v), n=N) for k, v in sets.items()}


def test_real_vs_real_is_near_the_floor_and_covers_all_modes(calibration):
    r = calibration["real"]
    assert REPORT_KEYS <= set(r) and r["evaluator"] == "mnist-cnn-v1" and r["n"] == N
    assert r["reference"]["split"] == "test" and r["reference"]["n"] == N
    # another train subset (the floor) vs this one: same scale; at n=1000 FID carries a large bias
    assert r["fid"] < 3 * r["fid_floor"] and r["fid_floor"] < 0.02 * calibration["noise"]["fid"]
    assert r["modes"]["covered"] == 10 and r["modes"]["kl_to_data"] < 0.02
    assert r["coverage"] > 0.85 and r["precision"] > 0.85 and r["recall"] > 0.85
    assert r["classifier_score"] > 9.0
    assert r["class_accuracy"] > 0.98  # the npz holds labels


def test_degraded_sets_rank_after_real(calibration):
    real, blurred, noise = calibration["real"], calibration["blurred"], calibration["noise"]
    assert noise["fid"] > 100 * real["fid_floor"] and blurred["fid"] > 20 * real["fid_floor"]
    assert real["fid"] < blurred["fid"] < noise["fid"]
    assert noise["coverage"] < 0.05 and noise["density"] < 0.05
    assert real["coverage"] > blurred["coverage"] > noise["coverage"]
    assert "class_accuracy" not in noise  # no labels in that npz


def test_single_class_set_is_one_mode_with_low_coverage(calibration):
    ones = calibration["ones"]
    assert ones["modes"]["covered"] == 1 and ones["modes"]["shares"][1] > 0.97
    assert ones["coverage"] < 0.25 and ones["recall"] < 0.25
    assert ones["modes"]["kl_to_data"] > 1.5
    assert ones["classifier_score"] < 1.2


def test_reference_is_cached_on_disk_and_reused(mnist_test, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_EVAL_CACHE", str(tmp_path))
    ev = load_evaluator()
    a = real_reference(ev, mnist_test, n=300, seed=3)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and "mnist-cnn-v1" in files[0].name
    from training import evaluation

    evaluation.reference._REFS.clear()
    b = real_reference(ev, mnist_test, n=300, seed=3)  # read back from disk
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.radii, b.radii)


def test_evaluate_is_reproducible(mnist_small):
    a = evaluate_target(mnist_small, n=200, seed=5)
    b = evaluate_target(mnist_small, n=200, seed=5)
    for key in ("fid", "precision", "recall", "density", "coverage", "classifier_score"):
        assert a[key] == b[key]


def test_cli_npz_writes_report_and_grid(mnist_small, tmp_path, capsys):
    out = tmp_path / "r" / "report.json"
    assert main(["evaluate", str(mnist_small), "--n", "300", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert REPORT_KEYS <= set(report) and report["kind"] == "npz" and report["n"] == 300
    with Image.open(out.with_suffix(".png")) as im:
        assert im.size == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))
    assert "fid " in capsys.readouterr().out


def test_cli_image_folder(mnist_train, tmp_path, capsys):
    for i in range(60):
        d = tmp_path / "imgs" / str(int(mnist_train.labels[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mnist_train.images[i, 0]).save(d / f"{i}.png")
    assert main(["evaluate", str(tmp_path / "imgs"), "--n", "60", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "dataset" and report["n"] == 60 and report["reference"]["n"] == 60
    assert report["class_accuracy"] > 0.95  # class subfolders named 0..9 give the digit labels
    assert report["fid"] > 0 and report["modes"]["covered"] == 10


def test_cli_missing_target_is_one_line_error(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope.onnx")]) == 2
    assert (
        capsys.readouterr().err == f"gan evaluate: error: {tmp_path / 'nope.onnx'}: no such file or folder\n"
    )


def test_cli_rejects_bad_n_and_wrong_image_shape(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--n", "3"]) == 2
    assert "--n must be >= 6" in capsys.readouterr().err
    path = _npz(tmp_path / "big.npz", np.zeros((10, 32, 32), np.uint8))
    assert main(["evaluate", str(path), "--n", "10"]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "image shape (1, 32, 32) (C, H, W) does not match evaluator 'mnist-cnn-v1'" in err
    )


def _tiny_run(ds, out: Path, conditional=True, **kw):
    from training.config import preset
    from training.trainer import Trainer

    cfg = preset("mnist-cdcgan", out=str(out), steps=2, batch_size=16, conditional=conditional,
                 arch_params={"g_width": 8, "d_width": 8}, sample_every=1000, ckpt_every=1000, **kw)  # fmt: skip
    return Trainer(cfg, ds, progress=False)


@pytest.fixture(scope="module")
def small_ds(mnist_small):
    from gan_core.datasets import load_dataset

    return load_dataset(mnist_small)


def test_cli_checkpoint_writes_metrics_into_card(small_ds, mnist_small_evaluator, tmp_path, capsys):
    trainer = _tiny_run(small_ds, tmp_path / "run")
    ckpt = trainer.train().checkpoint
    assert main(["evaluate", str(tmp_path / "run"), "--n", "200", "--out", str(tmp_path / "eval.json")]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert (
        report["kind"] == "checkpoint"
        and report["target"] == str(ckpt)
        and 0 <= report["class_accuracy"] <= 1
    )
    assert report["model"] == {"name": "mnist-cdcgan", "steps": 2, "conditional": True}
    from training.checkpoint import load_checkpoint

    # measured against the data it was trained on (2k digits: a held-out 10%) with that data's evaluator
    assert report["evaluator"] == "mnist2k-tiny" and report["evaluator_data"]["matches_reference"]
    assert report["reference"]["test_split"] == "holdout" and report["reference"]["n"] == 199
    ck = load_checkpoint(ckpt)  # still a valid checkpoint, weights untouched
    assert ck.card.metrics["fid"] == report["fid"] and ck.card.metrics["evaluator"] == "mnist2k-tiny"
    assert (
        ck.card.metrics["source"] == "gan evaluate"
        and ck.card.metrics["modes_covered"] == report["modes"]["covered"]
    )
    for k, v in trainer.inference_generator().state_dict().items():
        assert (ck.state("g_ema")[k] == v).all()
    card = ModelCard.from_json((tmp_path / "run" / "card.json").read_text())
    assert card.metrics == ck.card.metrics
    # same latents, same generator -> same samples
    a, b = sample_target(ckpt, 50, seed=1), sample_target(ckpt, 50, seed=1)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, np.arange(50) % 10)


def test_quick_eval_logs_and_sets_last_metrics(small_ds, mnist_small_evaluator, tmp_path):
    trainer = _tiny_run(small_ds, tmp_path / "run", eval_every=1, eval_n=200)
    qe = attach_quick_eval(trainer)
    assert isinstance(qe, QuickEval) and trainer.quick_eval is qe
    trainer.train()
    evals = [
        json.loads(ln)
        for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
        if '"eval"' in ln
    ]
    assert [e["step"] for e in evals] == [1, 2]
    m = trainer.last_metrics
    assert (
        m == evals[-1]["eval"]
        and m["n"] == 200
        and m["evaluator"] == "mnist2k-tiny"
        and "class_accuracy" in m
    )
    from training.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "run").card.metrics == m


def test_quick_eval_skips_data_without_evaluator(tmp_path, capsys):
    from gan_core.datasets import ImageDataset

    ds = ImageDataset(np.zeros((64, 1, 32, 32), np.uint8), np.arange(64) % 3, ["a", "b", "c"], "x", "x")
    trainer = _tiny_run(ds, tmp_path / "run", eval_every=1)
    assert attach_quick_eval(trainer) is None and trainer.quick_eval is None
    assert capsys.readouterr().err == (
        f"note: quick evaluation off: no evaluator is bound to x (fingerprint {ds.fingerprint()}); "
        "--evaluator auto trains one first, or run `gan train-evaluator --data x`\n"
    )


def test_quick_eval_never_uses_an_evaluator_of_other_data(mnist_train, tmp_path, capsys):
    """Same shape and class count as MNIST, other images (a clothing set, say): never MNIST's evaluator."""
    from gan_core.datasets import ImageDataset

    other = ImageDataset(
        255 - mnist_train.images[:300], mnist_train.labels[:300], mnist_train.class_names, "fashion", "f"
    )
    trainer = _tiny_run(other, tmp_path / "run", eval_every=1)
    assert (
        attach_quick_eval(trainer) is None and "no evaluator is bound to fashion" in capsys.readouterr().err
    )
    with pytest.raises(EvaluationError) as e:
        attach_quick_eval(trainer, "mnist")
    assert str(e.value) == (
        f"--evaluator mnist: mnist-cnn-v1 is bound to mnist (d18cfd466eb143ac), not to this run's data fashion "
        f"({other.fingerprint()}); quick evaluation only uses the evaluator of the run's own data"
    )
    assert (
        attach_quick_eval(trainer, "off") is None
        and capsys.readouterr().err == "note: quick evaluation off (--evaluator off)\n"
    )


def test_an_explicit_evaluator_of_other_data_is_named_in_the_report(small_ds, tmp_path, capsys):
    ckpt = _tiny_run(small_ds, tmp_path / "run").train().checkpoint
    assert main(["evaluate", str(ckpt), "--n", "100", "--evaluator", "mnist", "--json", "--no-card"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["evaluator"] == "mnist-cnn-v1"
    assert report["evaluator_data"] == {
        "name": "mnist",
        "fingerprint": "d18cfd466eb143ac",
        "matches_reference": False,
    }
    assert main(["evaluate", str(ckpt), "--n", "100", "--evaluator", "mnist", "--no-card"]) == 0
    assert "NOTE: evaluator bound to other data (mnist, d18cfd466eb143ac)" in capsys.readouterr().out


def test_without_a_bound_evaluator_evaluate_says_how_to_get_one(tmp_path, capsys):
    from gan_core.demo_data import write_demo_data

    write_demo_data(tmp_path / "demo", size=28, n_train=40, n_test=20, format="npz")
    out = tmp_path / "s.npz"
    np.savez(out, images=np.zeros((20, 28, 28, 3), np.uint8))
    assert main(["evaluate", str(out), "--data", str(tmp_path / "demo"), "--n", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gan evaluate: error: {tmp_path / 'demo'}: no evaluator is bound to this data")
    assert err.endswith(
        f"train one with `gan train-evaluator --data {tmp_path / 'demo'}` or pass --evaluator NAME\n"
    )


def test_quick_eval_of_a_growing_generator_is_logged_with_a_caveat_and_raises_no_alarm(
    small_ds, mnist_small_evaluator, tmp_path, capsys
):
    from training.config import preset
    from training.trainer import Trainer

    # 4 -> 8 -> 16 -> 32 px, growth_at: steps 0..7 at (stage, alpha) (0, 1), (1, 0), (1, .5), (1, 1),
    # (2, 0), (2, 1), (3, 0), (3, 1)
    cfg = preset("mnist-progan", out=str(tmp_path / "run"), steps=8, batch_size=8, latent_dim=8,
                 arch_params={"g_width": 4, "g_max_width": 8, "d_width": 4, "d_max_width": 8},
                 family_params={"stable_steps": [1, 1, 1], "fade_steps": [2, 1, 1]}, eval_every=1, eval_n=200,
                 sample_every=1000, ckpt_every=1000, threads=1)  # fmt: skip
    trainer = Trainer(cfg, small_ds, progress=False)
    qe = attach_quick_eval(trainer)
    trainer.train()
    evals = [json.loads(ln)["eval"] for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"eval"' in ln]  # fmt: skip
    assert [e.get("caveat") for e in evals] == [  # the eval after step k: the state step k - 1 trained in
        "still growing: at 4 px, final 32 px",
        "still growing: fading in 8 px (alpha 0.00), final 32 px",
        "still growing: fading in 8 px (alpha 0.50), final 32 px",
        "still growing: at 8 px, final 32 px",
        "still growing: fading in 16 px (alpha 0.00), final 32 px",
        "still growing: at 16 px, final 32 px",
        "still growing: fading in 32 px (alpha 0.00), final 32 px",
        None,
    ]
    assert all("fid" in e for e in evals)  # measured and logged all the same
    # a few steps of a tiny G: noise, which the checks would flag as soon as they see a "best" to fall from
    # set by the final eval only
    assert set(qe.best) == {"modes_covered", "coverage", "class_accuracy", "fid", "fid_step"}
    assert (qe.best["fid"], qe.best["fid_step"]) == (evals[7]["fid"], 8)
    assert qe.previous == {"fid": evals[7]["fid"], "step": 8}
    assert (
        qe.best["coverage"] == evals[7]["coverage"] and qe.best["modes_covered"] == evals[7]["modes_covered"]
    )
    captured = capsys.readouterr()
    err = captured.err
    assert (
        "note: step 1: quick evaluation still growing: at 4 px, final 32 px; collapse checks held meanwhile"
        in err
    )
    assert err.count("collapse checks held meanwhile") == 7
    assert not any(f"WARNING: step {k}:" in captured.out for k in range(1, 8))


def test_caveated_evaluations_raise_no_collapse_warning_and_set_no_best():
    qe = QuickEval(load_evaluator(), 100)
    collapsed = {
        "modes_covered": 10,
        "coverage": 0.08,
        "class_accuracy": 1.0,
        "precision": 0.99,
        "recall": 0.0,
    }
    growing = {**collapsed, "caveat": "still growing: fading in 32 px (alpha 0.50), final 32 px"}
    assert qe.collapse_warnings(growing) == []
    assert qe.best == {}
    assert len(qe.collapse_warnings(collapsed)) == 1  # the same numbers at the final size do warn
    assert qe.best["coverage"] == 0.08


def test_collapse_warnings():
    qe = QuickEval(load_evaluator(), 100)
    base = {"modes_covered": 10, "coverage": 0.6, "class_accuracy": 0.9}
    assert qe.collapse_warnings(base) == []
    msgs = qe.collapse_warnings({"modes_covered": 7, "coverage": 0.2, "class_accuracy": 0.5})
    assert msgs == [
        "possible mode collapse: modes covered fell to 7 (best 10)",
        "possible mode collapse: coverage fell to 0.200 (best 0.600)",
        "class accuracy fell to 0.500 (best 0.900)",
    ]
    assert qe.collapse_warnings({"modes_covered": 10, "coverage": 0.59, "class_accuracy": 0.88}) == []


def test_collapse_from_the_start_is_flagged():
    # What a z-ignoring conditional generator measured here: perfect classes, no diversity.
    qe = QuickEval(load_evaluator(), 100)
    r = {"modes_covered": 10, "coverage": 0.08, "class_accuracy": 1.0, "precision": 0.99, "recall": 0.0}
    assert qe.collapse_warnings(r) == [
        "mode collapse: samples look real (precision 0.99) but cover almost no real data (recall 0.00); "
        "the generator may be ignoring z (try diversity_weight)"
    ]
    early_noise = {
        "modes_covered": 1,
        "coverage": 0.0,
        "class_accuracy": 0.1,
        "precision": 0.0,
        "recall": 0.0,
    }
    assert QuickEval(load_evaluator(), 100).collapse_warnings(early_noise) == []


def test_collapse_before_learning_is_flagged_once_fid_stops_falling():
    # The quick evaluations of `gan train --preset collapse-demo` (docs/families-log.md, session 18).
    stuck = [(1000, 2030.0, 0.01), (2000, 2038.1, 0.0085), (3000, 2040.8, 0.008)]
    qe = QuickEval(load_evaluator(), 100)
    msgs = [
        qe.collapse_warnings({"fid": f, "precision": p, "recall": 0.0, "modes_covered": 3}, s)
        for s, f, p in stuck
    ]
    assert msgs[0] == [] and msgs[2] == [
        "mode collapse: nothing realistic (precision 0.01, recall 0.00) and FID not falling (2038.1 -> 2040.8); "
        "the generator collapsed before it learned (try loss ns or diversity_weight)"
    ]
    assert len(msgs[1]) == 1
    # A healthy slow start is as unrealistic, but its FID falls; evaluations too close together never warn.
    qe = QuickEval(load_evaluator(), 100)
    falling = [(1000, 850.2, 0.02), (2000, 528.5, 0.03)]
    assert [qe.collapse_warnings({"fid": f, "precision": p, "recall": 0.0}, s) for s, f, p in falling] == [
        [],
        [],
    ]
    qe = QuickEval(load_evaluator(), 100)
    assert [qe.collapse_warnings({"fid": 300.0, "precision": 0.0, "recall": 0.0}, s) for s in (2, 4)] == [
        [],
        [],
    ]


def test_divergence_is_flagged_once_per_excursion():
    # The quick FIDs of WGAN (clipping) at RMSprop 5e-4 (docs/families-log.md, session 26): its critic
    # stopped telling real from fake at step 5,000 and FID climbed from there.
    fids = [(1000, 85.7), (2000, 33.0), (3000, 26.1), (4000, 23.1), (5000, 21.3), (6000, 23.7), (7000, 29.2)]
    fids += [(8000, 33.4), (9000, 36.7), (10000, 41.3)]
    qe = QuickEval(load_evaluator(), 100)
    warned = {s: m for s, f in fids if (m := qe.collapse_warnings({"fid": f}, s))}
    assert warned == {
        8000: [
            "instability: FID rose to 33.4, 1.6x its best (21.3 at step 5,000); the run is moving away from its "
            "best samples (try lower learning rates or lr_decay_from)"
        ]
    }
    assert qe.collapse_warnings({"fid": 30.0}, 11000) == []  # back under 1.5x the best
    assert len(qe.collapse_warnings({"fid": 40.0}, 12000)) == 1  # a second excursion warns again
    assert qe.collapse_warnings({"fid": 20.0}, 13000) == []  # a new best
    assert "30.0x its best (20.0 at step 13,000)" in qe.collapse_warnings({"fid": 600.0}, 14000)[0]


def test_classification_accuracy_score(mnist_small, tmp_path, monkeypatch):
    from training import evaluation

    monkeypatch.setattr(
        evaluation.report, "CAS_MIN_STEPS", 40
    )  # fast: a rough classifier is enough to tell apart
    real = evaluate_target(mnist_small, n=300, cas=True)
    assert real["cas"]["labels"] == "given" and real["cas"]["test_n"] == 300 and real["cas"]["accuracy"] > 0.6
    noise = np.random.default_rng(1).integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    fake = evaluate_target(_npz(tmp_path / "noise.npz", noise), n=300, cas=True)
    assert fake["cas"]["labels"] == "evaluator" and fake["cas"]["accuracy"] < 0.35


def test_evaluate_samples_rejects_tiny_n(mnist_small):
    with pytest.raises(EvaluationError, match="n must be > 5"):
        evaluate_samples(sample_target(mnist_small, 5), n_ref=100)


def test_cli_onnx_matches_checkpoint_and_writes_card(small_ds, mnist_small_evaluator, tmp_path, capsys):
    from export.onnx_export import export_checkpoint
    from gan_core.card_files import read_card

    ckpt = _tiny_run(small_ds, tmp_path / "run").train().checkpoint
    onnx_path = tmp_path / "g.onnx"
    export_checkpoint(ckpt, onnx_path, threads=1)
    a, b = sample_target(ckpt, 100, seed=2), sample_target(onnx_path, 100, seed=2)
    assert b.kind == "onnx" and b.images.shape == (100, 1, 28, 28) and b.images.dtype == np.uint8
    np.testing.assert_array_equal(a.labels, b.labels)
    assert np.abs(a.images.astype(int) - b.images.astype(int)).max() <= 1  # same latents, rounding only
    assert main(["evaluate", str(onnx_path), "--n", "100", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{") :])
    card = read_card(onnx_path)  # still opens in the service runtime, card valid
    assert report["kind"] == "onnx" and card.metrics["fid"] == report["fid"] and card.metrics["n"] == 100
    assert card.export is not None and card.name == "mnist-cdcgan"


@pytest.fixture(scope="module")
def unlabelled_digits(mnist_train, tmp_path_factory):
    """660 digits without labels (.npz) and a tiny rotation evaluator bound to them."""
    from training.evaluation.store import train_for_data

    path = tmp_path_factory.mktemp("flat") / "digits.npz"
    np.savez(path, images=mnist_train.images[:660, 0])
    _, stem = train_for_data(path, out=path.with_name("rot"), epochs=1, width=8, threads=1)
    return path, stem


def test_a_rotation_evaluator_reports_which_metrics_need_labels(unlabelled_digits, capsys):
    path, stem = unlabelled_digits
    assert (
        main(["evaluate", str(path), "--data", str(path), "--n", "60", "--evaluator", str(stem), "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["needs_labels"] == ["classifier_score", "modes", "class_accuracy", "cas"]
    assert not {"classifier_score", "modes", "class_accuracy"} & set(report)
    assert (
        report["fid"] >= 0 and 0 <= report["coverage"] <= 1 and report["evaluator_data"]["matches_reference"]
    )
    assert main(["evaluate", str(path), "--data", str(path), "--n", "60", "--evaluator", str(stem)]) == 0
    assert (
        "not measured (classifier_score, modes, class_accuracy, cas: need labelled data)"
        in capsys.readouterr().out
    )


def test_quick_eval_on_unlabelled_data_trains_a_rotation_evaluator_first(unlabelled_digits, tmp_path, capsys):
    from gan_core.datasets import load_dataset

    path, _ = unlabelled_digits
    ds = load_dataset(path)
    trainer = _tiny_run(ds, tmp_path / "run", conditional=False, eval_every=1, eval_n=100, data=str(path),
                        evaluator="auto", evaluator_epochs=1)  # fmt: skip
    qe = attach_quick_eval(
        trainer
    )  # the module's rotation evaluator is not in the store: a new one is trained
    assert qe.ev.card.task == "rotation" and qe.ev.card.dataset.fingerprint == ds.fingerprint()
    assert "note: training an evaluator for digits first (--evaluator auto)" in capsys.readouterr().err
    trainer.train()
    m = trainer.last_metrics
    assert (
        m["evaluator"] == qe.ev.id
        and m["fid"] >= 0
        and "modes_covered" not in m
        and "classifier_score" not in m
    )
