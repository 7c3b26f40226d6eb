"""Repair and super-resolution exports: fp32 parity enforced at three input sizes (the graph keeps height
and width dynamic), the card declaring the image (and mask) input and the scale, and an image larger
than the training size restored or upscaled in one call, as torch does it."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from export import export_checkpoint
from export.errors import ExportError
from gan_core.runtime import open_generator
from tests.conftest import repair_presets
from training.checkpoint import build_generator, load_checkpoint


@pytest.mark.parametrize("name", repair_presets())
def test_exports_with_parity_at_three_sizes_and_runs_larger_images(name, tiny_onnx):
    ckpt, path, card = tiny_onnx(name)
    r = card.repair
    h, w = card.inputs[0].shape[:2]
    m = r.multiple
    assert card.export.parity_sizes == [(h, w), (h + 2 * m, w + m), (h + m, 2 * w)]
    assert card.export.parity_max_abs_diff <= 1 and card.export.precision == "fp32"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dims = [i.shape for i in sess.get_inputs()]
    assert all(isinstance(d[1], str) and isinstance(d[2], str) for d in dims)  # height and width dynamic
    g = build_generator(load_checkpoint(ckpt))
    rng = np.random.default_rng(0)
    big = (3 * h, 2 * w + 2 * m) if m > 1 else (3 * h, 2 * w + 1)
    feeds = {"image": rng.integers(0, 256, (2, *big, 1), dtype=np.uint8)}
    if r.mask:
        mask = np.zeros((2, *big, 1), np.uint8)
        mask[:, 10:30, 5:25] = 255
        feeds["mask"] = mask
    out = open_generator(path, threads=1, device="cpu").run(feeds)
    assert out.shape == (2, big[0] * r.scale, big[1] * r.scale, 1) and out.dtype == np.uint8
    with torch.no_grad():
        ref = g(*[torch.from_numpy(feeds[i.name]) for i in card.inputs]).numpy()
    ref_u8 = np.clip(np.rint((ref + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.abs(out.astype(int) - ref_u8).max() <= 1


def test_image_models_refuse_the_precision_variants(tiny_checkpoint, tmp_path):
    with pytest.raises(ExportError, match="image-to-image models export fp32"):
        export_checkpoint(tiny_checkpoint("mnist-restore"), tmp_path / "x.onnx", "fp16", threads=1)
    assert not list(tmp_path.iterdir())
