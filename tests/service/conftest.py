"""Shared session fixtures for tests/service: the tiny exported generators, trained once per run."""

import shutil  # noqa: E402

import pytest  # noqa: E402

from tests.service.augment_models import cond_onnx, uncond_onnx  # noqa: F401


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, cond_onnx, uncond_onnx):  # noqa: F811
    """A models folder as the service sees it: one conditional and one unconditional generator."""
    d = tmp_path_factory.mktemp("served")
    shutil.copy(cond_onnx, d / "mnist-cdcgan.onnx")
    shutil.copy(uncond_onnx, d / "mnist-dcgan.onnx")
    return d
