"""StyleGAN and progressive-GAN checkpoints export with a dynamic batch axis and parity (batches 1/7/256,
enforced by the exporter), and the modulated convolution alone matches torch at two batch sizes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from training.checkpoint import build_generator, load_checkpoint
from training.nets.stylegan import ModulatedConv2d


class ModConv(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = ModulatedConv2d(6, 5, 3, w_dim=4, out_gain=2**0.5)

    def forward(self, x, w):
        return self.conv(x, w)


def test_modulated_conv_exports_with_a_dynamic_batch_and_no_grouped_conv(tmp_path):
    m = ModConv().eval()
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        m, (torch.zeros(2, 6, 9, 9), torch.zeros(2, 4)), dynamo=True, opset_version=18,
        input_names=["x", "w"], output_names=["y"], dynamic_shapes=({0: batch}, {0: batch}), verbose=False,
    )  # fmt: skip
    model = program.model_proto
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(a.i == 1 for n in convs for a in n.attribute if a.name == "group")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (3, 11):
        x, w = torch.randn(n, 6, 9, 9), torch.randn(n, 4)
        (got,) = sess.run(None, {"x": x.numpy(), "w": w.numpy()})
        with torch.no_grad():
            want = m(x, w).numpy()
        assert got.shape == (n, 5, 9, 9)
        np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def test_stylegan_checkpoint_exports_and_serves_every_noise_mode(tiny_onnx):
    ckpt, path, card = tiny_onnx("mnist-stylegan")
    assert card.export.parity_batches == [1, 7, 256] and card.export.parity_max_abs_diff <= 1
    assert card.variant == "stylegan2" and card.arch_params["num_ws"] == 6
    sess = open_generator(path, threads=1)
    g = build_generator(load_checkpoint(ckpt))
    for mode in ("seeded", "const", "none"):
        feeds = build_feeds(card, 3, range(5), noise_mode=mode)
        with torch.no_grad():
            want = g(*[torch.from_numpy(feeds[i.name]) for i in card.inputs]).numpy()
        got = sess.run(feeds).astype(np.float32) / 127.5 - 1.0
        assert np.abs(got - want.transpose(0, 2, 3, 1)).max() <= 1.01 / 127.5
    const = build_feeds(card, 3, range(2), noise_mode="const")
    assert np.array_equal(const["noise_28"][0], const["noise_28"][1])
    assert not build_feeds(card, 3, range(1), noise_mode="none")["noise_14"].any()
    graph = onnx.load(path)
    assert all(
        a.i == 1 for n in graph.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"
    )


def test_progan_checkpoint_exports_its_final_resolution(tiny_onnx):
    ckpt, path, card = tiny_onnx("mnist-progan")
    assert card.arch_params["resolution"] == 32 and card.arch_params["fade_alpha"] == 1.0
    assert [i.name for i in card.inputs] == ["z", "labels"] and card.export.parity_max_abs_diff <= 1
    out = open_generator(path, threads=1).run(build_feeds(card, 0, range(7)))
    assert out.shape == (7, 28, 28, 1) and out.dtype == np.uint8
