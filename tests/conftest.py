"""Test-wide settings: no telemetry, one thread per process, the shared MNIST copy."""

import os

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("GAN_ORT_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MNIST = REPO.parent / "shared" / "data" / "mnist"


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    assert (MNIST / "train-images-idx3-ubyte.gz").exists(), f"tests need the real MNIST files at {MNIST}"
    return MNIST


@pytest.fixture(scope="session")
def mnist_train(mnist_dir):
    from training.data import load_dataset

    return load_dataset(mnist_dir, "train")


@pytest.fixture(scope="session")
def mnist_small(mnist_train, tmp_path_factory):
    """2,000 real training digits as an .npz: enough for a few steps of a tiny model."""
    import numpy as np

    path = tmp_path_factory.mktemp("data") / "mnist2k.npz"
    np.savez(path, images=mnist_train.images[:2000, 0], labels=mnist_train.labels[:2000])
    return path
