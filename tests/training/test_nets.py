import pytest
import torch

from training.config import TrainConfig
from training.families.base import DataInfo
from training.families.gan import build_arch
from training.registry import ARCHS, get_arch


def build_networks(cfg, shape, num_classes):
    return build_arch(cfg.resolved(), DataInfo(shape, num_classes, tuple(map(str, range(num_classes)))))


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("cond_mode", ["concat", "projection"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_shapes_and_range(arch, conditional, cond_mode, shape):
    params = {"g_width": 8, "d_width": 8} if arch == "dcgan" else {"g_hidden": [16, 16], "d_hidden": [16, 8]}
    cfg = TrainConfig(
        name="t",
        arch=arch,
        conditional=conditional,
        cond_mode=cond_mode,
        arch_params=params,
        latent_dim=7,
        spectral_norm=True,
    )
    g, d = build_networks(cfg, shape, 10)
    z = torch.randn(3, 7)
    y = torch.tensor([0, 5, 9]) if conditional else None
    x = g(z, y)
    assert x.shape == (3, *shape)
    assert x.abs().max() <= 1.0
    assert d(x, y).shape == (3,)


def test_conditional_generator_uses_labels():
    cfg = TrainConfig(name="t", arch="dcgan", conditional=True, arch_params={"g_width": 8, "d_width": 8})
    g, _ = build_networks(cfg, (1, 28, 28), 10)
    g.eval()
    z = torch.randn(1, 64).repeat(2, 1)
    x = g(z, torch.tensor([1, 7]))
    assert not torch.allclose(x[0], x[1])


def test_keras_mlp_sizes():
    g, d = get_arch("mlp")((1, 28, 28), 10, False, 100)
    linears = [m for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (100, 256),
        (256, 512),
        (512, 1024),
        (1024, 784),
    ]
    d_lin = [m for m in d.modules() if isinstance(m, torch.nn.Linear)]
    assert sorted((m.in_features, m.out_features) for m in d_lin) == sorted(
        [(784, 512), (512, 256), (256, 1)]
    )


def test_dcgan_rejects_other_sizes():
    with pytest.raises(ValueError, match="dcgan supports square 28, 32 and 64 px images, got 48x48"):
        get_arch("dcgan")((1, 48, 48), 10, False, 8)
    assert {"mlp", "dcgan"} <= set(ARCHS)


def _layers(m):
    return [(k, tuple(v.shape)) for k, v in m.state_dict().items()]


def test_dcgan_depth_follows_the_image_size():
    """28/32 px: the original two up-samplings (same parameter order, so seeded weights are unchanged); 64 px: three."""
    g, d = get_arch("dcgan")((1, 28, 28), 10, True, 64, g_width=32, d_width=32)
    assert [k for k, _ in _layers(g)] == [
        "embed.weight", "fc.0.weight", "fc.1.weight", "fc.1.bias", "fc.1.running_mean", "fc.1.running_var",
        "fc.1.num_batches_tracked", "up.0.weight", "up.1.weight", "up.1.bias", "up.1.running_mean",
        "up.1.running_var", "up.1.num_batches_tracked", "up.3.weight", "up.3.bias",
    ]  # fmt: skip
    assert dict(_layers(g))["fc.0.weight"] == (128 * 49, 96) and dict(_layers(g))["up.3.weight"] == (
        64,
        1,
        4,
        4,
    )
    assert [k for k, _ in _layers(d)] == ["head.weight", "head.bias", "embed.weight", "net.0.weight", "net.0.bias",
                                          "net.2.weight", "net.2.bias"]  # fmt: skip
    g64, d64 = get_arch("dcgan")((3, 64, 64), 10, True, 128, g_width=32, d_width=32)
    convs = [m for m in g64.up if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(256, 128), (128, 64), (64, 3)]
    assert g64.s == 8 and g64.c0 == 256
    dconvs = [m for m in d64.net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in dconvs] == [(3, 32), (32, 64), (64, 128)]
    assert d64(g64(torch.randn(2, 128), torch.tensor([1, 2])), torch.tensor([1, 2])).shape == (2,)


@pytest.mark.parametrize(("shape", "convs"), [((1, 28, 28), 2), ((3, 32, 32), 2), ((3, 64, 64), 3)])
def test_clusterer_builds_for_each_size_and_reads_its_lowest_loss_head(shape, convs):
    from training.nets.clusterer import Clusterer

    torch.manual_seed(0)
    c = Clusterer(shape, k=10, heads=3, overcluster=20, width=4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in c.modules()) == convs  # down to a side of 7 or 8
    x = torch.rand(6, *shape) * 2 - 1
    out = c(x)
    assert [o.shape for o in out] == [(6, 10)] * 3 + [(6, 20)] * 3  # K-way heads, then over-clustering
    c.record(torch.tensor([-1.0, -2.0, -1.5]))
    assert c.best_head() == 1 and c.loss_avg.tolist() == [-1.0, -2.0, -1.5]  # the first step is taken as is
    for _ in range(200):  # head 2 keeps doing better: the running average follows it
        c.record(torch.tensor([-1.0, -2.0, -2.2]))
    assert c.best_head() == 2 and c.updates.item() == 201
    assert {"loss_avg", "updates"} <= set(c.state_dict())  # the choice is checkpointed with the weights
    c.train()
    labels = c.labels(x)
    assert c.training  # labels() reads BatchNorm's running statistics and leaves the mode as it was
    assert labels.dtype == torch.int64 and labels.shape == (6,)
    with torch.no_grad():
        assert torch.equal(labels, c.eval()(x)[2].argmax(1))


def test_clusterer_races_trunks_then_trains_and_reads_only_the_best_heads_trunk():
    from training.nets.clusterer import Clusterer

    torch.manual_seed(0)
    one = Clusterer((1, 28, 28), k=10, heads=2, overcluster=3, width=4)
    assert not any(k.startswith("rivals") for k in one.state_dict())  # a one-trunk clusterer's names stay
    torch.manual_seed(0)
    c = Clusterer((1, 28, 28), k=10, heads=2, overcluster=3, width=4, trunks=3, pick_after=2)
    assert torch.equal(c.trunk[0].weight, one.trunk[0].weight)  # the first trunk starts as one alone would
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    assert [o.shape[1] for o in c(x)] == [10, 10, 3, 3] * 3  # per trunk: its K-way heads, its over-clustering
    # per trunk [K-way 0, K-way 1, over 0, over 1]; trunk 1's second head does best, trunk 2's over heads
    # (not read) lower still
    step = torch.tensor([-1.0, -1.0, -9.0, -9.0, -1.0, -2.0, -1.0, -1.0, -1.5, -1.0, -20.0, -20.0])
    c.record(step)
    assert c.alive() == [0, 1, 2] and c.best_head() == 3
    c.record(step)  # update 2 = pick_after: trunks 0 and 2 retire
    assert c.alive() == [1] and c.best_head() == 3
    assert torch.isinf(c.loss_avg[[0, 1, 4, 5]]).all() and c.loss_avg[3].item() == -2.0
    assert len(c(x)) == 4  # only the kept trunk's heads
    c.record(torch.tensor([-1.0, -3.0, 0.0, 0.0]))  # after the pick: the kept trunk's heads alone
    assert c.loss_avg[3].item() == pytest.approx(-2.02) and c.best_head() == 3
    with torch.no_grad():
        c.eval()
        assert torch.equal(c.labels(x), c.rivals[0].heads[1](c.rivals[0].trunk(x)).argmax(1))
    again = Clusterer((1, 28, 28), k=10, heads=2, overcluster=3, width=4, trunks=3, pick_after=2)
    again.load_state_dict(c.state_dict())
    assert again.alive() == [1] and again.best_head() == 3  # the pick survives a checkpoint


def test_group_batchnorm_normalises_real_and_fake_apart():
    """Radford et al.'s D BatchNorm (dcgan d_bn=N): each run of N samples has its own statistics in training."""
    from training.nets.common import GroupBatchNorm2d

    torch.manual_seed(0)
    real, fake = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4) * 5 + 2
    bn, ref = GroupBatchNorm2d(3, group=8), torch.nn.BatchNorm2d(3)
    both = bn(torch.cat([real, fake]))
    torch.testing.assert_close(both, torch.cat([ref(real), ref(fake)]))
    torch.testing.assert_close(bn(fake), ref(fake))  # one group: plain BatchNorm
    torch.testing.assert_close(bn.running_mean, ref.running_mean)  # the same updates, in the same order
    bn.eval()
    ref.eval()
    torch.testing.assert_close(bn(torch.cat([real, fake])), ref(torch.cat([real, fake])))


def test_dcgan_d_bn_puts_group_batchnorm_after_every_conv_but_the_first():
    _, d = get_arch("dcgan")((1, 28, 28), 10, False, 16, d_width=8, d_bn=64)
    convs = [m for m in d.net if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in d.net if type(m).__name__ == "GroupBatchNorm2d"]
    assert len(convs) == 2 and len(norms) == 1 and norms[0].group == 64 and convs[1].bias is None
    _, plain = get_arch("dcgan")((1, 28, 28), 10, False, 16, d_width=8)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.net)


@pytest.mark.parametrize("arch", ["dcgan", "sagan"])
def test_d_hidden_adds_a_nonlinear_layer_before_the_head(arch):
    """d_hidden=N: flattened conv features -> N units -> LeakyReLU -> head (and projection) of width N.
    Off, the seeded weights stay those of the golden fingerprints (test_family_contract.py)."""
    _, d = get_arch(arch)((1, 28, 28), 10, True, 16, d_width=8, d_hidden=32, sn=True)
    linears = [m for m in d.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 16 * 7 * 7 and linears[0].out_features == 32
    assert isinstance(d.net[-1], torch.nn.LeakyReLU) and torch.nn.utils.parametrize.is_parametrized(
        linears[0]
    )
    assert d.head.in_features == 32 and d.embed.weight.shape == (10, 32)
    x, y = torch.rand(5, 1, 28, 28) * 2 - 1, torch.arange(5)
    assert d(x, y).shape == (5,) and d.features(x).shape == (5, 32)
    _, plain = get_arch(arch)((1, 28, 28), 10, True, 16, d_width=8, sn=True)  # off: the head reads the map
    assert not any(isinstance(m, torch.nn.Linear) for m in plain.net) and plain.head.in_features == 16 * 7 * 7
