"""A colour image folder at 32 and 64 px, end to end through the `gan` command: demo data -> train
(evaluator trained first) -> export with parity -> serve (serving core, and a real `bentoml serve`
behind the HTTP augment backend) -> augment -> evaluate."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from gan.cli import main
from gan_core.datasets import load_dataset
from gan_core.latents import balanced_labels, latents
from gan_core.runtime import open_generator
from tests.conftest import zl_feeds

TINY = json.dumps({"g_width": 8, "d_width": 8})


@pytest.fixture(scope="module", params=[32, 64])
def colour_run(request, tmp_path_factory):
    """(size, demo data folder, run folder, exported .onnx) of a tiny conditional DCGAN trained 2 steps."""
    size = request.param
    tmp = tmp_path_factory.mktemp(f"colour{size}")
    data, run, onnx = tmp / "demo", tmp / "run", tmp / "models" / f"shapes{size}.onnx"
    assert (
        main(["make-demo-data", "--out", str(data), "--size", str(size), "--train", "200", "--test", "40"])
        == 0
    )
    args = ["train", "--preset", "cdcgan", "--data", str(data), "--out", str(run), "--steps", "2", "--batch-size", "16",
            "--set", f"arch_params={TINY}", "--eval-every", "2", "--evaluator", "auto", "--set", "evaluator_epochs=1",
            "--set", "eval_n=100", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert main(["export", str(run), "--out", str(onnx), "--threads", "1"]) == 0
    return size, data, run, onnx


def test_training_sizes_the_network_from_the_data_and_records_it(colour_run, capsys):
    size, data, run, _ = colour_run
    card = json.loads((run / "card.json").read_text())
    assert card["image_shape"] == [3, size, size] and card["num_classes"] == 10 and card["conditional"]
    assert card["latent_dim"] == (128 if size == 64 else 64)  # SIZE_RULES; widths came from --set
    assert (
        card["dataset"]["fingerprint"] == load_dataset(data).fingerprint()
        and card["dataset"]["name"] == "demo"
    )
    # the quick evaluation ran with an evaluator trained for this data first (--evaluator auto)
    evals = [
        json.loads(ln)["eval"] for ln in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in ln
    ]
    assert len(evals) == 1 and evals[0]["evaluator"] == f"demo-cnn-{card['dataset']['fingerprint'][:8]}"
    assert 0 <= evals[0]["class_accuracy"] <= 1 and evals[0]["n"] == 100
    with Image.open(run / "samples.png") as grid:
        assert grid.mode == "RGB" and grid.size == (2 * (10 * (size + 2) + 2),) * 2  # 10 classes x 10 latents


def test_export_is_the_phase_conv_graph_with_parity(colour_run):
    size, _, _, onnx = colour_run
    card = open_generator(onnx, threads=1).card
    assert card.export.exporter.endswith("+ convtranspose-as-phase-convs")  # 64 px: the 3-layer rewrite
    assert card.export.parity_max_abs_diff <= 1 and card.export.float_parity_max_abs_diff <= 1e-4
    images = open_generator(onnx, threads=1).run(
        zl_feeds(latents(1, range(3), card.latent_dim), np.arange(3))
    )
    assert images.shape == (3, size, size, 3) and images.dtype == np.uint8


def test_service_serves_colour_pngs_grids_and_npz(colour_run):
    """The serving core (what the HTTP app wraps; tests/service covers the HTTP layer itself)."""
    from service.core import ServingCore
    from service.schemas import GenerateRequest
    from service.settings import Settings

    size, _, _, onnx = colour_run
    core = ServingCore(Settings(models_dir=onnx.parent, ort_threads=1))

    def answer(fmt: str, **kw):
        return asyncio.run(
            core.encode(asyncio.run(core.generate(GenerateRequest(seed=5, format=fmt, **kw))), fmt)
        )

    try:
        doc = json.loads(answer("png", count=2, labels="star").body)
        npz = answer("npz", count=2, labels="star")
        grid = answer("grid", count=20)
    finally:
        core.close()
    pngs = [Image.open(io.BytesIO(base64.b64decode(im["png"]))) for im in doc["images"]]
    assert [(p.mode, p.size) for p in pngs] == [("RGB", (size, size))] * 2
    sess = open_generator(onnx, threads=1)
    star = sess.card.class_names.index("star")
    want = sess.run(zl_feeds(latents(5, range(2), sess.card.latent_dim), np.array([star] * 2)))
    assert np.array_equal(np.stack([np.asarray(p) for p in pngs]), want)
    assert np.array_equal(np.load(io.BytesIO(npz.body))["images"], want)
    with Image.open(io.BytesIO(grid.body)) as g:
        assert g.mode == "RGB" and g.size == (2 * (size + 2) + 2, 10 * (size + 2) + 2)  # 10 class rows of 2


def test_augment_writes_colour_folder_and_npz_and_refuses_idx(colour_run, tmp_path, capsys):
    size, _, _, onnx = colour_run
    for fmt in ("folder", "npz"):
        args = ["augment", "--model", str(onnx), "--per-class", "2", "--format", fmt, "--out", str(tmp_path / fmt),
                "--seed", "3", "--threads", "1", "--no-progress"]  # fmt: skip
        assert main(args) == 0
    folder, npz = load_dataset(tmp_path / "folder"), load_dataset(tmp_path / "npz")
    assert folder.images.shape == npz.images.shape == (20, 3, size, size)
    with np.load(tmp_path / "npz" / "train.npz") as z:
        assert z["images"].shape == (20, size, size, 3)
        sess = open_generator(onnx, threads=1)
        want = sess.run(zl_feeds(latents(3, range(20), sess.card.latent_dim), balanced_labels(range(20), 10)))
        assert np.array_equal(z["images"], want)
    capsys.readouterr()
    assert (
        main(
            [
                "augment",
                "--model",
                str(onnx),
                "--per-class",
                "1",
                "--format",
                "idx",
                "--out",
                str(tmp_path / "i"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == (
        "gan augment: error: format: idx holds single-channel images; model 'cdcgan' makes 3-channel images (use folder or npz)\n"
    )


def test_real_bentoml_serve_and_the_http_augment_backend_give_the_local_bytes(colour_run, tmp_path):
    from service.local_server import local_serve

    size, _, _, onnx = colour_run
    with local_serve(onnx.parent, threads=1) as url:
        args = ["augment", "--model", f"{url}#cdcgan", "--per-class", "1", "--format", "npz", "--seed", "3",
                "--out", str(tmp_path / "http"), "--no-progress"]  # fmt: skip
        assert main(args) == 0
    local = ["augment", "--model", str(onnx), "--per-class", "1", "--format", "npz", "--seed", "3",
             "--out", str(tmp_path / "local"), "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(local) == 0
    a, b = ((tmp_path / d / "train.npz").read_bytes() for d in ("http", "local"))
    assert a == b and np.load(tmp_path / "http" / "train.npz")["images"].shape == (10, size, size, 3)


def test_evaluate_uses_the_evaluator_of_the_models_own_data(colour_run, capsys):
    _, data, run, onnx = colour_run
    for target in (run, onnx):
        assert main(["evaluate", str(target), "--n", "40", "--json", "--no-card", "--threads", "1"]) == 0
        report = json.loads(capsys.readouterr().out)
        fp = load_dataset(data).fingerprint()
        assert report["evaluator"] == f"demo-cnn-{fp[:8]}" and report["evaluator_data"]["matches_reference"]
        assert report["reference"]["test_split"] == "split" and report["reference"]["n"] == 40
        assert report["fid"] > 0 and report["fid_floor"] > 0 and 0 <= report["class_accuracy"] <= 1
