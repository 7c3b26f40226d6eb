"""Every family's preset resumes bit-identically (their phases, extra nets and optimisers included)."""

from __future__ import annotations

import pytest
import torch

from gan_core.datasets import ImageDataset, load_dataset
from training.checkpoint import load_checkpoint
from training.config import preset
from training.trainer import Trainer

# infogan: the clusterer trains steps 0-2, G and D from step 3, so the resume at step 2 crosses the switch
INFOGAN_CLUSTER = {"family_params": {"self_condition": True, "cluster_steps": 3, "cluster_width": 4}}


@pytest.mark.parametrize(("name", "extra"), [("mnist-infogan", INFOGAN_CLUSTER), ("mnist-acgan", {})])
def test_resume_is_bit_identical(name, extra, mnist_small, tmp_path):
    ds = load_dataset(mnist_small)
    small = ImageDataset(ds.images[:200].copy(), ds.labels[:200].copy(), ds.class_names, "s", "s")

    def cfg(out, steps):
        return preset(name, out=str(out), steps=steps, batch_size=16, arch_params={"g_width": 8, "d_width": 8},
                      threads=1, eval_every=0, sample_every=100, ckpt_every=2, **extra)  # fmt: skip

    a = Trainer(cfg(tmp_path / "a", 4), small, progress=False).train()
    Trainer(cfg(tmp_path / "b", 2), small, progress=False).train()
    b = Trainer(cfg(tmp_path / "b", 4), small, resume=True, progress=False).train()
    ta, tb = load_checkpoint(a.checkpoint).tensors, load_checkpoint(b.checkpoint).tensors
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
