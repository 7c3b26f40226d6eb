"""Checkpoint -> one self-contained, verified .onnx file carrying the model card.

Exporter: torch.onnx.export(dynamo=True), the torch.export-based exporter. The TorchScript one
(dynamo=False) is deprecated in torch 2.x, and its graph keeps BatchNormalization as separate ops
while the dynamo exporter's optimizer folds them into the Gemm/ConvTranspose weights; on this
model ORT runs both at about the same speed (benchmarks/bench_inference.py --compare-exporters).
Opset 18: the opset the exporter's torchlib functions are written in, so no version-converter
pass runs; ORT >= 1.14 executes it, which covers the service's onnxruntime-gpu >= 1.20 pin.

Flow: export a two-output graph (uint8 images + the [-1, 1] floats), onnx.checker, parity against
torch at batches 1/7/256, optional precision variant with its own parity and FID check, then drop
the float output, attach the card, write to a temp file, reopen it through gan_core.runtime, and
rename it into place only when everything passed. Any failure leaves no file behind.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch.nn.utils import parametrize

from export.dynamic_size import dynamic_shapes, is_dynamic, size_parity
from export.errors import ExportError
from export.graph_edit import drop_output, with_card
from export.graph_head import FLOAT_OUTPUT, IMAGES, ImagesHead
from export.phase_generator import phase_rewrite
from export.verify import (
    Parity,
    Tolerance,
    check_model,
    enforce,
    measure_parity,
    parity_feeds,
)
from gan_core.card import ExportInfo, ModelCard, OutputSpec
from gan_core.runtime import ModelFileError, open_generator
from training.checkpoint import build_generator, checkpoint_family, load_checkpoint, sha256_file

EXPORTER = "torch.onnx.export(dynamo=True)"
# Appended to the card's exporter when export.phase_generator rewrote the generator.
REWRITE_NAME = "convtranspose-as-phase-convs"
OPSET = 18
PRECISIONS = ("fp32", "fp16", "int8")
# fp32 must match torch's own rounding; the variants are judged by FID (see export.quantize).
TOLERANCES = {
    "fp32": Tolerance(levels=1, floats=1e-4),
    "fp16": Tolerance(levels=4, floats=None, mean_levels=0.5),
    "int8": Tolerance(levels=64, floats=None, mean_levels=4.0),
}
DEFAULT_FID_BUDGET = 0.10  # a variant may raise FID by at most 10 % of the fp32 export's FID
DEFAULT_FID_N = 2000


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter logs about optional torchvision ops and warns about internals; none of it is ours."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def rewritten(generator: torch.nn.Module, rewrite: bool) -> torch.nn.Module | None:
    return phase_rewrite(generator) if rewrite else None


def frozen(generator: torch.nn.Module) -> torch.nn.Module:
    """A copy of the generator whose parametrized weights (spectral norm) are plain weights holding the values
    the parametrizations compute; other generators are returned as they are.

    In eval mode spectral norm divides each weight by a sigma from its stored power-iteration vectors
    on every call; exported as is, that is a MatMul / dot / Div per layer at run time. Baked in, the
    numbers are the same and those ops are gone. (torch's remove_parametrizations is not used: a deep
    copy shares its parametrized class with the original, and removing edits that class.)
    """
    if not any(parametrize.is_parametrized(m) for m in generator.modules()):
        return generator
    generator = copy.deepcopy(generator)
    for m in list(generator.modules()):
        if not parametrize.is_parametrized(m):
            continue
        with torch.no_grad():
            values = {name: getattr(m, name).detach().clone() for name in m.parametrizations}
        cls = parametrize.type_before_parametrizations(m)
        del m._modules["parametrizations"]
        m.__class__ = cls  # parametrize's per-module subclass -> the layer's own class
        for name, value in values.items():
            m.register_parameter(name, torch.nn.Parameter(value, requires_grad=False))
    return generator.eval()


TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64, "uint8": torch.uint8}


def example_inputs(card: ModelCard, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Zeros of every card input; batch 2, since torch.export specializes size-1 dims (1 would pin the batch)."""
    return tuple(torch.zeros(batch, *i.shape, dtype=TORCH_DTYPES[i.dtype]) for i in card.inputs)


