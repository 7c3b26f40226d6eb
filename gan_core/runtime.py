"""Open an exported generator in ONNX Runtime (torch-free) and read the model card inside it.

onnxruntime-gpu lists CUDAExecutionProvider even on machines without a GPU and silently falls
back to CPU, so the provider is chosen by looking for a real device, and reported from what the
session actually got.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gan_core.card import ModelCard
from gan_core.card_files import CardFileError, card_from_bytes
from gan_core.cpus import available_cpus
from gan_core.errors import UserError


class ModelFileError(UserError):
    """An .onnx file that cannot be served; one line for the user."""


def cuda_device_present() -> bool:
    """True only when a CUDA driver is loadable and reports at least one device."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return False
    return count.value > 0


DEVICES = ("auto", "cpu", "cuda")


def resolve_threads(threads: int | None) -> int:
    """Explicit intra-op thread count: `threads`, else $GAN_ORT_THREADS, else the CPUs this process may
    use (gan_core.cpus: affinity and a container's CPU quota).

    ORT's own default (0) sizes its pool to all the host's cores, which oversubscribes a shared host
    or a container with a CPU quota.
    """
    if threads is None:
        env = os.environ.get("GAN_ORT_THREADS", "").strip()
        if env:
            try:
                threads = int(env)
            except ValueError:
                raise ModelFileError(f"GAN_ORT_THREADS must be a whole number >= 1, got {env!r}") from None
        else:
            threads = available_cpus()
    if int(threads) < 1:
        raise ModelFileError(f"threads must be >= 1, got {threads}")
    return int(threads)


def session_options(threads: int | None) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = resolve_threads(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # Idle ORT worker threads spin by default, which starves other processes on a shared box
    # (e.g. the HTTP front end); GAN_ORT_SPINNING=0 turns that off at a small latency cost.
    if os.environ.get("GAN_ORT_SPINNING", "1") == "0":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


@dataclass
class GeneratorSession:
    """A ready ONNX Runtime session plus its card and the provider it really runs on."""

    path: Path
    session: ort.InferenceSession
    card: ModelCard
    provider: str
    threads: int

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Feeds {card input name: [N, ...]} (gan_core.feeds.build_feeds) -> the card's first output."""
        return self.session.run([self.card.output.name], dict(feeds))[0]


def open_generator(
    path: str | os.PathLike, threads: int | None = None, device: str = "auto"
) -> GeneratorSession:
    """device: 'auto' (CUDA when a GPU is really there), 'cpu' or 'cuda' (an error without a GPU)."""
    path = Path(path)
    if device not in DEVICES:
        raise ModelFileError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if not path.is_file():
        raise ModelFileError(f"{path}: no such ONNX file")
    try:
        data = path.read_bytes()
        card = card_from_bytes(data, "onnx", path)
    except (OSError, CardFileError) as e:
        raise ModelFileError(
            str(e) if isinstance(e, CardFileError) else f"{path}: cannot read ({e})"
        ) from None
    so = session_options(threads)
    has_gpu = cuda_device_present() if device != "cpu" else False
    if device == "cuda" and not has_gpu:
        raise ModelFileError("device 'cuda' asked for, but no CUDA GPU is present (use 'auto' or 'cpu')")
    want_cuda = has_gpu
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
    try:
        sess = ort.InferenceSession(data, sess_options=so, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise ModelFileError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0]})") from None
    graph_inputs = [i.name for i in sess.get_inputs()]
    if graph_inputs != [i.name for i in card.inputs]:
        raise ModelFileError(
            f"{path}: graph inputs {graph_inputs} differ from the card's inputs {[i.name for i in card.inputs]}"
        )
    return GeneratorSession(path, sess, card, sess.get_providers()[0], so.intra_op_num_threads)
