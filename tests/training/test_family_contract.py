"""The family contract: presets keep their exact numbers, families are found automatically, a family
must write the contract's required methods, builds its own networks and optimisers and declares
phases that carry their functions, and phases with intervals, repeats, a schedule and extra state
run and resume exactly."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_core.datasets import ImageDataset
from tests.conftest import TINY_ARCH, TINY_REPAIR, TINY_TRANSLATION, tiny_config
from training import registry
from training.checkpoint import build_generator, load_checkpoint
from training.config import TrainConfig, preset
from training.families._autoencoder import AutoencoderGAN
from training.families.base import DataInfo, Family, Phase, StepContext
from training.families.gan import AdversarialFamily
from training.registry import FAMILIES, discover, get_family, register_family
from training.trainer import Trainer

GOLDEN = json.loads((Path(__file__).parent / "golden_weights.json").read_text())["presets"]


@pytest.fixture(scope="module")
def mnist2k(mnist_train):
    return ImageDataset(
        mnist_train.images[:2000].copy(),
        mnist_train.labels[:2000].copy(),
        mnist_train.class_names,
        "mnist2k",
        "mnist2k",
    )


# Tolerances of the golden fingerprints, in units of each tensor's mean |x| (see golden_weights.json).
# Other CPU kernels (AVX2 vs AVX-512, another BLAS) round differently, and 12 GAN steps amplify that:
# measured up to 0.052 on weights and 0.31 on Adam moments (ATen scalar, MKL and oneDNN at SSE4 vs AVX2).
# A changed loss, order of random draws or update moves each weight by about its whole update.
WEIGHT_TOL, MOMENT_TOL = 0.1, 0.6
SAMPLES = 16


def fingerprint(path) -> dict[str, list]:
    """Per float tensor: mean |x| and SAMPLES evenly spaced elements; other tensors: sha256."""
    ck = load_checkpoint(path)
    out = {}
    for key, t in sorted(ck.tensors.items()):
        x = t.contiguous()
        if not x.is_floating_point():
            out[key] = hashlib.sha256(x.numpy().tobytes()).hexdigest()
            continue
        flat = x.double().flatten().numpy()
        pos = np.linspace(0, flat.size - 1, min(flat.size, SAMPLES)).astype(np.int64)
        out[key] = [float(np.abs(flat).mean()), [float(v) for v in flat[pos]]]
    return out


def fingerprint_mismatches(want: dict, got: dict) -> list[str]:
    """Tensors whose fingerprints differ beyond the tolerances (every key must match exactly)."""
    if set(want) != set(got):
        return [f"keys: missing {sorted(set(want) - set(got))}, extra {sorted(set(got) - set(want))}"]
    bad = []
    for key, w in want.items():
        g = got[key]
        if isinstance(w, str):
            if w != g:
                bad.append(f"{key}: bytes differ")
            continue
        tol = (MOMENT_TOL if key.startswith("opt_") else WEIGHT_TOL) * max(w[0], 1e-12)
        off = max([abs(w[0] - g[0])] + [abs(a - b) for a, b in zip(w[1], g[1], strict=True)])
        if off > tol:
            bad.append(f"{key}: off by {off / max(w[0], 1e-12):.3g} x mean |x|")
    return bad


def train_golden(name: str, data, out, **overrides) -> dict[str, list]:
    """The fingerprint of `name` trained for its golden number of steps (fields overridden if asked)."""
    steps = GOLDEN[name]["steps"]
    cfg = preset(
        name,
        out=str(out),
        steps=steps,
        threads=1,
        eval_every=0,
        sample_every=1000,
        ckpt_every=1000,
        **overrides,
    )
    return fingerprint(Trainer(cfg, data, progress=False).train().checkpoint)


# The fields a preset has changed since its fingerprint was recorded: the recorded recipe is trained.
RECORDED_RECIPE = {
    "mnist-cdcgan": {"arch_params": {"g_width": 32, "d_width": 32}},  # before D's hidden layer
    # Radford et al.'s networks unconditional, before D's BatchNorm, its hidden layer, self-conditioning, R1
    # and Adam (0, 0.9)
    "mnist-dcgan": {
        "family": "gan",
        "family_params": {},
        "diversity_weight": 0.0,
        "arch_params": {"g_width": 32, "d_width": 32},
        "r1_gamma": 0.0,
        "gp_every": 1,
        "betas": (0.5, 0.999),
    },
    # before labels, the lazy penalty, 2 critic steps and Adam 2e-4:
    "mnist-wgan-gp": {"conditional": False, "gp_every": 1, "n_critic": 5, "lr_g": 1e-4, "lr_d": 1e-4},
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_presets_train_as_before_the_family_refactor(name, mnist2k, tmp_path):
    got = train_golden(name, mnist2k, tmp_path, **RECORDED_RECIPE.get(name, {}))
    assert fingerprint_mismatches(GOLDEN[name]["tensors"], got) == []


def test_the_fingerprint_tells_a_changed_update_from_rounding(mnist2k, tmp_path):
    """Another learning rate for G (1.5e-4 for the recorded 1e-4) is caught."""
    name = "mnist-wgan-gp"
    changed = train_golden(name, mnist2k, tmp_path, **{**RECORDED_RECIPE[name], "lr_g": 1.5e-4})
    bad = fingerprint_mismatches(GOLDEN[name]["tensors"], changed)
    assert any(b.startswith("g.") for b in bad), bad


def test_families_are_discovered_from_their_folder(tmp_path, monkeypatch):
    import training.families

    pkg_dir = tmp_path / "extra_families"
    pkg_dir.mkdir()
    (pkg_dir / "toy_family_for_discovery.py").write_text(
        textwrap.dedent(
            """
            from training.families.gan import AdversarialFamily
            from training.registry import register_family

            @register_family("toy-discovered")
            class Toy(AdversarialFamily):
                pass
            """
        )
    )
    monkeypatch.setattr(training.families, "__path__", [*training.families.__path__, str(pkg_dir)])
    monkeypatch.setattr(registry, "_DISCOVERED", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "training.families.toy_family_for_discovery", raising=False)
    try:
        assert get_family("toy-discovered").name == "toy-discovered"
        assert get_family("gan") is AdversarialFamily
    finally:
        FAMILIES.pop("toy-discovered", None)
    with pytest.raises(KeyError, match=r"unknown family 'nope'; known: .*gan"):
        get_family("nope")


REQUIRED = {"build_nets", "build_optimizers", "phases", "card_inputs", "grid"}
DIGITS = DataInfo((1, 28, 28), 10, tuple("0123456789"))


def test_the_methods_every_family_must_write_are_abstract():
    assert Family.__abstractmethods__ == REQUIRED
    assert AutoencoderGAN.__abstractmethods__ == {"error"}  # EBGAN's and BEGAN's energies


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_a_family_missing_a_required_method_cannot_be_instantiated(missing):
    written = {name: lambda self, *args: None for name in REQUIRED - {missing}}
    cfg = TrainConfig(name="incomplete")
    with pytest.raises(TypeError, match=rf"abstract method.*\b{missing}\b"):
        type("Incomplete", (Family,), written)(cfg, DIGITS)
    type("Complete", (Family,), {**written, missing: lambda self, *args: None})(cfg, DIGITS)
    with pytest.raises(TypeError, match=r"abstract method.*\berror\b"):
        type("NoEnergy", (AutoencoderGAN,), {})(cfg, DIGITS)


discover()
# one tiny config per family of training/families (not the toy ones test modules register)
TINY_PRESETS = {
    preset(name).family: name for name in sorted(TINY_ARCH) + sorted(TINY_REPAIR) + sorted(TINY_TRANSLATION)
}


def tiny_family(name: str, tmp_path) -> tuple[Family, StepContext]:
    """The family `name` at a tiny size, built on the CPU, and a context of random real batches."""
    cfg = tiny_config(TINY_PRESETS[name], tmp_path)
    two_sided = get_family(name).needs_data_b
    data = DataInfo((1, 28, 28), 10, DIGITS.class_names, b=DIGITS) if two_sided else DIGITS
    n = cfg.batch_size
    fam = get_family(name)(cfg.resolved(), data)
    torch.manual_seed(0)
    fam.build("cpu")
    gen = torch.Generator().manual_seed(0)

    def batch():
        return torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1, torch.randint(0, 10, (n,), generator=gen)

    ctx = StepContext(0, torch.device("cpu"), torch.Generator().manual_seed(1), fam.nets, batch,
                      contextlib.nullcontext, next_batch_b=batch)  # fmt: skip
    return fam, ctx


@pytest.mark.parametrize(
    "name", sorted(n for n, f in FAMILIES.items() if f.__module__.startswith("training.families."))
)
def test_every_family_builds_its_nets_and_optimisers_and_its_phases_carry_their_functions(name, tmp_path):
    """build() keeps the nets and one optimiser per trained net on the family; each phase is a Phase
    whose function returns the values it logs (floats by name), whatever the phase."""
    assert name in TINY_PRESETS, f"no tiny config of the {name!r} family"
    fam, ctx = tiny_family(name, tmp_path)
    assert fam.nets and set(fam.opts) <= set(fam.nets)
    assert all(isinstance(o, torch.optim.Optimizer) for o in fam.opts.values())
    assert not hasattr(fam, "run_phase")
    for step in range(2):  # the tiny infogan clusters at step 0 and trains G and D at step 1
        ctx.step = step
        fam.schedule(step)
        phases = fam.phases()
        assert phases and all(isinstance(p, Phase) and callable(p.fn) for p in phases)
        assert len({p.name for p in phases}) == len(phases)
        for phase in phases:
            logs = phase.run(ctx)
            assert isinstance(logs, dict) and logs, phase.name
            assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values()), (phase.name, logs)


@pytest.mark.parametrize(
    "name", sorted(n for n, f in FAMILIES.items() if f.__module__.startswith("training.families."))
)
def test_a_phase_backward_leaves_the_gradients_of_the_nets_it_does_not_step(name, tmp_path, monkeypatch):
    """step_optimizers' backward reaches only the stepped nets' parameters: a G phase computes no
    weight gradient for D (nor adds to the one D's phase left), and the stepped nets do get theirs."""
    fam, ctx = tiny_family(name, tmp_path)
    owners: dict[int, set[str]] = {}  # a parameter may be stepped by two optimisers (InfoGAN's Q head)
    for k, opt in fam.opts.items():
        for group in opt.param_groups:
            for p in group["params"]:
                owners.setdefault(id(p), set()).add(k)
    params = [p for net in fam.nets.values() for p in net.parameters()]
    calls = []
    step_optimizers = fam.step_optimizers

    def checked(names, loss):
        before = {id(p): None if p.grad is None else p.grad.clone() for p in params}
        step_optimizers(names, loss)
        for p in params:
            was = before[id(p)]
            if owners.get(id(p), set()) & set(names):
                continue
            assert (p.grad is None) if was is None else torch.equal(p.grad, was), (names, owners.get(id(p)))
        stepped = [p for p in params if owners.get(id(p), set()) & set(names) and p.requires_grad]
        assert any(p.grad is not None for p in stepped), names
        calls.append(names)

    monkeypatch.setattr(fam, "step_optimizers", checked)
    for step in range(2):
        ctx.step = step
        fam.schedule(step)
        for phase in fam.phases():
            phase.run(ctx)
    # G's and D's phases were both checked
    assert len({n for c in calls for n in c}) >= min(2, len(fam.opts)), calls


@register_family("test-phases")
class PhasedFamily(AdversarialFamily):
    """The classic family plus a lazy regulariser every 3 steps, a schedule and a counter in the checkpoint."""

    def __init__(self, cfg, data):
        super().__init__(cfg, data)
        self.calls = torch.zeros(3, dtype=torch.int64)  # d, g, r1 phase runs
        self.scheduled: list[int] = []

    def phases(self):
        return [
            Phase("d", self.counted(0, self.d_step), repeats=2),
            Phase("g", self.counted(1, self.g_step), ema=True),
            Phase("r1", self.counted(2, self.r1_step), every=3),
        ]

    def counted(self, phase: int, step):
        """`step`, counting its runs in self.calls[phase]."""

        def run(ctx):
            self.calls[phase] += 1
            return step(ctx)

        return run

    def schedule(self, step):
        self.scheduled.append(step)

    def r1_step(self, ctx):
        real, _ = ctx.next_batch()
        real.requires_grad_(True)
        out = ctx.nets["d"](real, None).sum()
        (grad,) = torch.autograd.grad(out, real, create_graph=True)
        loss = grad.pow(2).flatten(1).sum(1).mean()
        self.optimize("d", loss)
        return {"r1": loss.item()}

    def extra_state(self):
        return {"calls": self.calls}

    def load_extra_state(self, tensors):
        self.calls = tensors["calls"].clone()


def _phased(out, steps, **kw):
    return TrainConfig(name="phased", family="test-phases", arch="dcgan", arch_params={"g_width": 8, "d_width": 8},
                       latent_dim=8, batch_size=16, steps=steps, out=str(out), threads=1, log_every=3,
                       sample_every=100, ckpt_every=100, **kw)  # fmt: skip


def test_phases_intervals_repeats_schedule_and_extra_state_resume_exactly(mnist2k, tmp_path):
    straight = Trainer(_phased(tmp_path / "a", 7), mnist2k, progress=False)
    res = straight.train()
    assert straight.family.calls.tolist() == [14, 7, 3]  # d twice a step, g once, r1 at steps 0, 3, 6
    assert straight.family.scheduled == list(range(7))
    assert straight.batches == 14 + 3  # every phase's real batches came from the run's sampler
    recs = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(r) for r in recs][0] == ["d_loss", "elapsed_s", "g_loss", "images_per_s", "r1", "step"]
    Trainer(_phased(tmp_path / "b", 4), mnist2k, progress=False).train()
    resumed = Trainer(_phased(tmp_path / "b", 7), mnist2k, resume=True, progress=False)
    assert resumed.family.calls.tolist() == [8, 4, 2]  # restored from the checkpoint
    res_b = resumed.train()
    assert resumed.family.calls.tolist() == [14, 7, 3]
    a, b = load_checkpoint(res.checkpoint).tensors, load_checkpoint(res_b.checkpoint).tensors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    g = build_generator(load_checkpoint(res.checkpoint))
    assert g(torch.randn(2, 8)).shape == (2, 1, 28, 28)
