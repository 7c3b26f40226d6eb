"""Lower-precision variants of a verified fp32 graph, and the FID check that decides if one may ship.

fp16 (for GPUs): weights and compute of the generator in float16, with the inputs, the
[-1, 1] -> uint8 pixel head and the outputs kept in float32/uint8, so the contract is unchanged
and rounding to pixels happens at full precision; attention softmaxes (SAGAN) stay float32 too.
int8 (for CPUs): onnxruntime.quantization.quantize_static (QDQ, per-channel 7-bit weights) calibrated
on seeded service latents, so the same calibration set gives the same file.
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
# Ops the fp16 variant keeps in float32 (see fp32_island_nodes): softmax's exp and normalising sum lose
# small attention weights in fp16; FP32_FEEDERS producing their input (the query-key logits) stay too.
FP32_OPS = ("Softmax",)
FP32_FEEDERS = ("MatMul",)
# Float inputs that are parameters, not data: ONNX requires them in float32 whatever the data's type.
FP32_PARAMS = {"Resize": (1, 2)}  # roi, scales


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


def fp32_island_nodes(model: onnx.ModelProto) -> set[str]:
    """Nodes the fp16 variant keeps in float32: every FP32_OPS node, plus its input's producer when that
    is one of FP32_FEEDERS (a self-attention's softmax and the query-key product that makes its logits)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    keep = set()
    for n in model.graph.node:
        if n.op_type in FP32_OPS:
            keep.add(n.name)
            src = producers.get(n.input[0])
            if src is not None and src.op_type in FP32_FEEDERS:
                keep.add(src.name)
    return keep


def _float_values(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 tensor of the (fp32) graph: inputs, weights and inferred intermediates."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    infos = [*g.input, *g.output, *g.value_info]
    names = {v.name for v in infos if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    return names | {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT}


def _split_shared_head_weights(g: onnx.GraphProto, head: set[str]) -> None:
    """Give the pixel head its own copy of any weight it shares with the body (the exporter's optimizer
    merges equal constants, e.g. the head's 0 bound with a weight that happens to be 0), so the body's
    copy can turn fp16 while the head's stays float32."""
    body_inputs = {i for n in g.node if n.name not in head for i in n.input}
    inits = {t.name: t for t in g.initializer}
    for n in g.node:
        if n.name not in head:
            continue
        for k, i in enumerate(n.input):
            if i in inits and i in body_inputs:
                copy = f"{i}_head"
                if copy not in inits:
                    inits[copy] = numpy_helper.from_array(numpy_helper.to_array(inits[i]), copy)
                    g.initializer.append(inits[copy])
                n.input[k] = copy


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Generator body in float16, pixel head in float32: float inputs are cast to fp16 on entry, the [-1, 1]
    output back to float32. Islands of the body that fp16 would spoil (fp32_island_nodes: attention
    softmax) stay float32, with casts at their borders.

    Hand-written instead of onnxruntime.transformers.float16: with the pixel head blocked, that converter
    casts every head value to fp16 and back (losing the precision the block was for) and leaves stale
    value_info that fails onnx.checker. Here the graph splits at the head and around each island only.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    head = set(pixel_head_nodes(m))
    _split_shared_head_weights(g, head)
    floats = _float_values(m)
    island = fp32_island_nodes(m) - head
    body = [n for n in g.node if n.name not in head]
    fp16_nodes = [n for n in body if n.name not in island]
    fp16_inputs = {
        i for n in fp16_nodes for k, i in enumerate(n.input) if k not in FP32_PARAMS.get(n.op_type, ())
    }
    float_inputs = [i.name for i in g.input if i.type.tensor_type.elem_type == TensorProto.FLOAT]
    fp32_weights = set()
    for t in g.initializer:
        if t.data_type != TensorProto.FLOAT:
            continue
        if t.name in fp16_inputs:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
        else:
            fp32_weights.add(t.name)
    for n in fp16_nodes:
        if n.op_type == "Constant" and n.output[0] in fp16_inputs:
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        n.input[:] = [f"{i}_fp16" if i in float_inputs else i for i in n.input]
        n.output[:] = ["pixels_fp16" if o == FLOAT_OUTPUT else o for o in n.output]
    casts = _island_borders(
        g, [n for n in body if n.name in island], floats, set(float_inputs) | fp32_weights
    )
    to16 = [
        helper.make_node("Cast", [i], [f"{i}_fp16"], name=f"cast_{i}_to_fp16", to=TensorProto.FLOAT16)
        for i in float_inputs
    ]
    to32 = helper.make_node(
        "Cast", ["pixels_fp16"], [FLOAT_OUTPUT], name="cast_pixels_to_fp32", to=TensorProto.FLOAT
    )
    nodes = [*to16, *g.node, *casts, to32]
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


def _island_borders(
    g: onnx.GraphProto, island: list[onnx.NodeProto], floats: set[str], fp32_already: set[str]
) -> list[onnx.NodeProto]:
    """Rewire the float32 island nodes: float inputs from the fp16 body are cast up, float outputs the body
    reads are renamed '<name>_fp32' and cast down under their old name. Returns the Cast nodes to add."""
    names = {n.name for n in island}
    outputs = {o for n in island for o in n.output if o in floats}
    consumers = {i for n in g.node if n.name not in names for i in n.input}
    casts: dict[str, onnx.NodeProto] = {}
    for n in island:
        for k, i in enumerate(n.input):
            if i in outputs:
                n.input[k] = f"{i}_fp32"
            elif i in floats and i not in fp32_already:
                name = f"{i}_to_fp32"
                casts.setdefault(
                    name, helper.make_node("Cast", [i], [name], name=f"cast_{name}", to=TensorProto.FLOAT)
                )
                n.input[k] = name
        for k, o in enumerate(n.output):
            if o in outputs:
                n.output[k] = f"{o}_fp32"
                if o in consumers:
                    casts[o] = helper.make_node(
                        "Cast", [f"{o}_fp32"], [o], name=f"cast_{o}_to_fp16", to=TensorProto.FLOAT16
                    )
    return list(casts.values())


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
                # 7-bit weights: without VNNI (AVX2 CPUs) the u8 x s8 multiply-add saturates at 8 bits
                # (101 levels off torch on such a CPU, 57 with VNNI); the file must serve alike on both
                reduce_range=True,
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
    from training.evaluation.classifier import EvaluationError

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
        d = decimals_apart(fidv, limit)
        raise ExportError(
            f"{precision} variant refused: FID {fidv:.{d}f} exceeds the fp32 export's {fid32:.{d}f} "
            f"by more than the budget of {budget:.0%} (limit {limit:.{d}f}, n={n})"
        )
    return {"fid": fidv, "fid_fp32": fid32, "fid_n": n}


def decimals_apart(a: float, b: float, least: int = 2, most: int = 6) -> int:
    """Decimals that print a and b differently (at least `least`): a refusal must not read 'X exceeds X'."""
    d = least
    while d < most and f"{a:.{d}f}" == f"{b:.{d}f}":
        d += 1
    return d
