"""BigGAN-style: conditional BatchNorm, the hierarchical latent, orthogonal init and regularisation,
the truncation trick on the card's latent, and a training step that pays the penalty."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_core.feeds import build_feeds
from gan_core.runtime import open_generator
from training.checkpoint import load_checkpoint
from training.config import preset
from training.families.base import DataInfo
from training.families.biggan import BigGANFamily, orthogonal_penalty, regularised_weights
from training.nets.biggan import BigGANGenerator
from training.nets.layers import ConditionalBatchNorm2d
from training.registry import get_arch, get_family

DIGITS = DataInfo((1, 28, 28), 10, tuple("0123456789"))


def test_conditional_batchnorm_is_batchnorm_scaled_and_shifted_by_the_condition():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(4, 3)
    x, c = torch.randn(8, 4, 5, 5), torch.randn(8, 3)
    plain = torch.nn.functional.batch_norm(x, None, None, training=True, eps=cbn.bn.eps)
    assert torch.allclose(cbn(x, torch.zeros(8, 3)), plain, atol=1e-6)  # zero condition: plain BatchNorm
    gain, bias = 1 + c @ cbn.gain.weight.t(), c @ cbn.bias.weight.t()
    torch.testing.assert_close(cbn(x, c), plain * gain[:, :, None, None] + bias[:, :, None, None])


def test_generator_splits_the_latent_into_one_chunk_per_layer_and_every_chunk_matters():
    torch.manual_seed(0)
    g = BigGANGenerator(60, 10, True, (1, 28, 28), width=4, shared_dim=8).eval()
    assert g.chunk == 20 and len(g.blocks) == 2  # chunk 0 -> first layer, chunks 1, 2 -> the up-blocks
    z, y = torch.randn(1, 60), torch.tensor([3])
    base = g(z, y)
    for k in range(3):
        moved = z.clone()
        moved[:, 20 * k : 20 * (k + 1)] += 1.0
        assert (g(moved, y) - base).abs().max() > 1e-3
    assert (g(z, torch.tensor([4])) - base).abs().max() > 1e-3  # the shared class embedding
    with pytest.raises(ValueError, match=r"latent_dim 64 must split into 3 equal chunks"):
        BigGANGenerator(64, 10, True, (1, 28, 28))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
@pytest.mark.parametrize("conditional", [False, True])
def test_shapes_and_orthogonal_init(shape, conditional):
    latent = 60 if shape[1] < 64 else 64
    g, d = get_arch("biggan")(shape, 10, conditional, latent, g_width=4, d_width=4, shared_dim=4)
    y = torch.arange(2) if conditional else None
    x = g(torch.randn(2, latent), y)
    assert x.shape == (2, *shape) and x.abs().max() <= 1 and d(x, y).shape == (2,)
    w = g.blocks[0].conv1.parametrizations.weight.original.flatten(1)  # [out, in * 9]: rows orthonormal
    torch.testing.assert_close(w @ w.t(), torch.eye(w.shape[0]), atol=1e-5, rtol=0)


def test_g_sn_false_drops_spectral_norm_from_g_only_and_keeps_orthogonal_init():
    from torch.nn.utils import parametrize

    g, d = get_arch("biggan")((1, 28, 28), 10, True, 60, g_width=4, d_width=4, shared_dim=4, g_sn=False)
    assert not any(parametrize.is_parametrized(m) for m in g.modules())
    assert any(parametrize.is_parametrized(m) for m in d.modules())  # D keeps spectral norm
    w = g.blocks[0].conv1.weight.flatten(1)
    torch.testing.assert_close(w @ w.t(), torch.eye(w.shape[0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool", [True, False])
def test_d_hidden_sits_between_the_pooled_or_flattened_trunk_and_the_head(pool):
    from torch.nn.utils import parametrize

    kw = {"g_width": 4, "d_width": 4, "shared_dim": 4}
    _, plain = get_arch("biggan")((1, 28, 28), 10, True, 60, **kw)
    _, d = get_arch("biggan")((1, 28, 28), 10, True, 60, **kw, d_pool=pool, d_hidden=24)
    linear = d.tail[1]  # after the pooling or the flattening
    # 28 px: blocks 4 -> 8 channels, the last map 8 x 7 x 7; pooled 8 features, flattened 392
    assert linear.in_features == (8 if pool else 8 * 7 * 7) and d.head.in_features == 24
    assert d.embed.weight.shape == (10, 24) and parametrize.is_parametrized(linear)
    x, y = torch.randn(3, 1, 28, 28), torch.tensor([0, 4, 9])
    assert d(x, y).shape == (3,) and torch.isfinite(d(x, y)).all()
    # the paper's D (the default) keeps its parameter names, so earlier checkpoints load
    assert set(plain.state_dict()) <= set(d.state_dict()) and not list(plain.tail.parameters())


def test_orthogonal_penalty_counts_only_the_overlap_of_rows():
    torch.manual_seed(0)
    w = torch.randn(5, 3, 2, 2, dtype=torch.float64)
    m = w.flatten(1)
    direct = ((m @ m.t()) * (1 - torch.eye(5, dtype=torch.float64))).pow(2).sum()
    torch.testing.assert_close(orthogonal_penalty([w]), direct)
    tall = torch.randn(30, 4, dtype=torch.float64)  # computed through the small 4 x 4 Gram
    torch.testing.assert_close(
        orthogonal_penalty([tall]),
        ((tall @ tall.t()) * (1 - torch.eye(30, dtype=torch.float64))).pow(2).sum(),
    )
    q, _ = torch.linalg.qr(torch.randn(6, 4, dtype=torch.float64))
    rows = q.t() * torch.tensor([[1.0], [2.0], [3.0], [4.0]], dtype=torch.float64)  # orthogonal, any norms
    assert orthogonal_penalty([rows]).abs() < 1e-10
    torch.testing.assert_close(orthogonal_penalty([w, rows]), direct, atol=1e-9, rtol=0)


def test_family_regularises_g_weights_except_the_shared_embedding():
    cfg = preset("mnist-biggan", arch_params={"g_width": 4, "d_width": 4, "shared_dim": 4}).resolved()
    assert cfg.family_params == {"ortho_reg": 1e-4}
    assert (cfg.lr_d, cfg.lr_g, cfg.betas, cfg.n_critic) == (4e-4, 2e-4, (0.0, 0.999), 1)
    assert (cfg.batch_size, preset("mnist-biggan").arch_params["g_sn"]) == (16, False)  # measured (README)
    fam = get_family("biggan")(cfg, DIGITS)
    fam.build()
    g = fam.nets["g"]
    weights = regularised_weights(g)
    assert not any(w is g.shared.weight for w in weights)
    assert (
        all(w.dim() >= 2 for w in weights) and len(weights) == sum(p.dim() >= 2 for p in g.parameters()) - 1
    )
    torch.testing.assert_close(fam.g_penalty(), 1e-4 * orthogonal_penalty(weights))
    off = BigGANFamily(cfg.model_copy(update={"family_params": {"ortho_reg": 0.0}}), DIGITS)
    assert off.g_penalty() is None


def test_truncation_redraws_the_whole_hierarchical_latent_per_image(tiny_onnx):
    _, path, card = tiny_onnx("mnist-biggan")
    ckpt_card = load_checkpoint(tiny_onnx("mnist-biggan")[0]).card
    assert [(i.name, i.kind, i.shape) for i in card.inputs] == [
        ("z", "latent", [60]),
        ("labels", "class", []),
    ]
    assert card.inputs == ckpt_card.inputs and "truncation" in card.inputs[0].description
    whole = build_feeds(card, 11, range(9), truncation=0.5)["z"]
    assert np.abs(whole).max() <= 0.5
    for i in (0, 4, 8):  # image i's latent whatever the batch around it
        np.testing.assert_array_equal(build_feeds(card, 11, [i], truncation=0.5)["z"][0], whole[i])
    free = build_feeds(card, 11, range(9))["z"]
    kept = np.abs(free) <= 0.5
    np.testing.assert_array_equal(whole[kept], free[kept])  # entries within the threshold are kept
    assert np.abs(free).max() > 0.5 and not np.array_equal(whole, free)
    sess = open_generator(path, threads=1)
    images = sess.run(build_feeds(card, 11, range(9), truncation=0.5))
    for i in (0, 8):
        np.testing.assert_array_equal(sess.run(build_feeds(card, 11, [i], truncation=0.5))[0], images[i])
