import json
import os
import subprocess
import sys

from training.checkpoint import load_checkpoint


def test_torchrun_two_cpu_ranks_hold_identical_weights(tmp_path, mnist_small):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0",
           "-m", "gan.cli", "train", "--preset", "mnist-dcgan", "--data", str(mnist_small), "--out", str(out),
           "--steps", "3", "--threads", "1", "--no-progress", "--set", 'arch_params={"g_width": 8, "d_width": 8}']  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sums = json.loads((out / "ranks.json").read_text())["checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    ck = load_checkpoint(out)
    assert ck.step == 3
    # two ranks x batch 64 x 3 steps of real images went by
    assert ck.extra["batches"] == 3
