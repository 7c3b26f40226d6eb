"""Run by test_distributed under torchrun (2 ranks on this machine): every family a registered preset
trains, at its tiny size for 2 steps, into OUT/<family>; each run's ranks.json holds its ranks' weight
checksums. One launch for all families: the process start and rendezvous are most of a tiny run's cost."""

import sys
from pathlib import Path

from gan_core.datasets import load_dataset
from tests.conftest import TINY_CYCLEGAN, family_presets, tiny_config
from training.config import preset
from training.trainer import Trainer

data, out = load_dataset(sys.argv[1]), Path(sys.argv[2])
for family, name in family_presets().items():
    if family == "cyclegan":  # two datasets: the same digits on both sides are enough to train 2 steps
        cfg = preset(name, out=str(out / family), steps=2, batch_size=4, arch_params=TINY_CYCLEGAN, threads=1,
                     eval_every=0)  # fmt: skip
        Trainer(cfg, data, progress=False, ds_b=data).train()
    else:
        Trainer(tiny_config(name, out / family), data, progress=False).train()
