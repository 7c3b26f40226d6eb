"""service.runtime: real-GPU detection, explicit threads, the provider a session really got, clear errors."""

import onnx
import pytest
from onnx import TensorProto, helper

from service.runtime import ModelFileError, cuda_device_present, open_generator, read_card, resolve_threads
from tests.export import conftest as export_fixtures

# The tiny exported generator of tests/export, made once per module here.
tiny_checkpoint, cdcgan_onnx = export_fixtures.tiny_checkpoint, export_fixtures.cdcgan_onnx


def test_no_cuda_device_on_this_machine():
    assert cuda_device_present() is False


def test_cpu_session_reports_its_provider_and_threads(cdcgan_onnx):
    _, path, card = cdcgan_onnx
    sess = open_generator(path, threads=1)
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
    with pytest.raises(ModelFileError, match=r"^device 'cuda' asked for, but no CUDA GPU is present"):
        open_generator(path, threads=1, device="cuda")
    with pytest.raises(ModelFileError, match=r"^device must be one of auto, cpu, cuda, got 'tpu'$"):
        open_generator(path, threads=1, device="tpu")


def test_files_that_cannot_be_served(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelFileError, match=r"ONNX Runtime cannot load it"):
        read_card(junk)
    with pytest.raises(ModelFileError, match=r"no such ONNX file$"):
        read_card(tmp_path / "missing.onnx")
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
        read_card(bare)
