"""How many steps a preset reaches in a time budget, measured next to the default preset.

Each preset's real Trainer steps are timed at a few points of its run (a family whose cost changes
over training, e.g. progressive growing, is probed at several steps: its schedule is a function of
the step), presets alternating so machine noise hits all alike. The budget estimate integrates the
probed cost over the run. On a shared machine, `--reference` rescales every figure by the default
preset's known idle speed (README: mnist-cdcgan, 10,000 steps in 593 s on 2 idle cores).

    python benchmarks/bench_family_steps.py --presets mnist-cdcgan mnist-stylegan mnist-progan \
        [--probe-steps 10] [--probes 4] [--threads 1] [--budget-s 600] [--reference mnist-cdcgan=0.0593]

A preset may carry field overrides, `NAME@FIELD=JSON,FIELD=JSON`: `mnist-wgan-gp@gp_every=1` is the
preset with its gradient penalty on every critic step, measured beside the preset as it ships;
`stylegan@family_params={"r1_gamma":0.5,"aux_weight":0.2}` (with `--data demo32`) is the colour preset
with a class head on D (a JSON value may hold commas).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time

import torch

from gan_core.datasets import load_dataset
from training.config import preset
from training.sizing import fit_to_data
from training.trainer import Trainer


def probe_points(steps: int, probes: int) -> list[int]:
    return [round(steps * k / probes) for k in range(probes)]


def time_steps(trainer: Trainer, start: int, n: int) -> float:
    """Seconds per step of n real training steps from step `start` (the schedule follows the step)."""
    trainer.step = start
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.run_step()
        trainer.step += 1
    return (time.perf_counter() - t0) / n


def steps_in_budget(points: list[int], costs: list[float], total: int, budget: float) -> tuple[int, float]:
    """(steps reached within `budget` seconds, seconds for all `total` steps), cost piecewise constant."""
    edges = [*points[1:], total]
    spent, reached = 0.0, None
    for a, b, c in zip(points, edges, costs, strict=True):
        if reached is None and spent + (b - a) * c > budget:
            reached = a + int((budget - spent) / c)
        spent += (b - a) * c
    return (total if reached is None else reached), spent


def preset_with(spec: str, **fields):
    """The preset a `NAME@FIELD=JSON,...` spec names, with its overrides and `fields`."""
    name, _, sets = spec.partition("@")
    overrides = {}
    for item in filter(None, re.split(r",(?=\w+=)", sets)):  # a JSON value may hold commas
        field, _, value = item.partition("=")
        overrides[field] = json.loads(value)
    return preset(name, **{**fields, **overrides})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["mnist-cdcgan", "mnist-stylegan", "mnist-progan"])
    ap.add_argument("--probe-steps", type=int, default=10, help="steps timed per probe")
    ap.add_argument("--probes", type=int, default=4, help="points of the run probed (evenly spaced)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds; the fastest round counts")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="training data (default: MNIST)")
    ap.add_argument("--budget-s", type=float, default=600.0)
    ap.add_argument(
        "--reference", default="mnist-cdcgan=0.0593", help="PRESET=S_PER_STEP measured on the idle machine"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data, "train")
    trainers = {}
    for name in args.presets:
        cfg = preset_with(name, out=tempfile.mkdtemp(), ckpt_every=10**9, sample_every=10**9, eval_every=0,
                     log_every=10**9, threads=args.threads)  # fmt: skip
        cfg = fit_to_data(cfg, ds.image_shape, ds.labelled, ds.source)  # presets sized from the data
        trainers[name] = Trainer(cfg, ds, progress=False)
    points = {n: probe_points(t.cfg.steps, args.probes) for n, t in trainers.items()}
    costs = {n: [float("inf")] * args.probes for n in trainers}
    for _ in range(args.rounds):
        for name, trainer in trainers.items():
            for k, start in enumerate(points[name]):
                costs[name][k] = min(costs[name][k], time_steps(trainer, start, args.probe_steps))
    ref_name, _, ref_cost = args.reference.partition("=")
    scale = float(ref_cost) / costs[ref_name][0] if ref_name in costs else 1.0
    print(f"threads={args.threads}, probe {args.probe_steps} steps x {args.probes} points, best of {args.rounds}; "
          f"idle scale {scale:.3f} (from {args.reference})")  # fmt: skip
    print(f"{'preset':<18}{'steps':>8}{'s/step at probes (scaled)':>40}{'run s':>9}{'steps in budget':>17}")
    for name, t in trainers.items():
        scaled = [c * scale for c in costs[name]]
        reached, total_s = steps_in_budget(points[name], scaled, t.cfg.steps, args.budget_s)
        probes = " ".join(f"{p}:{c:.3f}" for p, c in zip(points[name], scaled, strict=True))
        print(f"{name:<18}{t.cfg.steps:>8}{probes:>40}{total_s:>9.0f}{reached:>17}")


if __name__ == "__main__":
    main()
