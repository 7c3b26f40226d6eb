"""Crash paths of a training run: a full disk, a torn metrics line, a corrupt newest checkpoint, and
bit-identical resume with quick evaluation on."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

from gan_core.datasets import load_dataset
from tests.conftest import REPO, TINY_ARCH
from training.checkpoint import list_checkpoints, load_checkpoint
from training.config import TrainConfig
from training.evaluation import attach_quick_eval
from training.runlog import RunLogError, read_metrics, read_records
from training.trainer import Trainer


def _cfg(out, **kw):
    base = dict(name="tiny", arch="dcgan", arch_params={"g_width": 8, "d_width": 8}, conditional=True, latent_dim=8,
                batch_size=16, steps=6, sample_every=100, ckpt_every=3, log_every=2, out=str(out), threads=1)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def small(mnist_small):
    return load_dataset(mnist_small)


def _weights(path):
    return {k: v for k, v in load_checkpoint(path).tensors.items() if not k.startswith("rng.")}


def _same(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []


def test_resume_with_quick_eval_is_bit_identical(tmp_path, small, mnist_small_evaluator):
    """wgan-gp draws its mixing weights from torch's global RNG; the evaluator must not."""

    def run(out, steps, resume=False):
        t = Trainer(
            _cfg(out, loss="wgan-gp", steps=steps, eval_every=2, eval_n=100),
            small,
            resume=resume,
            progress=False,
        )
        assert attach_quick_eval(t) is not None
        return t.train()

    straight = run(tmp_path / "a", 6)
    run(tmp_path / "b", 3)
    resumed = run(tmp_path / "b", 6, resume=True)
    assert straight.step == resumed.step == 6
    _same(straight.checkpoint, resumed.checkpoint)
    evals = [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "eval" in r]
    assert evals == [2, 4, 6]


def test_a_torn_metrics_line_is_skipped_and_trimmed_on_resume(tmp_path, small):
    Trainer(_cfg(tmp_path, steps=3), small, progress=False).train()
    log = tmp_path / "metrics.jsonl"
    with open(log, "a") as f:
        f.write('{"step": 4, "d_loss": 0.6')  # killed while logging
    assert [r["step"] for r in read_metrics(log)] == [2, 3]
    Trainer(_cfg(tmp_path, steps=6), small, resume=True, progress=False).train()
    records, torn = read_records(log)
    assert [r["step"] for r in records] == [2, 3, 4, 6] and not torn  # 3: the closing record of run 1
    assert all(json.loads(line) for line in log.read_text().splitlines())
    log.write_text('{"step": 2}\n{"step": \n{"step": 4}\n')
    with pytest.raises(
        RunLogError, match=r"metrics.jsonl: line 2 is not JSON .*only a torn last line is skipped"
    ):
        read_metrics(log)


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path, small, capsys):
    straight = Trainer(_cfg(tmp_path / "a", steps=6), small, progress=False).train()
    Trainer(_cfg(tmp_path / "b", steps=6), small, progress=False).train()
    newest = tmp_path / "b" / "ckpt-0000006.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated by a bad copy or disk
    resumed = Trainer(_cfg(tmp_path / "b", steps=6), small, resume=True, progress=False)
    err = capsys.readouterr().err
    assert (
        f"--resume: skipping {newest}: not a readable checkpoint" in err
        and "kept as ckpt-0000006.safetensors.corrupt" in err
    )
    assert resumed.step == 3 and (tmp_path / "b" / "ckpt-0000006.safetensors.corrupt").exists()
    _same(straight.checkpoint, resumed.train().checkpoint)  # steps 4..6 again, the same bytes


def train_args(out, data, steps, *extra) -> list[str]:
    return ["train", "--preset", "mnist-cdcgan", "--data", str(data), "--out", str(out), "--steps", str(steps),
            "--batch-size", "16", "--eval-every", "0", "--threads", "1", "--no-progress",
            "--set", "arch_params=" + json.dumps(TINY_ARCH["mnist-cdcgan"]), *extra]  # fmt: skip


def test_a_full_disk_is_one_line_and_the_last_checkpoint_stays(tmp_path, mnist_small):
    from gan.cli import main

    assert main(train_args(tmp_path, mnist_small, 2)) == 0
    (good,) = list_checkpoints(tmp_path)
    before = good.read_bytes()
    assert json.loads((tmp_path / "card.json").read_text())["dataset"]["source"] == "mnist2k.npz"  # no path

    def full_disk():  # files may not grow past half a checkpoint: write() fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, len(before) // 2))

    cmd = [sys.executable, "-m", "gan", *train_args(tmp_path, mnist_small, 4, "--resume")]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    full = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, preexec_fn=full_disk
    )
    lines = full.stderr.strip().splitlines()
    assert full.returncode == 2 and len(lines) == 1, full.stderr
    assert lines[0] == (
        f"gan train: error: {tmp_path / 'ckpt-0000004.safetensors'}: cannot write (File too large); "
        f"any earlier file there is kept; the last good checkpoint is {good}"
    )
    assert list_checkpoints(tmp_path) == [good] and good.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
