"""Tiny trained checkpoints of every preset's architecture (a few steps on 2k real digits), made once per run."""

import pytest

TINY_ARCH = {
    "mnist-gan": {"g_hidden": [16, 32], "d_hidden": [16, 8]},
    "mnist-dcgan": {"g_width": 8, "d_width": 8},
    "mnist-cdcgan": {"g_width": 8, "d_width": 8},
    "mnist-wgan-gp": {"g_width": 8, "d_width": 8},
}


@pytest.fixture(scope="session")
def tiny_checkpoint(mnist_small, tmp_path_factory):
    """preset name -> path of its checkpoint (trained 2 steps with tiny widths), cached per session."""
    from training.config import preset
    from training.data import load_dataset
    from training.trainer import Trainer

    ds = load_dataset(mnist_small)
    made = {}

    def make(name: str):
        if name not in made:
            out = tmp_path_factory.mktemp(name)
            cfg = preset(
                name,
                out=str(out),
                steps=2,
                batch_size=16,
                arch_params=TINY_ARCH[name],
                threads=1,
                eval_every=0,
            )
            made[name] = Trainer(cfg, ds, progress=False).train().checkpoint
        return made[name]

    return make


@pytest.fixture(scope="session")
def cdcgan_onnx(tiny_checkpoint, tmp_path_factory):
    """(checkpoint, fp32 .onnx, card written) of the tiny conditional DCGAN."""
    from export import export_checkpoint

    ckpt = tiny_checkpoint("mnist-cdcgan")
    out = tmp_path_factory.mktemp("onnx") / "cdcgan.onnx"
    return ckpt, out, export_checkpoint(ckpt, out)