def to_onnx(generator: torch.nn.Module, card: ModelCard, rewrite: bool = True) -> onnx.ModelProto:
    """The two-output (images uint8 NHWC, pixels_float NCHW) fp32 graph with a dynamic batch axis.

    Inputs are the card's, named and ordered as it declares them; the generator takes them positionally.
    rewrite: export the stride-1 Conv form of the generator when export.phase_generator knows its shape.
    """
    generator = frozen(generator.eval())
    fast = rewritten(generator, rewrite)
    head = ImagesHead(fast if fast is not None else generator).eval()
    args = example_inputs(card)
    names = [i.name for i in card.inputs]
    batch = torch.export.Dim("batch")
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                head,
                args,
                dynamo=True,
                opset_version=OPSET,
                input_names=names,
                output_names=[IMAGES, FLOAT_OUTPUT],
                dynamic_shapes=(dynamic_shapes(card, batch),),
                optimize=True,
                external_data=False,
                verbose=False,
            )
    except Exception as e:  # torch.export / onnxscript raise many exception types
        raise ExportError(
            f"torch.onnx.export failed: {type(e).__name__}: {str(e).strip().splitlines()[0]}"
        ) from None
    return program.model_proto


def export_card(
    card: ModelCard,
    sha256: str,
    precision: str,
    parity: Parity,
    fid: dict | None = None,
    rewrite: bool = False,
    sizes: list[tuple[int, int]] = (),
) -> ModelCard:
    """The checkpoint's card, unchanged except for the `export` field describing this file."""
    info = ExportInfo(
        exporter=EXPORTER + (f" + {REWRITE_NAME}" if rewrite else ""),
        exporter_version=torch.__version__,
        opset=OPSET,
        precision=precision,
        checkpoint_sha256=sha256,
        parity_max_abs_diff=float(parity.max_abs_diff),
        parity_batches=list(parity.batches),
        float_parity_max_abs_diff=parity.float_max_abs_diff,
        parity_sizes=list(sizes),
        **(fid or {}),
    )
    outputs = [OutputSpec(name=IMAGES, dtype="uint8", layout="NHWC", range=(0.0, 255.0))]
    return card.model_copy(update={"export": info, "outputs": outputs})


def _temp_path(out: Path) -> Path:
    """A temp file beside `out` (same filesystem, so the final rename is atomic), readable like a normal file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the service may run as another user
    return Path(tmp)


def _write_and_reopen(data: bytes, tmp: Path, card: ModelCard, threads: int | None) -> None:
    """Write the serialized model to `tmp` (fsynced) and check the file the way the service will open it."""
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        sess = open_generator(tmp, threads=threads, device="cpu")
    except ModelFileError as e:
        raise ExportError(f"written file does not open: {e}") from None
    if sess.card != card:
        raise ExportError("model card read back from the written file differs from the one written")
    out = sess.run(parity_feeds(card, 7, 0))
    want = (7, *card.image_shape[1:], card.image_shape[0])
    if out.dtype != np.uint8 or out.shape != want:
        raise ExportError(f"written file returns {out.dtype} {list(out.shape)}, expected uint8 {list(want)}")


def _check_request(out: Path, precision: str, fid_budget: float, fid_n: int) -> None:
    if precision not in PRECISIONS:
        raise ExportError(f"variant must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if fid_budget < 0:
        raise ExportError(f"fid budget must be >= 0, got {fid_budget}")
    if fid_n < 0:
        raise ExportError(f"fid n must be >= 0, got {fid_n}")
    if out.suffix != ".onnx":
        raise ExportError(f"{out}: output file name must end in .onnx")
    if out.is_dir():
        raise ExportError(f"{out}: is a folder, expected an .onnx file path")


def direction_paths(out: str | os.PathLike, directions: list[str]) -> dict[str, Path]:
    """One file per direction: OUT itself for one, OUT-<direction>.onnx beside it for several."""
    out = Path(out)
    if len(directions) == 1:
        return {directions[0]: out}
    return {d: out.with_name(f"{out.stem}-{d}{out.suffix}") for d in directions}


def checkpoint_directions(checkpoint: str | os.PathLike) -> list[str]:
    """The export directions of a checkpoint's family ([] for one-generator families)."""
    return list(checkpoint_family(load_checkpoint(checkpoint)).directions())


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    precision: str = "fp32",
    *,
    fid_budget: float = DEFAULT_FID_BUDGET,
    fid_n: int = DEFAULT_FID_N,
    threads: int | None = None,
    rewrite: bool = True,
    direction: str | None = None,
) -> ModelCard:
    """Export a checkpoint file or run folder (its EMA generator) to `out`; returns the card written.

    precision 'fp16' / 'int8' builds that variant from the verified fp32 graph and refuses it when its
    FID on `fid_n` images exceeds the fp32 export's by more than `fid_budget` (relative); fid_n=0 skips
    the FID check (the card then says fid=None). rewrite=False exports ORT's own ConvTranspose instead of
    the phase-Conv form (about half as fast; benchmarks/bench_inference.py times both).
    direction: for families with several generators (CycleGAN: 'a2b' = G, 'b2a' = F), which one; the
    file's card then names that direction and its source and target domains.
    """
    out = Path(out)
    _check_request(out, precision, fid_budget, fid_n)
    ckpt = load_checkpoint(checkpoint)
    family = checkpoint_family(ckpt)
    directions = family.directions()
    if direction is not None and direction not in directions:
        known = (
            f"one of {', '.join(directions)}"
            if directions
            else f"omitted: the {family.name!r} family exports one generator"
        )
        raise ExportError(f"direction: must be {known}, got {direction!r}")
    if direction is None and directions:
        raise ExportError(
            f"direction: {ckpt.path} is a {family.name!r} model with one file per direction ({', '.join(directions)}); name one"
        )
    net = directions[direction] if direction else family.generator
    card = family.direction_card(ckpt.card, direction) if direction else ckpt.card
    try:
        generator = build_generator(ckpt, f"{net}_ema")
    except (
        KeyError,
        RuntimeError,
        TypeError,
        ValueError,
    ) as e:  # unknown arch, weights of another net version
        msg = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip().splitlines()[0]
        raise ExportError(f"{ckpt.path}: cannot rebuild its generator with this code: {msg}") from None
    return export_generator(
        generator, card, sha256_file(ckpt.path), out, precision,
        fid_budget=fid_budget, fid_n=fid_n, threads=threads, rewrite=rewrite,
    )  # fmt: skip


