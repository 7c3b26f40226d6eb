"""What families share: `adam()` and the `fused_adam` switch that every family's optimisers follow."""

from __future__ import annotations

import pytest
import torch

from gan_core.datasets import load_dataset
from gan_core.errors import UserError
from tests.conftest import TINY_ARCH, tiny_config
from training.config import TrainConfig
from training.families.common import adam
from training.trainer import Trainer


def test_adam_takes_the_runs_betas_unless_given_and_fuses_only_when_asked():
    w = [torch.nn.Parameter(torch.zeros(3))]
    cfg = TrainConfig(name="x", betas=(0.5, 0.9))
    plain = adam(cfg, w, 1e-3)
    assert plain.defaults["betas"] == (0.5, 0.9) and not plain.defaults["fused"]
    fused = adam(cfg.model_copy(update={"fused_adam": True}), w, 2e-3, betas=(0.0, 0.99), eps=1e-6)
    assert fused.defaults["fused"] is True
    assert (fused.defaults["lr"], fused.defaults["betas"], fused.defaults["eps"]) == (2e-3, (0.0, 0.99), 1e-6)


def _tiny_trainer(name: str, data, out, **overrides) -> Trainer:
    return Trainer(tiny_config(name, out, **overrides), data, progress=False)


@pytest.mark.parametrize("name", sorted(TINY_ARCH))
def test_every_familys_optimisers_follow_fused_adam(name, mnist_small, tmp_path):
    data = load_dataset(mnist_small)
    if tiny_config(name, tmp_path).resolved().optimizer == "rmsprop":  # WGAN's: fused_adam is refused
        with pytest.raises(UserError, match="^fused_adam: this run's optimizer is rmsprop; fused_adam"):
            _tiny_trainer(name, data, tmp_path / "fused", fused_adam=True)
        assert _tiny_trainer(name, data, tmp_path / "plain").family.opts
        return
    fused = _tiny_trainer(name, data, tmp_path / "fused", fused_adam=True).family.opts
    plain = _tiny_trainer(name, data, tmp_path / "plain", fused_adam=False).family.opts
    assert set(fused) == set(plain) and fused
    assert all(o.defaults["fused"] is True for o in fused.values()), name
    assert not any(o.defaults["fused"] for o in plain.values()), name


def test_a_fused_run_trains_the_same_update_to_rounding(mnist_small, tmp_path):
    """Two steps of the fused kernel land where the per-tensor loop does, up to float rounding."""
    data = load_dataset(mnist_small)
    weights = {}
    for fused in (False, True):
        trainer = _tiny_trainer("mnist-began", data, tmp_path / str(fused), fused_adam=fused)
        trainer.train()
        weights[fused] = {k: v.clone() for k, v in trainer.family.nets["g"].state_dict().items()}
    for key, w in weights[False].items():
        assert torch.allclose(weights[True][key], w, atol=1e-5), key
    moved = _tiny_trainer("mnist-began", data, tmp_path / "lr", lr_g=1e-3, fused_adam=True)
    moved.train()
    assert any(
        not torch.allclose(v, weights[True][k], atol=1e-5)
        for k, v in moved.family.nets["g"].state_dict().items()
    )


def test_fused_adam_with_rmsprop_is_refused(mnist_small, tmp_path):
    with pytest.raises(
        UserError, match=r"^fused_adam: this run's optimizer is rmsprop; fused_adam applies to Adam only"
    ):
        _tiny_trainer("mnist-dcgan", load_dataset(mnist_small), tmp_path, loss="wgan", fused_adam=True)
