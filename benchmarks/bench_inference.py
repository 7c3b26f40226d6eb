"""Generator inference speed: torch eager vs ONNX Runtime exports, side by side, with a roofline.

Rows (all on the same --threads, measured interleaved in one run, best of --rounds):
  torch eager       the checkpoint's generator + the same uint8 NHWC pixel head, torch.no_grad
  ort fp32          the shipped export (ConvTranspose rewritten as stride-1 phase Convs, BatchNorm folded)
  ort fp32 plain    the same exporter without the rewrite (ORT's own ConvTranspose)
  ort fp32 legacy   TorchScript exporter (dynamo=False), no rewrite           [--compare-exporters]
  ort int8          the int8 variant (QDQ, static calibration)                [--int8]
  ort fp16          the fp16 variant (weights and compute in float16)         [--fp16]
FLOPs per image are counted from the original module (Linear / Conv / ConvTranspose MACs x 2, so
work a rewrite adds does not count); the peak is the best of torch, numpy and ONNX Runtime fp32
matmuls (square sizes 1024..2048, or --peak-sizes) on the same threads; roofline = images/s x FLOPs / peak.

    nice -n 10 python benchmarks/bench_inference.py [--threads 2] [--int8] [--fp16] [--compare-exporters]
        [--peak-sizes 1024 1536 2048] [--peak-seconds 1.0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def count_flops(g, latent_dim: int, conditional: bool) -> int:
    """2 x multiply-accumulates of every Linear / Conv2d / ConvTranspose2d for one image."""
    import torch
    from torch import nn

    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Linear):
            macs += mod.in_features * mod.out_features
        elif isinstance(mod, nn.ConvTranspose2d):
            h, w = inp[0].shape[-2:]
            macs += (
                h
                * w
                * mod.in_channels
                * mod.out_channels
                * mod.kernel_size[0]
                * mod.kernel_size[1]
                // mod.groups
            )
        elif isinstance(mod, nn.Conv2d):
            h, w = out.shape[-2:]
            macs += (
                h
                * w
                * mod.in_channels
                * mod.out_channels
                * mod.kernel_size[0]
                * mod.kernel_size[1]
                // mod.groups
            )

    handles = [
        m.register_forward_hook(hook)
        for m in g.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        g(torch.zeros(1, latent_dim), torch.zeros(1, dtype=torch.int64) if conditional else None)
    for h in handles:
        h.remove()
    return 2 * macs


def _best_rate(fn, n: int, seconds: float) -> float:
    fn()
    best, end = 0.0, time.perf_counter() + seconds
    while best == 0.0 or time.perf_counter() < end:  # at least one timed call
        t = time.perf_counter()
        fn()
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def sgemm_peaks(threads: int, seconds: float = 1.0, sizes=(1024, 1536, 2048)) -> dict[str, float]:
    """Best fp32 matmul rate (FLOP/s) over square `sizes` (default 1024..2048) on `threads` threads, per library."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    torch.set_num_threads(threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    peaks = {"torch": 0.0, "numpy": 0.0, "onnxruntime": 0.0}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        an, bn = a.numpy(), b.numpy()
        spec = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "aby"]
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "mm", spec[:2], spec[2:])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        runs = {
            "torch": lambda a=a, b=b: torch.mm(a, b),
            "numpy": lambda a=an, b=bn: a @ b,
            "onnxruntime": lambda s=sess, a=an, b=bn: s.run(None, {"a": a, "b": b}),
        }
        for lib, fn in runs.items():
            peaks[lib] = max(peaks[lib], _best_rate(fn, n, seconds))
    return peaks


