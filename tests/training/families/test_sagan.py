"""SAGAN: the self-attention block, networks with attention and spectral norm in G and D, the preset,
and an fp16 export that keeps the attention softmax in float32."""

from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto
from torch import nn
from torch.nn.utils import parametrize

from export import export_checkpoint
from export.onnx_export import frozen
from training.checkpoint import build_generator, load_checkpoint
from training.config import preset
from training.nets.layers import ConditionalBatchNorm2d, SelfAttention
from training.registry import get_arch


def test_attention_block_starts_as_identity_and_then_mixes_distant_pixels():
    torch.manual_seed(0)
    block = SelfAttention(16, sn=False)
    x = torch.randn(2, 16, 14, 14)
    assert torch.equal(block(x), x)  # the gate starts at 0
    weights = block.attention(x)
    assert weights.shape == (2, 14 * 14, 7 * 7)  # every query over the 2x2 max-pooled keys
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 196))
    assert [m.out_channels for m in (block.theta, block.phi, block.g, block.o)] == [2, 2, 8, 16]
    with torch.no_grad():
        block.gate.fill_(1.0)
    y = block(x)
    far = x.clone()
    far[:, :, 13, 13] += 5.0  # one bottom-right pixel changes ...
    changed = (block(far) - y).abs().amax(1)
    assert changed[:, 0, 0].min() > 1e-4  # ... and the top-left output moves: non-local, unlike a conv


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("conditional", [False, True])
def test_networks_have_attention_at_14_or_16_px_and_spectral_norm_in_both(shape, conditional):
    g, d = get_arch("sagan")(shape, 10, conditional, 8, g_width=4, d_width=4)
    seen = {}
    d_attn = [m for m in d.modules() if isinstance(m, SelfAttention)]
    assert len(d_attn) == 1
    for k, block in (("g", g.attn), ("d", d_attn[0])):
        block.register_forward_hook(lambda m, i, o, k=k: seen.update({k: o.shape[-1]}))
    y = torch.arange(3) if conditional else None
    x = g(torch.randn(3, 8), y)
    assert x.shape == (3, *shape) and x.abs().max() <= 1
    assert d(x, y).shape == (3,)
    assert seen == {"g": 16 if shape[1] > 28 else 14, "d": 16 if shape[1] > 28 else 14}
    for net in (g, d):
        layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
        # every conv and linear layer is spectrally normalised, except G's per-class BatchNorm tables
        tables = {
            id(t) for c in net.modules() if isinstance(c, ConditionalBatchNorm2d) for t in (c.gain, c.bias)
        }
        assert {id(m) for m in layers if not parametrize.is_parametrized(m)} == tables
        assert bool(tables) == (net is g and conditional)


def test_one_stacked_projection_conv_gives_the_three_convs_numbers():
    torch.manual_seed(0)
    block = SelfAttention(32, sn=True).eval()  # eval: spectral norm's power iteration does not step
    x = torch.randn(3, 32, 14, 14)
    query, key, value = block.projections(x)
    with torch.no_grad():
        torch.testing.assert_close(query, block.theta(x).flatten(2))
        torch.testing.assert_close(key, torch.nn.functional.max_pool2d(block.phi(x), 2).flatten(2))
        torch.testing.assert_close(value, torch.nn.functional.max_pool2d(block.g(x), 2).flatten(2))
    assert (query.shape, key.shape, value.shape) == ((3, 4, 196), (3, 4, 49), (3, 16, 49))


def test_generator_options_embedding_conditioning_and_no_spectral_norm():
    g, d = get_arch("sagan")((1, 28, 28), 10, True, 8, g_width=4, d_width=4, g_sn=False, g_cond="embed")
    assert not any(isinstance(m, ConditionalBatchNorm2d) for m in g.modules())
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    assert parametrize.is_parametrized(d.net[0])  # D keeps spectral norm
    z = torch.randn(2, 8)
    g.eval()
    assert not torch.equal(g(z, torch.tensor([0, 1])), g(z, torch.tensor([1, 0])))  # labels reach G
    with pytest.raises(ValueError, match="sagan: g_cond must be one of cbn, embed, got 'film'"):
        get_arch("sagan")((1, 28, 28), 10, True, 8, g_cond="film")


def test_preset_keeps_the_papers_loss_norm_and_discriminator_rate():
    cfg = preset("mnist-sagan").resolved()
    assert (cfg.family, cfg.arch, cfg.loss, cfg.spectral_norm) == ("gan", "sagan", "hinge", True)
    assert (cfg.lr_d, cfg.lr_g, cfg.betas) == (4e-4, 2e-4, (0.0, 0.9))  # two time scales; G 2e-4 (measured)
    # measured choices (README): the default preset's label embedding in G, no SN on G, batch 32
    assert (cfg.arch_params["g_cond"], cfg.arch_params["g_sn"], cfg.batch_size) == ("embed", False, 32)


def test_export_bakes_spectral_norm_and_the_fp16_variant_keeps_softmax_in_fp32(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("mnist-sagan")
    g = build_generator(load_checkpoint(ckpt))
    baked = frozen(g)
    assert not any(parametrize.is_parametrized(m) for m in baked.modules())
    z, y = torch.randn(5, 64), torch.arange(5)
    assert torch.equal(baked(z, y), g(z, y))  # same numbers, and the original still works
    out = tmp_path / "sagan16.onnx"
    card = export_checkpoint(ckpt, out, "fp16", fid_n=0)
    assert card.export.precision == "fp16" and card.export.parity_max_abs_diff <= 4  # the fp16 parity gate
    model = onnx.shape_inference.infer_shapes(onnx.load(out))
    types = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.value_info, *model.graph.input]}
    ops = [n for n in model.graph.node if n.op_type in ("Softmax", "MatMul", "Div")]
    assert [n.op_type for n in ops] == ["MatMul", "Softmax", "MatMul"]  # no spectral-norm arithmetic left
    logits, softmax, mix = ops
    assert {types[t] for t in [*logits.input, *softmax.input, *softmax.output]} == {TensorProto.FLOAT}
    assert types[mix.input[1]] == TensorProto.FLOAT16 and types[mix.output[0]] == TensorProto.FLOAT16
