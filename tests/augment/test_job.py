"""`gan augment` end to end with a tiny exported generator: formats, determinism, shards, resume, errors."""

from __future__ import annotations

import errno
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from augment import writers
from augment.errors import AugmentError
from augment.job import run_job
from augment.merge import merge_outputs
from augment.state import done_chunks
from gan.cli import main as gan
from gan_core.datasets import load_dataset, load_npz
from gan_core.latents import latents
from gan_core.runtime import open_generator
from tests.conftest import zl_feeds

REPO = Path(__file__).resolve().parents[2]


def visible(out: Path) -> dict[str, bytes]:
    """Every file of the output a user sees (the hidden .augment state excluded) -> its bytes."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".augment" not in p.relative_to(out).parts
    }


def direct(model: Path, seed: int, indices, labels) -> np.ndarray:
    sess = open_generator(model, threads=1)
    return sess.run(
        zl_feeds(
            latents(seed, list(indices), sess.card.latent_dim),
            np.asarray(labels) if sess.card.conditional else None,
        )
    )


def test_folder_output_is_the_generator_image_by_image(cond_onnx, tmp_path):
    res = run_job(cond_onnx, tmp_path / "o", per_class=3, classes="1,4", seed=5, chunk_size=4, batch_size=2)
    assert res.complete and res.generated == 6
    ds = load_dataset(tmp_path / "o")  # OUT/train/<class>/*.png: the image-folder layout
    assert ds.class_names == ["1", "4"] and ds.images.shape == (6, 1, 28, 28)
    manifest = [json.loads(ln) for ln in (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()]
    job = json.loads((tmp_path / "o" / "job.json").read_text())
    assert [m["file"] for m in manifest] == [
        f"train/{c}/{i:08d}.png" for i, c in zip(range(6), "141414", strict=True)
    ]
    assert {m["job"] for m in manifest} == {job["config_hash"]} and {m["seed"] for m in manifest} == {5}
    assert manifest[0]["model_sha256"] == job["config"]["model_sha256"] == res.config.model_sha256
    want = direct(cond_onnx, 5, range(6), [1, 4, 1, 4, 1, 4])
    from PIL import Image

    for k, m in enumerate(manifest):
        assert m["seed_index"] == k and m["label"] == [1, 4][k % 2]
        assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / m["file"]))[..., None], want[k])


def test_npz_and_idx_hold_the_same_images_in_index_order(cond_onnx, tmp_path):
    for fmt in ("npz", "idx", "folder"):
        run_job(cond_onnx, tmp_path / fmt, per_class=2, seed=3, format=fmt, chunk_size=7, batch_size=5)
    want = direct(cond_onnx, 3, range(20), np.arange(20) % 10)[..., 0]
    with np.load(tmp_path / "npz" / "train.npz") as z:
        assert z["images"].shape == (20, 28, 28) and np.array_equal(z["images"], want)
        assert z["labels"].tolist() == [i % 10 for i in range(20)] and z["indices"].tolist() == list(
            range(20)
        )
    npz = load_npz(tmp_path / "npz" / "train.npz")
    idx = load_dataset(tmp_path / "idx")  # train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz
    assert np.array_equal(idx.images[:, 0], want) and np.array_equal(npz.images, idx.images)
    assert np.array_equal(npz.labels, idx.labels)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        raw = (tmp_path / "idx" / name).read_bytes()
        assert raw[4:8] == b"\0\0\0\0"  # gzip mtime 0: same bytes on every run
        assert len(gzip.decompress(raw)) in (16 + 20 * 784, 8 + 20)
    lines = (tmp_path / "npz" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(ln)["index"] for ln in lines] == list(range(20))
    assert not (tmp_path / "npz" / ".augment" / "chunks").exists() or not any(
        (tmp_path / "npz" / ".augment" / "chunks").iterdir()
    )


@pytest.mark.parametrize("fmt", ["folder", "npz", "idx"])
def test_same_bytes_whatever_the_batch_size_or_sharding(cond_onnx, tmp_path, fmt):
    job = dict(total=23, class_dist='{"2": 2, "5": 1, "9": 1}', seed=11, format=fmt, chunk_size=4)
    run_job(cond_onnx, tmp_path / "one", batch_size=3, **job)
    ref = visible(tmp_path / "one")
    assert len(ref) == (25 if fmt == "folder" else 3 if fmt == "npz" else 4)
    run_job(cond_onnx, tmp_path / "bs", batch_size=64, workers=1, **job)
    assert visible(tmp_path / "bs") == ref
    # two machines, own folders, then merge
    r0 = run_job(cond_onnx, tmp_path / "s0", shard=0, num_shards=2, **job)
    r1 = run_job(cond_onnx, tmp_path / "s1", shard=1, num_shards=2, batch_size=1, **job)
    assert not r0.complete and not r1.complete and r0.planned + r1.planned == 23
    merged = merge_outputs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "merged")
    assert merged.complete and visible(tmp_path / "merged") == ref
    # three shards writing into one shared folder: the last one to finish builds the dataset
    for s in (2, 0, 1):
        r = run_job(cond_onnx, tmp_path / "shared", shard=s, num_shards=3, **job)
    assert r.complete and visible(tmp_path / "shared") == ref


def test_merge_reports_missing_chunks_and_foreign_jobs(cond_onnx, tmp_path):
    run_job(cond_onnx, tmp_path / "s0", per_class=2, chunk_size=3, shard=0, num_shards=3)
    with pytest.raises(AugmentError) as e:
        merge_outputs([tmp_path / "s0"], tmp_path / "m")
    assert (
        str(e.value)
        == "merge: chunks 2-6 of 7 are in none of the folders (first missing images 6..8); run the shards that own them, then merge again"
    )
    run_job(cond_onnx, tmp_path / "other", per_class=2, chunk_size=3, seed=9, shard=1, num_shards=3)
    with pytest.raises(
        AugmentError, match=r"other: holds a different job than .*s0 \(seed: existing 0, now 9\)$"
    ):
        merge_outputs([tmp_path / "s0", tmp_path / "other"], tmp_path / "m")
    assert not (tmp_path / "m").exists()


def _augment_cmd(model, out, *extra) -> list[str]:
    return [
        "augment",
        "--model",
        str(model),
        "--out",
        str(out),
        "--per-class",
        "6",
        "--chunk-size",
        "8",
        "--batch-size",
        "5",
        "--seed",
        "2",
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize("fmt", ["folder", "npz"])
def test_killed_job_resumes_to_the_same_bytes(cond_onnx, tmp_path, fmt):
    assert gan(_augment_cmd(cond_onnx, tmp_path / "ref", "--format", fmt)) == 0
    env = {**os.environ, writers.KILL_AFTER_ENV: "27", "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gan.cli",
            *_augment_cmd(cond_onnx, tmp_path / "o", "--format", fmt, "--workers", "1"),
        ],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-500:]
    done = done_chunks(tmp_path / "o")  # a marker being written when the kill came is only a temp file
    assert 1 <= len(done) < 8 and not (tmp_path / "o" / "manifest.jsonl").exists()
    res = run_job(cond_onnx, tmp_path / "o", per_class=6, chunk_size=8, batch_size=7, seed=2, format=fmt)
    assert res.complete and res.generated == 60 - 8 * len(done)  # only the missing chunks were made
    assert visible(tmp_path / "o") == visible(tmp_path / "ref")
    again = run_job(cond_onnx, tmp_path / "o", per_class=6, chunk_size=8, seed=2, format=fmt)
    assert again.generated == 0 and again.final_files == []


def test_changed_config_on_an_existing_output_is_refused(cond_onnx, tmp_path, capsys):
    assert gan(_augment_cmd(cond_onnx, tmp_path / "o")) == 0
    assert gan(_augment_cmd(cond_onnx, tmp_path / "o", "--seed", "3", "--truncation", "1.5")) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"gan augment: error: out: {tmp_path / 'o'} holds a different job (seed: existing 2, now 3; truncation: existing null, now 1.5); use a new --out or the same settings"
    )


def test_disk_full_keeps_completed_chunks_and_a_rerun_finishes(cond_onnx, tmp_path, monkeypatch):
    job = dict(per_class=5, chunk_size=10, seed=4, workers=1)
    run_job(cond_onnx, tmp_path / "ref", **job)
    real, calls = writers.write_file_fast, []

    def full_after_23(path, data):
        calls.append(path)
        if len(calls) > 23:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(writers, "write_file_fast", full_after_23)
    with pytest.raises(AugmentError) as e:
        run_job(cond_onnx, tmp_path / "o", **job)
    assert (
        str(e.value)
        == f"{tmp_path / 'o'}: cannot write chunk 2 (disk full); completed chunks are kept, rerun the same command to resume"
    )
    assert len(list((tmp_path / "o" / ".augment" / "done").iterdir())) == 2
    monkeypatch.setattr(writers, "write_file_fast", real)
    res = run_job(cond_onnx, tmp_path / "o", **job)
    assert res.generated == 30 and visible(tmp_path / "o") == visible(tmp_path / "ref")


def test_cli_bad_inputs_fail_with_one_line(cond_onnx, uncond_onnx, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (
            _augment_cmd(cond_onnx, tmp_path / "a", "--classes", "3,11"),
            "classes: unknown class '11'; model 'mnist-cdcgan' has classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9",
        ),
        (
            ["augment", "--model", str(cond_onnx), "--out", str(tmp_path / "b"), "--per-class", "0"],
            "per_class: must be >= 1, got 0",
        ),
        (
            ["augment", "--model", str(cond_onnx), "--out", str(tmp_path / "b"), "--total", "-3"],
            "total: must be >= 1, got -3",
        ),
        (_augment_cmd(cond_onnx, tmp_path / "c", "--batch-size", "0"), "--batch-size must be >= 1, got 0"),
        (
            _augment_cmd(uncond_onnx, tmp_path / "d"),
            "model 'mnist-dcgan' is unconditional: its card has no classes to ask for; use --total N without --per-class, --classes or --class-dist",
        ),
        (
            _augment_cmd(cond_onnx, blocker / "sub"),
            f"out: cannot write to {blocker / 'sub'} (Not a directory)",
        ),
        (
            _augment_cmd(tmp_path / "missing.onnx", tmp_path / "e"),
            f"{tmp_path / 'missing.onnx'}: no such ONNX file",
        ),
        (
            _augment_cmd(cond_onnx, tmp_path / "f", "--shard", "2", "--num-shards", "2"),
            "shard: must be in 0..num_shards-1 with num_shards >= 1, got shard 2 of 2",
        ),
        (
            _augment_cmd(cond_onnx, tmp_path, "--seed", "0"),
            f"out: {tmp_path} is not empty and holds no job.json; give a new or empty folder",
        ),
    ]
    for argv, message in cases:
        assert gan(argv) == 2, argv
        assert capsys.readouterr().err.strip() == f"gan augment: error: {message}"
    assert gan(["augment-merge", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"gan augment-merge: error: {tmp_path / 'nope'}: no such folder"


def test_unconditional_total_and_merge_cli(uncond_onnx, tmp_path, capsys):
    base = [
        "augment",
        "--model",
        str(uncond_onnx),
        "--total",
        "9",
        "--chunk-size",
        "2",
        "--format",
        "npz",
        "--no-progress",
        "--num-shards",
        "2",
    ]
    for s in ("0", "1"):
        assert gan([*base, "--out", str(tmp_path / f"s{s}"), "--shard", s]) == 0
    assert "not complete yet" in capsys.readouterr().out
    assert (
        gan(["augment-merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m")]) == 0
    )
    ds = load_npz(tmp_path / "m" / "train.npz")
    assert ds.class_names == ["unlabeled"] and ds.labels.tolist() == [0] * 9
    assert np.array_equal(ds.images[:, 0], direct(uncond_onnx, 0, range(9), None)[..., 0])


def test_the_job_runs_without_torch(cond_onnx, tmp_path):
    """The serving container has no torch: `python -m augment` must not need it."""
    code = (
        "import sys, runpy; sys.modules['torch'] = None\n"  # any `import torch` now raises ImportError
        f"sys.argv = ['x', 'augment', '--model', {str(cond_onnx)!r}, '--out', {str(tmp_path / 'o')!r}, '--per-class', '2', '--format', 'idx', '--no-progress']\n"
        "try:\n    runpy.run_module('augment', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'torch' not in [m for m, v in sys.modules.items() if v is not None], 'torch was imported'\n"
        f"sys.argv = ['x', 'augment', '--model', {str(cond_onnx)!r}, '--out', {str(tmp_path / 'o')!r}, '--per-class', '0']\n"
        "runpy.run_module('augment', run_name='__main__')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        timeout=120,
        cwd=REPO,
    )
    assert (
        r.returncode == 2
        and r.stderr.decode().strip() == "python -m augment augment: error: per_class: must be >= 1, got 0"
    )
    assert len(load_dataset(tmp_path / "o")) == 20