def rate(fn, batch: int, seconds: float) -> float:
    """Images/s of fn() over about `seconds` (at least 2 calls after a warm-up call)."""
    fn()
    calls, t0 = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    return batch * calls / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--seconds", type=float, default=1.0, help="per row, batch and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--peak-sizes",
        type=int,
        nargs="+",
        default=[1024, 1536, 2048],
        help="square matmul sizes of the peak",
    )
    ap.add_argument("--peak-seconds", type=float, default=1.0, help="per matmul size and library")
    ap.add_argument(
        "--checkpoint",
        help="default: an untrained mnist-cdcgan generator (speed does not depend on training)",
    )
    ap.add_argument("--int8", action="store_true", help="also build and time the int8 variant")
    ap.add_argument(
        "--fp16", action="store_true", help="also build and time the fp16 variant (what gan bundle ships)"
    )
    ap.add_argument(
        "--compare-exporters", action="store_true", help="also time the legacy TorchScript export"
    )
    args = ap.parse_args()

    os.environ["GAN_ORT_THREADS"] = str(args.threads)
    import numpy as np
    import onnx
    import torch

    torch.set_num_threads(args.threads)
    from export.errors import ExportError
    from export.graph_edit import drop_output, with_card
    from export.graph_head import FLOAT_OUTPUT, IMAGES, ImagesHead
    from export.onnx_export import export_checkpoint, to_onnx
    from gan_core.feeds import build_feeds
    from gan_core.runtime import open_generator
    from training.checkpoint import build_generator, load_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt_path = args.checkpoint
        if ckpt_path is None:
            from gan_core.datasets import load_dataset
            from training.config import preset
            from training.trainer import Trainer

            trainer = Trainer(
                preset("mnist-cdcgan", out=str(tmp / "run"), steps=0),
                load_dataset(None, "train"),
                progress=False,
            )
            ckpt_path = trainer.train().checkpoint
        ckpt = load_checkpoint(ckpt_path)
        g = build_generator(ckpt)
        card = export_checkpoint(ckpt_path, tmp / "fp32.onnx", threads=args.threads)
        files = {"ort fp32": tmp / "fp32.onnx"}
        plain = drop_output(to_onnx(g, ckpt.card, rewrite=False), FLOAT_OUTPUT)
        (tmp / "plain.onnx").write_bytes(with_card(plain, card))
        files["ort fp32 plain"] = tmp / "plain.onnx"
        if args.compare_exporters:
            head, names = ImagesHead(g).eval(), ["z", "labels"] if g.conditional else ["z"]
            ex = (torch.zeros(2, g.latent_dim), torch.zeros(2, dtype=torch.int64))[: len(names)]
            torch.onnx.export(
                head, ex, tmp / "legacy.onnx", dynamo=False, opset_version=18, input_names=names,
                output_names=[IMAGES, FLOAT_OUTPUT], dynamic_axes={n: {0: "N"} for n in [*names, IMAGES, FLOAT_OUTPUT]},
            )  # fmt: skip
            legacy = drop_output(onnx.load(tmp / "legacy.onnx"), FLOAT_OUTPUT)
            (tmp / "legacy.onnx").write_bytes(with_card(legacy, card))
            files["ort fp32 legacy"] = tmp / "legacy.onnx"
        for variant in [v for v, asked in (("int8", args.int8), ("fp16", args.fp16)) if asked]:
            try:
                export_checkpoint(ckpt_path, tmp / f"{variant}.onnx", variant, fid_n=0, threads=args.threads)
                files[f"ort {variant}"] = tmp / f"{variant}.onnx"
            except ExportError as e:  # the exporter's own parity gate refused it: say so, time the rest
                print(f"{variant} variant not timed: {e}")
        sessions = {
            name: open_generator(path, threads=args.threads, device="cpu") for name, path in files.items()
        }
        head = ImagesHead(g).eval()

        flops = count_flops(g, g.latent_dim, g.conditional)
        peaks = sgemm_peaks(args.threads, args.peak_seconds, args.peak_sizes)
        rows = ["torch eager", *sessions]
        best = {(r, b): 0.0 for r in rows for b in args.batches}
        for _ in range(args.rounds):
            for b in args.batches:
                feeds = build_feeds(card, 0, range(b))
                args_t = [torch.from_numpy(feeds[i.name]) for i in card.inputs]

                def eager(args_t=args_t):
                    with torch.no_grad():
                        return head(*args_t)[0]

                best["torch eager", b] = max(best["torch eager", b], rate(eager, b, args.seconds))
                for name, s in sessions.items():
                    best[name, b] = max(
                        best[name, b], rate(lambda s=s, feeds=feeds: s.run(feeds), b, args.seconds)
                    )
        after = sgemm_peaks(args.threads, args.peak_seconds, args.peak_sizes)  # in case load changed
        for lib, p in after.items():
            peaks[lib] = max(peaks[lib], p)
        peak_s = max(peaks.values())

    print(
        f"generator: {card.arch} {card.arch_params} latent {card.latent_dim}, conditional={card.conditional}"
    )
    print(f"FLOPs/image {flops / 1e6:.2f} M; fp32 matmul peak {peak_s / 1e9:.1f} GFLOP/s on {args.threads} threads "
          f"({', '.join(f'{k} {v / 1e9:.1f}' for k, v in peaks.items())}); "
          f"best of {args.rounds} rounds x {args.seconds:g} s; torch {torch.__version__}, numpy {np.__version__}")  # fmt: skip
    print(
        f"{'engine':<18}"
        + "".join(f"{'b=' + str(b) + ' img/s':>14}{'roofline':>10}" for b in args.batches)
        + f"{'vs eager b=1':>14}"
    )
    for r in rows:
        # int8 MACs are not fp32 FLOPs: no roofline for it
        cells = "".join(
            f"{best[r, b]:>14.0f}"
            + (f"{'-':>10}" if "int8" in r else f"{best[r, b] * flops / peak_s:>10.1%}")
            for b in args.batches
        )
        b1 = args.batches[0]
        print(f"{r:<18}{cells}{best[r, b1] / best['torch eager', b1]:>13.2f}x")


if __name__ == "__main__":
    main()
