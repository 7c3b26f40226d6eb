"""Every family side by side at the same budget: train each preset for M minutes, evaluate, tabulate.

Each preset runs `gan train --preset P --max-minutes M --threads T`, then `gan evaluate RUN --n N
--json` (translation presets: `gan evaluate-translation`, on a domain pair made once with
`gan make-domain-pair`). `--parallel K` runs K presets at once (K x T must not exceed the cores, or
the runs slow each other down and the budget means less). Prints a markdown table (steps reached, FID
and its ratio to the real-vs-real floor, class accuracy for conditional models, modes covered,
precision / recall / coverage, family-specific keys, and the collapse warnings its quick evaluations
printed) and writes every report to OUT/table.json. Reruns skip presets whose run folder already
holds a finished report (delete OUT/<preset> to redo one).

    python benchmarks/family_table.py --minutes 10 --threads 1 --parallel 2 [--presets mnist-cdcgan,mnist-gan] [--out runs/table]

`--steps N` also stops each run at N steps (whichever comes first); `--data D` trains (and so evaluates)
the generative presets on D instead of MNIST; `--pair DIR` gives the translation presets a domain pair
made before (DIR/a, DIR/b) instead of making one from MNIST: for quick checks of the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gan_core.fileio import atomic_write_bytes


def gan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gan", *args], capture_output=True, text=True)


def failure(preset: str, what: str, proc: subprocess.CompletedProcess) -> dict:
    return {"preset": preset, "error": f"{what}: " + ((proc.stderr.strip().splitlines() or ["?"])[-1])}


def run_warnings(run: Path) -> list[str]:
    """The collapse warnings the run's quick evaluations raised (the same rules as during training,
    replayed from metrics.jsonl, so they are there for runs made without this script too)."""
    from types import SimpleNamespace

    from training.evaluation.quick import QuickEval

    state, out = SimpleNamespace(best={}, previous={}), []
    log = run / "metrics.jsonl"
    for line in log.read_text().splitlines() if log.is_file() else []:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a torn last line
            continue
        if "eval" in rec:
            out += [
                f"step {rec['step']}: {m}"
                for m in QuickEval.collapse_warnings(state, rec["eval"], rec["step"])
            ]
    return out


def run_preset(
    preset: str,
    out: Path,
    minutes: float,
    threads: int,
    n: int,
    pair: Path | None,
    steps: int | None = None,
    data: str | None = None,
) -> dict:
    run = out / preset
    report_path = run / "report.json"
    if report_path.is_file():
        return json.loads(report_path.read_text())
    translation = pair is not None and preset.endswith("cyclegan")
    if translation:
        flags = ["--data-a", str(pair / "a"), "--data-b", str(pair / "b")]
    else:
        flags = ["--data", data] if data else []
    if steps is not None:
        flags += ["--steps", str(steps)]
    t0 = time.perf_counter()
    train = gan("train", "--preset", preset, "--out", str(run), "--max-minutes", str(minutes),
                "--threads", str(threads), "--no-progress", *flags)  # fmt: skip
    if train.returncode != 0:
        return failure(preset, "train", train)
    wall = time.perf_counter() - t0
    if translation:
        ev = gan(
            "evaluate-translation", str(run), "--n", str(min(n, 2000)), "--threads", str(threads), "--json"
        )
    else:
        ev = gan("evaluate", str(run), "--n", str(n), "--threads", str(threads), "--json")
    if ev.returncode != 0:
        return failure(preset, "evaluate", ev)
    report = json.loads(ev.stdout[ev.stdout.index("{") :])
    card = json.loads((run / "card.json").read_text())
    report.update(preset=preset, family=card.get("variant"), steps=card["steps"],
                  train_seconds=card["train_seconds"], wall_seconds=round(wall, 1),
                  load_after=os.getloadavg()[0], translation=translation)  # fmt: skip
    atomic_write_bytes(report_path, (json.dumps(report, indent=2) + "\n").encode())
    return report


def extras(r: dict) -> str:
    """Family-specific figures: categorical codes as classifiers, translation per direction."""
    parts = [f"code {k} as classifier {a['accuracy']:.4f}" for k, a in (r.get("code_classes") or {}).items()]
    for d in ("a2b", "b2a"):
        if d in r:
            x = r[d]
            parts.append(
                f"{d}: labels kept {x['label_preservation']:.3f}, FID {x['fid']:.1f}, cycle L1 {x['cycle_l1']:.3f}"
            )
    return "; ".join(parts) or "-"


# The issues' quality targets of each row (issues 12 and 39), shown beside its figures; a preset added
# without one shows "-".
TARGETS = {
    "mnist-cdcgan": "<= 2.5x floor, acc. >= 99%",
    "mnist-dcgan": "<= 1.5x",
    "mnist-lsgan": "<= 1.5x",
    "mnist-wgan": "<= 3x",
    "mnist-wgan-gp": "<= 2x",
    "mnist-sngan": "<= 1.5x",
    "mnist-infogan": "<= 2x, code >= 95%",
    "mnist-acgan": "<= 1x, acc. >= 99%",
    "mnist-stylegan": "<= 1.5x",
    "mnist-progan": "<= 2x",
    "mnist-sagan": "<= 1.5x",
    "mnist-biggan": "<= 1.5x",
    "mnist-ebgan": "<= 3x",
    "mnist-began": "<= 3x",
    "mnist-cyclegan": "labels kept >= 97%",
}


def row(r: dict, default_fid: float | None = None) -> str:
    """One markdown row; `default_fid` (the default preset's FID in the same table) gives the x-default column."""
    if "error" in r:
        return f"| `{r['preset']}` | failed: {r['error']} |" + " |" * 12
    warn = str(len(r.get("warnings", []))) if r.get("warnings") else "0"
    head = f"| `{r['preset']}` | {r['family']} | {r['steps']:,} in {r['train_seconds']:.0f} s |"
    target = TARGETS.get(r["preset"], "-")
    if r.get("translation"):
        return head + f" - | - | - | {target} | - | - | - | - | - | " + extras(r) + f" | {warn} |"
    acc = f"{r['class_accuracy']:.4f}" if r.get("class_accuracy") is not None else "-"
    ratio = f"{r['fid_ratio']:.1f}" if r.get("fid_ratio") else "-"
    vs_default = f"{r['fid'] / default_fid:.2f}" if default_fid else "-"
    modes = f"{r['modes']['covered']}/{r['modes']['num_classes']}" if "modes" in r else "-"
    return (
        f"{head} {r['fid']:.2f} | {ratio} | {vs_default} | {target} | {acc} | {modes} | {r['precision']:.3f} | {r['recall']:.3f} | "
        f"{r['coverage']:.3f} | {extras(r)} | {warn} |"
    )


DEFAULT_PRESET = "mnist-cdcgan"  # the x-default column's reference
HEADER = (
    "| preset | family / loss | steps | FID | x floor | x default | target (x default) | class acc. | modes | precision "
    "| recall | coverage | other | warnings |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2, help="threads per run")
    ap.add_argument("--parallel", type=int, default=1, help="runs at once")
    ap.add_argument("--n", type=int, default=10_000, help="images per evaluation")
    ap.add_argument("--presets", help="comma-separated (default: every mnist-* preset)")
    ap.add_argument("--out", default="runs/table")
    ap.add_argument("--steps", type=int, help="also stop each run at this many steps")
    ap.add_argument("--data", help="train the generative presets on this dataset instead of MNIST")
    ap.add_argument("--pair", help="domain pair (DIR/a, DIR/b) of the translation presets (default: made)")
    args = ap.parse_args()
    from training.presets import PRESETS

    presets = args.presets.split(",") if args.presets else [p for p in PRESETS if p.startswith("mnist-")]
    out = Path(args.out)
    pair = Path(args.pair) if args.pair else None
    if pair is None and any(p.endswith("cyclegan") for p in presets):
        pair = out / "domain-pair"
        if not (pair / "b" / "test.npz").is_file():
            made = gan("make-domain-pair", "--out", str(pair))
            if made.returncode != 0:
                sys.exit(f"make-domain-pair: {made.stderr.strip()}")

    def one(p: str) -> dict:
        print(f"{p}: training {args.minutes:g} min ...", file=sys.stderr, flush=True)
        r = run_preset(p, out, args.minutes, args.threads, args.n, pair, args.steps, args.data)
        r["warnings"] = run_warnings(out / p)
        print(row(r), file=sys.stderr, flush=True)
        return r

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        reports = list(pool.map(one, presets))
    atomic_write_bytes(out / "table.json", (json.dumps(reports, indent=2) + "\n").encode())
    default_fid = next((r.get("fid") for r in reports if r["preset"] == DEFAULT_PRESET), None)
    print(HEADER)
    for r in reports:
        print(row(r, default_fid))
    failed = [r["preset"] for r in reports if "error" in r]
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (their rows above say why)")


if __name__ == "__main__":
    main()
