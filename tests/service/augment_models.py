"""Session fixtures for the augmentation tests: tiny generators trained for 2 steps, exported to ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest


def tiny_model(tmp: Path, data: Path, conditional: bool) -> Path:
    from export.onnx_export import export_checkpoint
    from training.config import preset
    from training.data import load_dataset
    from training.trainer import Trainer

    name = "mnist-cdcgan" if conditional else "mnist-dcgan"
    cfg = preset(
        name,
        steps=2,
        out=str(tmp / name),
        arch_params={"g_width": 8, "d_width": 8},
        eval_every=0,
        batch_size=16,
        threads=1,
    )
    Trainer(cfg, load_dataset(data), progress=False).train()
    onnx_path = tmp / f"{name}.onnx"
    export_checkpoint(tmp / name, onnx_path)
    return onnx_path


@pytest.fixture(scope="session")
def cond_onnx(tmp_path_factory, mnist_small) -> Path:
    return tiny_model(tmp_path_factory.mktemp("augment-models"), mnist_small, conditional=True)


@pytest.fixture(scope="session")
def uncond_onnx(tmp_path_factory, mnist_small) -> Path:
    return tiny_model(tmp_path_factory.mktemp("augment-models"), mnist_small, conditional=False)
