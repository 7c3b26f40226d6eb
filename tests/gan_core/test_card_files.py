"""One card reader/writer for .onnx (protobuf wire format), checkpoint .safetensors and card.json."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from gan_core.card import ModelCard, latent_input
from gan_core.card_files import CARD_KEY, CardFileError, read_card, write_card
from gan_core.onnx_meta import OnnxFormatError, read_metadata, set_metadata

CARD = ModelCard(name="m", variant="ns", arch="dcgan", num_classes=1, class_names=["x"], image_shape=(1, 4, 4),
                 inputs=[latent_input(3)])  # fmt: skip


def _model(props: dict) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["z"], ["images"])], "g",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 3])],
    )  # fmt: skip
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    helper.set_model_props(m, props)
    return m


def test_wire_format_edit_equals_what_onnx_serializes():
    m = _model({"a": "1", CARD_KEY: "old"})
    data = m.SerializeToString()
    assert read_metadata(data) == {"a": "1", CARD_KEY: "old"}
    helper.set_model_props(m, {"a": "1", CARD_KEY: "new"})
    assert set_metadata(data, CARD_KEY, "new") == m.SerializeToString()
    fresh = _model({})
    helper.set_model_props(fresh, {"b": "2"})
    assert set_metadata(_model({}).SerializeToString(), "b", "2") == fresh.SerializeToString()


def test_onnx_card_round_trip_and_junk(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(_model({"other": "kept"}).SerializeToString())
    with pytest.raises(
        CardFileError, match=r"carries no gan-service model card \(metadata key 'gan_service.card'\)$"
    ):
        read_card(path)
    write_card(path, CARD)
    assert read_card(path) == CARD and read_metadata(path.read_bytes())["other"] == "kept"
    onnx.checker.check_model(onnx.load(path))
    with pytest.raises(OnnxFormatError):
        read_metadata(b"\x0f\xff")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(CardFileError, match=r"junk.onnx: not a readable ONNX file"):
        read_card(tmp_path / "junk.onnx")


def test_safetensors_card_rewrite_keeps_every_tensor(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "ckpt.safetensors"
    tensors = {"w": np.arange(10, dtype=np.float32), "b": np.ones((2, 3), np.int64)}
    save_file(tensors, path, metadata={"card": CARD.model_dump_json(), "step": "7"})
    assert read_card(path) == CARD
    newer = CARD.model_copy(update={"metrics": {"fid": 1.5}})
    write_card(path, newer)
    assert read_card(path) == newer
    back = load_file(path)
    assert back.keys() == tensors.keys() and all(np.array_equal(back[k], tensors[k]) for k in tensors)
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        assert f.metadata()["step"] == "7"


def test_card_json_and_unknown_kinds(tmp_path):
    write_card(tmp_path / "card.json", CARD)
    assert read_card(tmp_path / "card.json") == CARD
    with pytest.raises(CardFileError, match=r"no model card in a .txt file"):
        read_card(tmp_path / "x.txt")
