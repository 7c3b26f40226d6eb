"""How a preset's FID falls with its steps: where its seeds' mean crosses a target, and where a time budget stops it.

A 10-minute row measures one point of each run. This script runs the same preset past the budget and
measures the curve: each seed is trained to --steps (as `gan train`, in a subprocess, every --every-th
checkpoint kept), its checkpoints from --start on are evaluated at --n with the data's evaluator, and
it prints per step the minutes this machine took to get there (from the run's log), each seed's FID
and x floor, and their mean; then the first step at which the mean is at or under --target, and the
steps the --budget-min reached. A run's weights are a function of its seed and its step count, so the
curve's FIDs hold on any machine; only the minutes column (and so where the budget falls) is this
machine's, and it is honest only when training had the machine to itself.

    python benchmarks/fid_vs_steps.py --preset stylegan --data demo32 --seeds 0 1 2 --steps 18000 \
        --every 2000 --start 6000 --n 10000 --threads 2 --floor 2.128 --target 35 --out runs/fid-vs-steps

A seed whose run already holds its last checkpoint is not trained again, an interrupted one resumes;
evaluations are kept in OUT/evals.jsonl (a torn last line is skipped), so a rerun only measures what
is missing. --set FIELD=JSON passes overrides to `gan train` (the same for every seed). The plot goes
to OUT/fid-vs-steps.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from training.checkpoint import checkpoint_path, list_checkpoints
from training.runlog import read_records

REPO = Path(__file__).resolve().parent.parent


def train(args: argparse.Namespace, seed: int, run: Path) -> None:
    """`gan train` to --steps keeping every --every-th checkpoint; resumes a run that stopped early."""
    if checkpoint_path(run, args.steps).exists():
        return
    keep = args.steps // args.every + 2
    cmd = [sys.executable, "-m", "gan.cli", "train", "--preset", args.preset, "--out", str(run),
           "--steps", str(args.steps), "--seed", str(seed), "--no-progress",
           "--set", f"ckpt_every={args.every}", "--set", f"keep={keep}"]  # fmt: skip
    if args.data:
        cmd += ["--data", args.data]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    for s in args.set:
        cmd += ["--set", s]
    if list_checkpoints(run):
        cmd.append("--resume")
    print(f"seed {seed}: {' '.join(cmd[2:])}", flush=True)
    if subprocess.run(cmd, cwd=REPO).returncode:
        sys.exit(f"fid_vs_steps: training seed {seed} failed (its message above); rerun to resume it")


def minutes_at(run: Path) -> dict[int, float]:
    """Step -> minutes of training to reach it, from the run's log (logged steps only)."""
    return {
        r["step"]: r["elapsed_s"] / 60 for r in read_records(run / "metrics.jsonl")[0] if "elapsed_s" in r
    }


def evaluate(args: argparse.Namespace, path: Path) -> dict:
    """The checkpoint's FID and floor at --n against the data, with the data's own evaluator."""
    from training.evaluation import evaluate_samples, sample_target

    report = evaluate_samples(sample_target(path, args.n, 0), args.data, None, 0, "auto")
    return {"fid": report["fid"], "floor": report.get("fid_floor"), "evaluator": report["evaluator"]}


def cached_evals(path: Path) -> dict[tuple[int, int], dict]:
    return {(r["seed"], r["step"]): r for r in read_records(path)[0]}


def first_at_or_under(steps: list[int], means: list[float], target: float) -> int | None:
    """The first step whose mean is at or under target and stays so at every later measured step."""
    for i, step in enumerate(steps):
        if all(m <= target for m in means[i:]):
            return step
    return None


def budget_steps(minutes: dict[int, float], budget: float) -> int | None:
    """The last logged step reached within `budget` minutes (None when the log ends before it)."""
    within = [s for s, m in minutes.items() if m <= budget]
    if not within or max(minutes.values()) < budget:
        return None
    return max(within)