def export_generator(
    generator: torch.nn.Module,
    card: ModelCard,
    checkpoint_sha256: str,
    out: str | os.PathLike,
    precision: str = "fp32",
    *,
    fid_budget: float = DEFAULT_FID_BUDGET,
    fid_n: int = DEFAULT_FID_N,
    threads: int | None = None,
    rewrite: bool = True,
) -> ModelCard:
    """Export a generator module that takes the card's inputs positionally (in eval mode) to `out`.

    The checks and the card are the same as for a checkpoint; export_checkpoint is this plus loading.
    """
    out = Path(out)
    _check_request(out, precision, fid_budget, fid_n)
    if precision != "fp32" and card.input_of_kind("image") is not None:
        raise ExportError(
            f"variant: {precision} variants are judged by the FID of generated samples; image-to-image models export fp32"
        )
    generator = generator.eval()
    rewrite = rewrite and rewritten(generator, True) is not None
    graph = to_onnx(generator, card, rewrite)
    check_model(graph)
    parity32 = measure_parity(graph, generator, card, threads=threads)
    enforce(parity32, TOLERANCES["fp32"], "fp32 export")
    sizes: list[tuple[int, int]] = []
    if is_dynamic(card):  # any input size: parity at the training size and two others
        by_size, sizes = size_parity(graph, generator, card, threads)
        enforce(by_size, TOLERANCES["fp32"], f"fp32 export at input sizes {sizes}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        if precision == "fp32":
            model, parity, fid = graph, parity32, None
        else:
            from export.quantize import build_variant, fid_check

            model = build_variant(graph, precision, card)
            check_model(model)
            parity = measure_parity(model, generator, card, threads=threads)
            enforce(parity, TOLERANCES[precision], f"{precision} variant")
            fid = fid_check(graph, model, card, fid_budget, fid_n, precision) if fid_n else None
        final_card = export_card(card, checkpoint_sha256, precision, parity, fid, rewrite, sizes)
        final = with_card(drop_output(model, FLOAT_OUTPUT), final_card)
        check_model(onnx.load_from_string(final))
        tmp = _temp_path(out)
        _write_and_reopen(final, tmp, final_card, threads)
        os.replace(tmp, out)
        return final_card
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
