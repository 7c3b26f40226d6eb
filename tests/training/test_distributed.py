import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, family_presets
from training.checkpoint import load_checkpoint
from training.distributed import DistEnv

# the self-conditioned preset races two clusterer trunks and retires one after the first step: the ranks'
# gradient averaging must accept parameters that stop getting gradients (DistEnv.average_gradients)
RACE = 'family_params={"cluster_steps": 2, "cluster_width": 4, "cluster_trunks": 2, "cluster_pick_after": 1}'


@pytest.mark.parametrize("preset, extra", [("mnist-cdcgan", []), ("mnist-sngan", ["--set", RACE])])
def test_torchrun_two_cpu_ranks_hold_identical_weights(tmp_path, mnist_small, preset, extra):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0",
           "-m", "gan.cli", "train", "--preset", preset, "--data", str(mnist_small), "--out", str(out),
           "--steps", "3", "--threads", "1", "--no-progress", "--set", 'arch_params={"g_width": 8, "d_width": 8}', *extra]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sums = json.loads((out / "ranks.json").read_text())["checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    ck = load_checkpoint(out)
    assert ck.step == 3
    # two ranks x batch 64 x 3 steps of real images went by
    assert ck.extra["batches"] == 3
    if preset == "mnist-sngan":  # one trunk retired (its heads' running losses are +inf), on both ranks alike
        finite = ck.tensors["c.loss_avg"].isfinite()
        assert finite.sum().item() == 15 and len(finite) == 30


def test_torchrun_ranks_stop_at_the_same_step_when_the_time_budget_runs_out(tmp_path, mnist_small):
    """Rank 0's clock decides for all: a rank that stopped alone would leave the other in a collective."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0",
           "-m", "gan.cli", "train", "--preset", "mnist-cdcgan", "--data", str(mnist_small), "--out", str(out),
           "--steps", "100000", "--max-minutes", "0.03", "--threads", "1", "--no-progress",
           "--set", 'arch_params={"g_width": 4, "d_width": 4}', "--set", "eval_every=0"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ck = load_checkpoint(out)
    assert 0 < ck.step < 100000 and f"max_minutes: {ck.step} steps in" in proc.stdout + proc.stderr
    sums = json.loads((out / "ranks.json").read_text())["checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]


def test_every_family_trains_under_torchrun_with_its_ranks_in_step(tmp_path, mnist_small):
    """Each rank draws its own batches; equal weights after 2 steps mean the gradients were averaged, through
    whatever autograd the family runs (R1 and gradient penalties' double backward, nets left unused)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0",
           str(REPO / "tests" / "training" / "ddp_every_family.py"), str(mnist_small), str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for family in family_presets():
        sums = json.loads((tmp_path / family / "ranks.json").read_text())["checksums"]
        assert len(sums) == 2 and sums[0] == sums[1], family
        assert load_checkpoint(tmp_path / family).step == 2, family


def test_rank_0_borrows_its_nodes_threads_for_its_own_work_and_gives_them_back():
    """A quick evaluation runs on rank 0 alone while the node's other ranks wait: it runs on all their threads."""
    own = torch.get_num_threads()
    with DistEnv(rank=0, world=4, local_world=2).main_rank_borrows_threads():
        assert torch.get_num_threads() == 2 * own
    assert torch.get_num_threads() == own
    for env in (DistEnv(rank=1, world=4, local_world=2), DistEnv(rank=0, world=2, local_world=1), DistEnv()):
        with env.main_rank_borrows_threads():
            assert torch.get_num_threads() == own
    with pytest.raises(RuntimeError), DistEnv(rank=0, world=2, local_world=2).main_rank_borrows_threads():
        raise RuntimeError("an evaluation fails")
    assert torch.get_num_threads() == own