def plot(out: Path, steps, ratios: dict[int, list[float]], means, target, budget_marks) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for seed, r in ratios.items():
        ax.plot(steps, r, marker="o", ms=3, lw=1, alpha=0.6, label=f"seed {seed}")
    ax.plot(steps, means, marker="o", color="black", lw=2, label="mean of the seeds")
    if target:
        ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target:g}x")
    for s in budget_marks.values():
        ax.axvline(s, color="grey", ls=":", lw=1)
    if budget_marks:
        ax.plot([], [], color="grey", ls=":", label="where the time budget stopped each seed")
    ax.set_xlabel("training steps")
    ax.set_ylabel("FID / floor")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--data", help="training and reference data (default: the preset's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, required=True, help="train each seed to this step")
    p.add_argument("--every", type=int, default=2000, help="keep and measure every this many steps")
    p.add_argument("--start", type=int, default=0, help="first step measured (0: --every)")
    p.add_argument("--n", type=int, default=10_000, help="samples per evaluation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--floor", type=float, help="divide by this floor (default: each report's own)")
    p.add_argument("--target", type=float, help="the x floor target the mean should reach")
    p.add_argument("--budget-min", type=float, default=10.0, help="the time budget to mark (minutes)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=JSON", help="passed to gan train")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.steps < 1 or args.every < 1 or args.steps % args.every:
        p.error(f"--steps must be a positive multiple of --every, got {args.steps} and {args.every}")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = list(range(max(args.start, args.every), args.steps + 1, args.every))
    if not steps:
        p.error(f"--start {args.start} is past --steps {args.steps}")
    runs = {seed: out / f"seed-{seed}" for seed in args.seeds}
    for seed, run in runs.items():
        train(args, seed, run)
    evals_path = out / "evals.jsonl"
    evals = cached_evals(evals_path)
    for seed, run in runs.items():
        for step in steps:
            if (seed, step) not in evals:
                path = checkpoint_path(run, step)
                if not path.exists():
                    sys.exit(f"fid_vs_steps: {path} is missing (pruned, or the run stopped early)")
                rec = {"seed": seed, "step": step, **evaluate(args, path)}
                with open(evals_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
                evals[(seed, step)] = rec
                print(f"seed {seed} step {step}: fid {rec['fid']:.2f}", flush=True)

    if args.floor is None and any(e["floor"] is None for e in evals.values()):
        sys.exit(
            "fid_vs_steps: the reports carry no floor for this data; give --floor (its real-vs-real FID)"
        )
    minutes = {seed: minutes_at(run) for seed, run in runs.items()}
    ratios = {seed: [evals[(seed, s)]["fid"] / (args.floor or evals[(seed, s)]["floor"]) for s in steps]
              for seed in runs}  # fmt: skip
    means = [sum(r[i] for r in ratios.values()) / len(ratios) for i in range(len(steps))]
    # the seeds' mean minutes to each measured step, over the seeds whose log has that step
    mean_minutes = {}
    for step in steps:
        mins = [minutes[s][step] for s in runs if step in minutes[s]]
        if mins:
            mean_minutes[step] = sum(mins) / len(mins)
    head = "step  minutes " + " ".join(f"{'seed ' + str(s) + ' FID (x)':>20}" for s in runs) + "   mean x"
    print(f"\n{args.preset} on {args.data or 'its data'}, n={args.n}, floor "
          f"{args.floor if args.floor else 'per report'}\n{head}")  # fmt: skip
    for i, step in enumerate(steps):
        cells = " ".join(f"{evals[(s, step)]['fid']:>11.2f} ({ratios[s][i]:>5.1f}x)" for s in runs)
        m = f"{mean_minutes[step]:7.1f}" if step in mean_minutes else "      -"
        print(f"{step:>6} {m} {cells} {means[i]:>8.1f}")
    reached = {s: r for s in runs if (r := budget_steps(minutes[s], args.budget_min)) is not None}
    if reached:
        print(f"steps reached in {args.budget_min:g} minutes: "
              + ", ".join(f"seed {s} {r:,}" for s, r in reached.items()))  # fmt: skip
    if args.target:
        at = first_at_or_under(steps, means, args.target)
        if at is None:
            print(f"the mean stays above {args.target:g}x up to step {steps[-1]:,}")
        else:
            when = f", {mean_minutes[at]:.1f} minutes here" if at in mean_minutes else ""
            print(f"the mean is at or under {args.target:g}x from step {at:,}{when}")
    plot(out / "fid-vs-steps.png", steps, ratios, means, args.target, reached)
    print(f"wrote {out / 'fid-vs-steps.png'}")


if __name__ == "__main__":
    main()
