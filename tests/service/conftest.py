"""Shared session fixtures for tests/service: the tiny exported generators, trained once per run."""

from tests.service.augment_models import cond_onnx, uncond_onnx  # noqa: F401
