"""Lower-precision variants of a verified fp32 graph, and the FID check that decides if one may ship.

fp16 (for GPUs): weights and compute of the generator in float16, with the inputs, the
[-1, 1] -> uint8 pixel head and the outputs kept in float32/uint8, so the contract is unchanged
and rounding to pixels happens at full precision.
int8 (for CPUs): onnxruntime.quantization.quantize_static (QDQ, per-channel weights) calibrated on
seeded service latents, so the same calibration set gives the same file.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.errors import ExportError
from export.graph_edit import drop_output, toposorted, with_card
from export.graph_head import FLOAT_OUTPUT, IMAGES
from gan_core.card import ModelCard
from gan_core.feeds import build_feeds

CALIBRATION_SEED = 7_2024
CALIBRATION_BATCHES = 16
CALIBRATION_BATCH = 64
# Ops after the generator's output: they turn [-1, 1] into pixels and stay in float32.
PIXEL_HEAD_OPS = ("Add", "Mul", "Round", "Clip", "Cast", "Transpose")


def pixel_head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes between the float output and `images` (the in-graph pixel quantization)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    names, todo = [], [IMAGES]
    while todo:
        node = producers.get(todo.pop())
        if node is None or node.name in names or node.op_type not in PIXEL_HEAD_OPS:
            continue
        names.append(node.name)
        todo.extend(i for i in node.input if i and i != FLOAT_OUTPUT)
    return names


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Generator body in float16, pixel head in float32: float inputs are cast to fp16 on entry, the [-1, 1]
    output back to float32.

    Hand-written instead of onnxruntime.transformers.float16: with the pixel head blocked, that converter
    casts every head value to fp16 and back (losing the precision the block was for) and leaves stale
    value_info that fails onnx.checker. Here the graph splits in exactly two places.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    head = set(pixel_head_nodes(m))
    body = [n for n in g.node if n.name not in head]
    body_inputs = {i for n in body for i in n.input}
    head_inputs = {i for n in g.node if n.name in head for i in n.input}
    float_inputs = [i.name for i in g.input if i.type.tensor_type.elem_type == TensorProto.FLOAT]
    if head_inputs & body_inputs - {FLOAT_OUTPUT}:
        raise ExportError("fp16 conversion: the pixel head shares weights with the generator body")
    for t in g.initializer:
        if t.name in body_inputs and t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for n in body:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        n.input[:] = [f"{i}_fp16" if i in float_inputs else i for i in n.input]
        n.output[:] = ["pixels_fp16" if o == FLOAT_OUTPUT else o for o in n.output]
    to16 = [
        helper.make_node("Cast", [i], [f"{i}_fp16"], name=f"cast_{i}_to_fp16", to=TensorProto.FLOAT16)
        for i in float_inputs
    ]
    to32 = helper.make_node(
        "Cast", ["pixels_fp16"], [FLOAT_OUTPUT], name="cast_pixels_to_fp32", to=TensorProto.FLOAT
    )
    nodes = [*to16, *g.node, to32]
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    m = toposorted(m)
    try:
        return onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as e:
        raise ExportError(
            f"fp16 conversion produced an inconsistent graph: {str(e).splitlines()[0]}"
        ) from None


class LatentCalibration:
    """quantize_static's CalibrationDataReader: seeded feeds (gan_core.feeds) of the card, batch by batch."""

    def __init__(self, card: ModelCard, batches: int = CALIBRATION_BATCHES, batch: int = CALIBRATION_BATCH):
        self.feeds = [
            build_feeds(card, CALIBRATION_SEED, range(b * batch, (b + 1) * batch)) for b in range(batches)
        ]
        self._it = iter(self.feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)


def to_int8(model: onnx.ModelProto, card: ModelCard) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = LatentCalibration(card)
    with tempfile.TemporaryDirectory(prefix="gan-int8-") as d:
        src, dst = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        onnx.save_model(model, src)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing hint on every call
        try:
            quantize_static(
                str(src),
                str(dst),
                reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=pixel_head_nodes(model),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
        except Exception as e:  # the quantizer raises plain exceptions
            raise ExportError(f"int8 quantization failed: {str(e).splitlines()[0]}") from None
        finally:
            root.setLevel(level)
        return onnx.load_model(dst)


def build_variant(model: onnx.ModelProto, precision: str, card: ModelCard) -> onnx.ModelProto:
    if precision == "fp16":
        return to_fp16(model)
    if precision == "int8":
        return to_int8(model, card)
    raise ExportError(f"no variant builder for precision {precision!r}")


def measure_fid(path: Path, n: int) -> float:
    from training.evaluation import evaluate_target
    from training.evaluator import EvaluationError

    try:
        return float(evaluate_target(path, n=n, seed=0)["fid"])
    except EvaluationError as e:
        raise ExportError(f"FID check failed: {e}") from None


def fid_check(
    fp32_graph: onnx.ModelProto, variant: onnx.ModelProto, card, budget: float, n: int, precision: str
) -> dict:
    """FID of the fp32 and the variant graph on the same n service latents; refuse the variant over budget.

    Returns the card fields (fid, fid_fp32, fid_n). Both graphs are written with the card to a private
    temp folder, since training.evaluation opens .onnx files the way the service does.
    """
    with tempfile.TemporaryDirectory(prefix="gan-fid-") as d:
        paths = Path(d) / "fp32.onnx", Path(d) / f"{precision}.onnx"
        for model, path in zip((fp32_graph, variant), paths, strict=True):
            path.write_bytes(with_card(drop_output(model, FLOAT_OUTPUT), card))
        fid32, fidv = measure_fid(paths[0], n), measure_fid(paths[1], n)
    limit = fid32 * (1.0 + budget)
    if fidv > limit:
        raise ExportError(
            f"{precision} variant refused: FID {fidv:.2f} exceeds the fp32 export's {fid32:.2f} "
            f"by more than the budget of {budget:.0%} (limit {limit:.2f}, n={n})"
        )
    return {"fid": fidv, "fid_fp32": fid32, "fid_n": n}
