"""`gan evaluate` on a repair model: PSNR / SSIM / FID / labels kept for the model and each classical
baseline on the same damaged test images, the baselines being what they say (bicubic, nearest, the
input itself, biharmonic inpainting, filters), and the grid damaged | baselines | GAN | truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan.cli import main as gan
from training.checkpoint import load_checkpoint
from training.corruption import parse
from training.evaluation.repair import baselines, damage, evaluate_repair, fidelity


def test_baselines_are_the_classical_methods():
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (3, 1, 28, 28), dtype=np.uint8)
    small, _ = damage(clean, parse("down:4"), 0)
    up = baselines(parse("down:4"), small, None)
    assert sorted(up) == ["bicubic", "nearest"] and up["bicubic"].shape == (3, 28, 28, 1)
    assert np.array_equal(up["nearest"], small.repeat(4, 1).repeat(4, 2))
    holed, mask = damage(clean, parse("mask:box"), 0)
    filled = baselines(parse("mask:box"), holed, mask)
    assert sorted(filled) == ["inpaint (biharmonic)", "input"]
    keep = mask == 0
    assert (
        np.abs(filled["inpaint (biharmonic)"][keep].astype(int) - holed[keep]).max() <= 1
    )  # known pixels kept
    noisy, _ = damage(clean, parse("noise:0.2+blur:1"), 0)
    assert sorted(baselines(parse("noise:0.2+blur:1"), noisy, None)) == [
        "gaussian filter",
        "input",
        "median filter",
    ]
    same = fidelity(clean.transpose(0, 2, 3, 1), clean.transpose(0, 2, 3, 1))
    assert same == {"psnr": 100.0, "ssim": 1.0}


@pytest.mark.parametrize("name,methods", [("mnist-sr4", {"gan", "nearest", "bicubic"}),
                                          ("mnist-inpaint", {"gan", "input", "inpaint (biharmonic)"})])  # fmt: skip
def test_gan_evaluate_reports_the_model_beside_its_baselines(name, methods, tiny_checkpoint, mnist_small,
                                                            mnist_small_evaluator, tmp_path, capsys):  # fmt: skip
    out = tmp_path / "report.json"
    ckpt = (
        tmp_path / "run" / Path(tiny_checkpoint(name)).name
    )  # a copy: the session's checkpoint keeps its card
    ckpt.parent.mkdir()
    shutil.copy(tiny_checkpoint(name), ckpt)
    args = [
        "evaluate",
        str(ckpt),
        "--data",
        str(mnist_small),
        "--n",
        "40",
        "--out",
        str(out),
    ]
    assert gan(args) == 0
    report = json.loads(out.read_text())
    assert set(report["methods"]) == methods and report["n"] == 40 and report["evaluator"] == "mnist2k-tiny"
    for m in report["methods"].values():
        assert (
            0 < m["psnr"] <= 100 and -1 <= m["ssim"] <= 1 and m["fid"] >= 0 and 0 <= m["class_accuracy"] <= 1
        )
    assert report["fid_floor"] > 0 and report["corruption"] == (
        "down:4" if name == "mnist-sr4" else "mask:box"
    )
    grid = Image.open(out.with_suffix(".png"))
    rows = len(methods - {"input"}) + 2  # damaged | baselines | GAN | truth (the damaged input shown once)
    assert grid.size[1] == 2 * (rows * 30 + 2)
    text = capsys.readouterr().out
    assert "bicubic" in text or "biharmonic" in text
    again, _ = evaluate_repair(ckpt, str(mnist_small), 40, 0)
    assert again["methods"] == report["methods"]  # seeded: the same figures every time
    card = load_checkpoint(ckpt).card  # the figures went into the card too
    gan_row = report["methods"]["gan"]
    assert (card.metrics["fid"], card.metrics["psnr"], card.metrics["class_accuracy"]) == (
        gan_row["fid"], gan_row["psnr"], gan_row["class_accuracy"]
    )  # fmt: skip
    assert set(card.metrics["baselines"]) == methods - {"gan"}
