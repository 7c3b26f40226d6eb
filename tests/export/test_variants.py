"""fp16 and int8 variants: same contract, measured parity, and the FID budget that may refuse them."""

import numpy as np
import onnx
import pytest

from export import ExportError, export_checkpoint, quantize
from gan_core.card_files import read_card
from gan_core.latents import balanced_labels, latents
from gan_core.runtime import open_generator
from tests.conftest import zl_feeds


def _run(path, card, n=16):
    sess = open_generator(path, threads=1)
    idx = range(n)
    return sess.run(zl_feeds(latents(9, idx, card.latent_dim), balanced_labels(idx, card.num_classes)))


def test_fp16_variant_keeps_the_contract(cdcgan_onnx, tmp_path):
    ckpt, fp32_path, fp32_card = cdcgan_onnx
    out = tmp_path / "g16.onnx"
    card = export_checkpoint(ckpt, out, "fp16", fid_n=0)
    assert read_card(out) == card and card.export.precision == "fp16" and card.export.fid is None
    assert card.model_copy(update={"export": None}) == fp32_card.model_copy(update={"export": None})
    assert card.export.parity_max_abs_diff <= 4
    m = onnx.load(out)
    weights = [t for t in m.graph.initializer if len(t.dims) >= 2]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert {i.name: i.type.tensor_type.elem_type for i in m.graph.input}["z"] == onnx.TensorProto.FLOAT
    a, b = _run(out, card), _run(fp32_path, card)
    assert a.dtype == np.uint8 and a.shape == (16, 28, 28, 1)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 4


def test_int8_variant_is_quantized_and_reproducible(cdcgan_onnx, tmp_path):
    ckpt, fp32_path, _ = cdcgan_onnx
    out, again = tmp_path / "g8.onnx", tmp_path / "g8b.onnx"
    card = export_checkpoint(ckpt, out, "int8", fid_n=0)
    export_checkpoint(ckpt, again, "int8", fid_n=0)
    assert out.read_bytes() == again.read_bytes()  # seeded calibration
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert card.export.precision == "int8" and 0 < card.export.parity_max_abs_diff <= 64
    a, b = _run(out, card), _run(fp32_path, card)
    assert np.abs(a.astype(float) - b.astype(float)).mean() <= 4


def test_fid_check_measures_both_files_and_records_it(
    cdcgan_onnx, mnist_small_evaluator, tmp_path, monkeypatch
):
    monkeypatch.setenv("GAN_EVAL_CACHE", str(tmp_path / "cache"))
    ckpt, _, _ = cdcgan_onnx
    card = export_checkpoint(ckpt, tmp_path / "g8.onnx", "int8", fid_budget=10.0, fid_n=200)
    e = card.export
    assert e.fid_n == 200 and e.fid > 0 and e.fid_fp32 > 0
    assert e.fid <= e.fid_fp32 * 11


def test_variant_over_the_fid_budget_is_refused(cdcgan_onnx, tmp_path, monkeypatch):
    measured = iter([100.0, 111.0])  # fp32 then variant: +11 % against a 10 % budget
    monkeypatch.setattr(quantize, "measure_fid", lambda path, n: next(measured))
    out = tmp_path / "g8.onnx"
    with pytest.raises(
        ExportError,
        match=r"^int8 variant refused: FID 111\.00 exceeds the fp32 export's 100\.00 by more than the budget of 10% \(limit 110\.00, n=50\)$",
    ):
        export_checkpoint(cdcgan_onnx[0], out, "int8", fid_budget=0.10, fid_n=50)
    assert list(tmp_path.iterdir()) == []


def test_a_refusal_by_a_hair_prints_the_decimals_that_differ(cdcgan_onnx, tmp_path, monkeypatch):
    measured = iter([286.2360, 286.2391])  # the variant over a zero budget in the third decimal
    monkeypatch.setattr(quantize, "measure_fid", lambda path, n: next(measured))
    with pytest.raises(ExportError) as e:
        export_checkpoint(cdcgan_onnx[0], tmp_path / "g16.onnx", "fp16", fid_budget=0.0, fid_n=50)
    assert str(e.value) == (
        "fp16 variant refused: FID 286.239 exceeds the fp32 export's 286.236 by more than the budget of 0% "
        "(limit 286.236, n=50)"
    )
