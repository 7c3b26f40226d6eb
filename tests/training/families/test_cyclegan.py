"""CycleGAN: its losses, the replay buffer, both generators trained from two datasets, exact resume,
28x28x1 <-> 28x28x1 and 28x28x1 <-> 32x32x3 domains, and the contract's two-dataset extension."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from gan_core.datasets import ImageDataset, load_dataset
from gan_core.errors import UserError
from tests.conftest import TINY_CYCLEGAN, tiny_config
from training.checkpoint import build_generator, load_checkpoint
from training.config import preset
from training.families.base import StepContext
from training.families.cyclegan import ReplayBuffer, cycle_loss, identity_loss, lsgan_d, lsgan_g
from training.trainer import Trainer, TrainingError


@pytest.fixture(scope="module")
def domains(domain_pair):
    return load_dataset(domain_pair / "a"), load_dataset(domain_pair / "b")


def _cfg(out, steps=4, **kw):
    return tiny_config(
        "mnist-cyclegan", out, steps=steps, log_every=2, sample_every=100, ckpt_every=100, **kw
    )


def test_losses_are_the_papers():
    x = torch.zeros(2, 1, 4, 4)
    assert cycle_loss(x, x + 0.5).item() == pytest.approx(0.5) and identity_loss(
        x, x - 0.25
    ).item() == pytest.approx(0.25)
    assert cycle_loss(x, x).item() == 0.0
    real, fake = torch.full((2, 1, 3, 3), 1.0), torch.zeros(2, 1, 3, 3)
    assert lsgan_d(real, fake).item() == 0.0 and lsgan_d(fake, real).item() == pytest.approx(
        1.0
    )  # 0.5 x (1 + 1)
    assert lsgan_g(real).item() == 0.0 and lsgan_g(torch.full((2, 1, 3, 3), 3.0)).item() == pytest.approx(4.0)


def _ctx(family, a, b):
    return StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(0), family.nets, lambda: (a, None),
                       lambda: torch.autocast("cpu", enabled=False), next_batch_b=lambda: (b, None))  # fmt: skip


def test_generator_phase_sums_adversarial_cycle_and_identity_terms(tmp_path, domains):
    t = Trainer(_cfg(tmp_path), domains[0], progress=False, ds_b=domains[1])
    fam = t.family
    a = torch.rand(4, 1, 28, 28) * 2 - 1
    b = torch.rand(4, 1, 28, 28) * 2 - 1
    G, F_, DA, DB = (copy.deepcopy(fam.nets[k]) for k in ("g", "f", "d_a", "d_b"))
    with torch.no_grad():
        adv = ((DB(G(a)) - 1) ** 2).mean() + ((DA(F_(b)) - 1) ** 2).mean()
        cyc_a, cyc_b = (F_(G(a)) - a).abs().mean(), (G(F_(b)) - b).abs().mean()
        idt_b, idt_a = (G(b) - b).abs().mean(), (F_(a) - a).abs().mean()
    fam.p = fam.p.model_copy(update={"lambda_a": 10.0, "lambda_b": 4.0})
    got = fam.g_step(_ctx(fam, a, b))
    assert got["g_adv"] == pytest.approx(adv.item(), rel=1e-5)
    assert got["cycle_a"] == pytest.approx(cyc_a.item(), rel=1e-5) and got["cycle_b"] == pytest.approx(
        cyc_b.item(), rel=1e-5
    )
    assert got["identity"] == pytest.approx((idt_a + idt_b).item(), rel=1e-5)
    want = adv + 10 * cyc_a + 4 * cyc_b + 0.5 * (4 * idt_b + 10 * idt_a)  # the paper code's weighting
    assert got["g_loss"] == pytest.approx(want.item(), rel=1e-5)
    assert all(p.grad is None for k in ("d_a", "d_b") for p in fam.nets[k].parameters())  # no D gradients
    assert not torch.equal(G.net[1].weight, fam.nets["g"].net[1].weight)  # both generators stepped
    assert not torch.equal(F_.net[1].weight, fam.nets["f"].net[1].weight)
    assert torch.equal(DA.net[0].weight, fam.nets["d_a"].net[0].weight)  # the discriminators did not
    d = fam.d_step(_ctx(fam, a, b))
    assert d["d_loss"] == pytest.approx(d["d_a"] + d["d_b"]) and fam.pools["a"].count == 4


def test_replay_buffer_keeps_history_and_swaps_half_once_full():
    pool = ReplayBuffer(6, (1, 2, 2))
    gen = torch.Generator().manual_seed(1)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first, gen), first) and pool.count == 4  # filling: fakes pass through
    second = (torch.arange(4.0) + 10).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    out = pool.query(second, gen)
    assert torch.equal(out[:2], second[:2]) and pool.count == 6  # the first two filled the buffer
    history = {float(v) for v in torch.cat([first, second])[:, 0, 0, 0]}
    stream = torch.Generator().manual_seed(7)
    swapped = 0
    for k in range(50):
        new = torch.full((4, 1, 2, 2), 100.0 + k)
        out = pool.query(new, stream)
        for x in out[:, 0, 0, 0].tolist():
            assert x in history or x == 100.0 + k  # a stored image or the new one, never anything else
            swapped += x != 100.0 + k
        history |= {100.0 + k}
    assert 70 < swapped < 130  # about half of 200
    state = pool.state()
    again = ReplayBuffer(6, (1, 2, 2))
    again.load(state)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    probe = torch.full((4, 1, 2, 2), -1.0)
    assert torch.equal(pool.query(probe, g1), again.query(probe, g2))
    assert torch.equal(ReplayBuffer(0, (1, 2, 2)).query(probe, g1), probe)  # pool_size 0: no buffer


def test_trains_from_two_datasets_and_resumes_exactly(tmp_path, domains):
    straight = Trainer(_cfg(tmp_path / "a"), domains[0], progress=False, ds_b=domains[1])
    res = straight.train()
    assert straight.batches == straight.batches_b == 4  # one batch of each domain per step
    ck = load_checkpoint(res.checkpoint)
    assert {k.split(".")[0] for k in ck.tensors} >= {"g", "f", "d_a", "d_b", "g_ema", "f_ema", "g_ema_raw",
                                                      "f_ema_raw", "family", "opt_g", "opt_f", "opt_d_a", "opt_d_b"}  # fmt: skip
    assert int(ck.tensors["family.pool_a.count"][0]) == 16
    t = ck.card.translation
    assert (t.model, t.direction, t.source.name, t.target.name) == ("mnist-cyclegan", "a2b", "a", "b")
    assert t.target.dataset["fingerprint"] == domains[1].fingerprint() and ck.extra["batches_b"] == 4
    rec = json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"g_loss", "cycle_a", "cycle_b", "identity", "d_loss", "d_a", "d_b"} <= set(rec)
    Trainer(_cfg(tmp_path / "b", steps=2), domains[0], progress=False, ds_b=domains[1]).train()
    resumed = Trainer(_cfg(tmp_path / "b"), domains[0], resume=True, progress=False, ds_b=domains[1]).train()
    a, b = load_checkpoint(res.checkpoint).tensors, load_checkpoint(resumed.checkpoint).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TrainingError, match="data_b differs"):
        Trainer(_cfg(tmp_path / "b", steps=6), domains[0], resume=True, progress=False, ds_b=domains[0])
    with pytest.raises(TrainingError, match="data_b: the 'cyclegan' family translates between two datasets"):
        Trainer(_cfg(tmp_path / "c"), domains[0], progress=False)
    with pytest.raises(TrainingError, match="data_b: the 'gan' family trains on one dataset"):
        Trainer(preset("mnist-cdcgan", out=str(tmp_path / "d")), domains[0], progress=False, ds_b=domains[1])


def _colour(ds: ImageDataset, n: int) -> ImageDataset:
    """n digits as 32x32x3: padded, red strokes on a blue ground."""
    x = np.pad(ds.images[:n, 0], ((0, 0), (2, 2), (2, 2)))
    rgb = np.stack([x, np.zeros_like(x), 255 - x], 1)
    return ImageDataset(np.ascontiguousarray(rgb), ds.labels[:n].copy(), ds.class_names, "rgb", "rgb")


def test_grey_28_to_colour_32_domains(tmp_path, domains):
    b = _colour(domains[1], 64)
    res = Trainer(_cfg(tmp_path, steps=2), domains[0], progress=False, ds_b=b).train()
    ck = load_checkpoint(res.checkpoint)
    assert ck.card.image_shape == (3, 32, 32) and ck.card.inputs[0].shape == [28, 28, 1]
    assert ck.card.arch_params["identity_loss"] is False  # shapes differ: no identity term
    g, f = build_generator(ck, "g_ema"), build_generator(ck, "f_ema")
    x = torch.randint(0, 256, (2, 28, 28, 1), dtype=torch.uint8)
    assert g(x).shape == (2, 3, 32, 32)
    assert f(torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)).shape == (2, 1, 28, 28)
    from PIL import Image

    assert Image.open(tmp_path / "samples.png").size == (2 * (10 * 34 + 2), 2 * (6 * 34 + 2))  # 6 rows of 10
    from export import export_checkpoint

    card = export_checkpoint(res.checkpoint, tmp_path / "a2b.onnx", direction="a2b")  # the resize, in ONNX
    assert card.image_shape == (3, 32, 32) and card.export.float_parity_max_abs_diff <= 1e-4


def test_bad_settings_are_refused(tmp_path, domains):
    with pytest.raises(UserError, match="loss: the cyclegan family uses the least-squares loss"):
        _cfg(tmp_path, loss="hinge").resolved()
    with pytest.raises(
        UserError,
        match=r"^arch_params\.g_depth: not a setting of the cyclegan family's networks \(got 3; allowed: ",
    ):
        preset("mnist-cyclegan", arch_params={"g_depth": 3}).resolved()
    with pytest.raises(UserError, match="d_layers: 4 stride-2 layers leave no patch"):
        Trainer(
            _cfg(tmp_path, arch_params={**TINY_CYCLEGAN, "d_layers": 4}),
            domains[0],
            progress=False,
            ds_b=domains[1],
        )
