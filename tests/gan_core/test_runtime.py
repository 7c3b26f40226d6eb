"""gan_core.runtime: real-GPU detection, explicit threads, the provider a session really got, clear errors."""

import onnx
import pytest
from onnx import TensorProto, helper

from gan_core.runtime import ModelFileError, cuda_device_present, open_generator, resolve_threads


def test_auto_device_follows_the_real_gpu(cdcgan_onnx):
    """'auto' takes CUDA exactly when a CUDA device is present (checked by capability, not by machine)."""
    _, path, card = cdcgan_onnx
    sess = open_generator(path, threads=1, device="auto")
    want = "CUDAExecutionProvider" if cuda_device_present() else "CPUExecutionProvider"
    assert (sess.provider, sess.threads, sess.card) == (want, 1, card)


def test_cpu_session_reports_its_provider_and_threads(cdcgan_onnx):
    _, path, card = cdcgan_onnx
    sess = open_generator(path, threads=1, device="cpu")
    assert (sess.provider, sess.threads, sess.card) == ("CPUExecutionProvider", 1, card)
    assert sess.session.get_providers() == ["CPUExecutionProvider"]


def test_threads_come_from_argument_then_env(monkeypatch):
    monkeypatch.setenv("GAN_ORT_THREADS", "3")
    assert (resolve_threads(2), resolve_threads(None)) == (2, 3)
    monkeypatch.setenv("GAN_ORT_THREADS", "many")
    with pytest.raises(ModelFileError, match=r"^GAN_ORT_THREADS must be a whole number >= 1, got 'many'$"):
        resolve_threads(None)
    with pytest.raises(ModelFileError, match=r"^threads must be >= 1, got 0$"):
        resolve_threads(0)


def test_device_errors(cdcgan_onnx):
    path = cdcgan_onnx[1]
    if cuda_device_present():
        assert open_generator(path, threads=1, device="cuda").provider == "CUDAExecutionProvider"
    else:
        with pytest.raises(ModelFileError, match=r"^device 'cuda' asked for, but no CUDA GPU is present"):
            open_generator(path, threads=1, device="cuda")
    with pytest.raises(ModelFileError, match=r"^device must be one of auto, cpu, cuda, got 'tpu'$"):
        open_generator(path, threads=1, device="tpu")


def test_files_that_cannot_be_served(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(
        ModelFileError, match=r"junk.onnx: not a readable ONNX file \(unsupported protobuf wire type 6\)$"
    ):
        open_generator(junk, threads=1)
    with pytest.raises(ModelFileError, match=r"no such ONNX file$"):
        open_generator(tmp_path / "missing.onnx", threads=1)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["z"], ["images"])], "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    bare = tmp_path / "bare.onnx"
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), bare
    )
    with pytest.raises(
        ModelFileError, match=r"carries no gan-service model card \(metadata key 'gan_service.card'\)$"
    ):
        open_generator(bare, threads=1)
