"""The "does it help?" report: real subset vs real + synthetic vs synthetic only, tiny budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from augment.job import run_job
from gan.cli import main as gan
from gan_core.errors import UserError
from training.augment_report import run_report, stratified_subset


def test_stratified_subset_takes_the_share_of_every_class_seeded():
    labels = np.repeat(np.arange(3), [100, 50, 7])
    a = stratified_subset(labels, 0.1, seed=1)
    assert np.bincount(labels[a]).tolist() == [10, 5, 1]  # round(0.7) = 1, and never 0
    assert np.array_equal(a, stratified_subset(labels, 0.1, seed=1)) and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, stratified_subset(labels, 0.1, seed=2))


@pytest.mark.parametrize("fmt", ["npz", "folder"])
def test_report_trains_three_ways_and_writes_json(cond_onnx, mnist_dir, tmp_path, fmt):
    out = tmp_path / "syn"
    run_job(cond_onnx, out, per_class=3, classes="0,1,2,3,4,5,6,7,8,9", format=fmt)
    report = run_report(out, data=str(mnist_dir), steps=2, batch_size=64, test_n=100)
    runs = report["runs"]
    assert [runs[k]["train_n"] for k in ("real_subset", "real_plus_synthetic", "synthetic_only")] == [
        599,
        629,
        30,
    ]
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["steps"] >= 2 for r in runs.values())
    assert report["synthetic"]["class_counts"] == [3] * 10 and report["test"]["n"] == 100
    written = json.loads((out / "report.json").read_text())
    assert written["runs"] == runs


def test_report_refuses_unlabelled_or_unfinished_synthetic_data(
    cond_onnx, uncond_onnx, mnist_dir, tmp_path, capsys
):
    run_job(uncond_onnx, tmp_path / "u", total=5)
    with pytest.raises(
        UserError,
        match=r"u: images of an unconditional model carry no labels; the report needs a conditional generator \(or --label-from code:NAME\)$",
    ):
        run_report(tmp_path / "u", data=str(mnist_dir), steps=1)
    run_job(cond_onnx, tmp_path / "half", per_class=2, chunk_size=5, shard=0, num_shards=2)
    assert gan(["augment-report", str(tmp_path / "half"), "--data", str(mnist_dir), "--steps", "1"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"gan augment-report: error: {tmp_path / 'half'}: the augmentation job is not complete (no manifest.jsonl); rerun or merge it first"
    )
