"""Run by test_distributed under torchrun (2 ranks on this machine): every family a registered preset
trains, at its tiny size for 2 steps, into OUT/<family>; each run's ranks.json holds its ranks' weight
checksums. One launch for all families: the process start and rendezvous are most of a tiny run's cost."""

import sys
from pathlib import Path

from gan_core.datasets import load_dataset
from tests.conftest import family_presets, preset_family, tiny_config
from training.trainer import Trainer

data, out = load_dataset(sys.argv[1]), Path(sys.argv[2])
for family, name in family_presets().items():
    # a two-dataset family gets the same digits on both sides: enough to train 2 steps
    ds_b = data if preset_family(name).needs_data_b else None
    Trainer(tiny_config(name, out / family), data, progress=False, ds_b=ds_b).train()
