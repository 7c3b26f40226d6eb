"""`torchrun --nnodes 2`: two agents on this machine (static rendezvous on 127.0.0.1, gloo on loopback).

Two nodes x one process and one node x two processes are the same world (2 ranks, rank r reads the
same batches and draws the same noise, gloo sums the same two gradients, one CPU thread each), so
every tensor of their checkpoints is bit-identical: weights, EMA, optimizer moments and every rank's
RNG streams. Only wall-clock figures (the card's train_seconds, the log's images_per_s) differ. A
run started on two nodes resumes on one node, bit for bit, since each rank's streams are checkpointed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from tests.augment.ray_cluster import free_port
from training.checkpoint import list_checkpoints, load_checkpoint

TINY = ["--preset", "mnist-cdcgan", "--threads", "1", "--no-progress",
        "--set", 'arch_params={"g_width": 8, "d_width": 8}', "--set", "ckpt_every=2"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}


def torchrun(*launch: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launch, "-m", "gan.cli", "train"]


def one_node(data, out, steps: int, *extra: str) -> None:
    cmd = torchrun("--nnodes=1", "--nproc_per_node=2", "--rdzv_backend=c10d", "--rdzv_endpoint=127.0.0.1:0")
    r = subprocess.run([*cmd, "--data", str(data), "--out", str(out), "--steps", str(steps), *TINY, *extra],
                       env=ENV, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]


def two_nodes(data, out, steps: int) -> None:
    port = free_port()
    procs = [
        subprocess.Popen(
            [
                *torchrun(
                    "--nnodes=2",
                    "--nproc_per_node=1",
                    f"--node_rank={n}",
                    "--master_addr=127.0.0.1",
                    f"--master_port={port}",
                ),
                "--data",
                str(data),
                "--out",
                str(out),
                "--steps",
                str(steps),
                *TINY,
            ],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for n in (0, 1)
    ]
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], errs[0][-2000:] + errs[1][-2000:]


def tensors(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).tensors


def assert_bit_identical(a, b) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys() and any(k.startswith("rng.noise.rank1") for k in ta)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k


def test_two_nodes_equal_one_node_and_resume_on_another_node_count(tmp_path, mnist_small):
    one, two = tmp_path / "1x2", tmp_path / "2x1"
    one_node(mnist_small, one, 4)
    two_nodes(mnist_small, two, 2)
    # rank 0 alone wrote the run's files, once per checkpoint step
    assert [p.name for p in list_checkpoints(two)] == ["ckpt-0000002.safetensors"]
    assert_bit_identical(one / "ckpt-0000002.safetensors", two / "ckpt-0000002.safetensors")
    one_node(mnist_small, two, 4, "--resume")  # the two-node run goes on as one node x two processes
    assert [p.name for p in list_checkpoints(two)] == ["ckpt-0000002.safetensors", "ckpt-0000004.safetensors"]
    assert_bit_identical(one / "ckpt-0000004.safetensors", two / "ckpt-0000004.safetensors")
    assert load_checkpoint(two).extra["batches"] == 4
