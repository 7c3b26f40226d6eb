"""Every family side by side at the same budget: train each preset for M minutes, evaluate, tabulate.

One preset after the other (never two at once: they would share the cores), each with
`gan train --preset P --max-minutes M --threads T`, then `gan evaluate RUN --n N --json`. Prints a
markdown table (steps reached, FID and its ratio to the real-vs-real floor, class accuracy for
conditional models, modes covered, precision / recall / coverage, and any family-specific keys of the
report) and writes every report to OUT/table.json. Reruns skip presets whose run folder already holds
a finished report (delete OUT/<preset> to redo one).

    python benchmarks/family_table.py --minutes 10 --threads 2 [--presets mnist-cdcgan,mnist-gan] [--out runs/table]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gan_core.fileio import atomic_write_bytes

EXTRA_KEYS = ("code_accuracy", "label_preservation", "cycle_l1")  # family-specific report keys, when present


def gan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gan", *args], capture_output=True, text=True)


def run_preset(preset: str, out: Path, minutes: float, threads: int, n: int) -> dict:
    run = out / preset
    report_path = run / "report.json"
    if report_path.is_file():
        return json.loads(report_path.read_text())
    t0 = time.perf_counter()
    train = gan("train", "--preset", preset, "--out", str(run), "--max-minutes", str(minutes),
                "--threads", str(threads), "--no-progress")  # fmt: skip
    if train.returncode != 0:
        return {"preset": preset, "error": (train.stderr.strip().splitlines() or ["?"])[-1]}
    wall = time.perf_counter() - t0
    ev = gan("evaluate", str(run), "--n", str(n), "--threads", str(threads), "--json")
    if ev.returncode != 0:
        return {"preset": preset, "error": (ev.stderr.strip().splitlines() or ["?"])[-1]}
    report = json.loads(ev.stdout[ev.stdout.index("{") :])
    card = json.loads((run / "card.json").read_text())
    report.update(preset=preset, family=card.get("variant"), steps=card["steps"],
                  train_seconds=card["train_seconds"], wall_seconds=round(wall, 1),
                  load_after=os.getloadavg()[0])  # fmt: skip
    atomic_write_bytes(report_path, (json.dumps(report, indent=2) + "\n").encode())
    return report


def row(r: dict) -> str:
    if "error" in r:
        return f"| `{r['preset']}` | failed: {r['error']} |" + " |" * 9
    acc = f"{r['class_accuracy']:.4f}" if r.get("class_accuracy") is not None else "-"
    extra = ", ".join(f"{k} {r[k]:.4f}" for k in EXTRA_KEYS if isinstance(r.get(k), (int, float)))
    ratio = f"{r['fid_ratio']:.1f}" if r.get("fid_ratio") else "-"
    return (
        f"| `{r['preset']}` | {r['family']} | {r['steps']:,} in {r['train_seconds']:.0f} s | {r['fid']:.2f} | {ratio} | "
        f"{acc} | {r['modes']['covered']}/{r['modes']['num_classes']} | {r['precision']:.3f} | {r['recall']:.3f} | "
        f"{r['coverage']:.3f} | {extra or '-'} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=10_000, help="images per evaluation")
    ap.add_argument("--presets", help="comma-separated (default: every preset)")
    ap.add_argument("--out", default="runs/table")
    args = ap.parse_args()
    from training.config import PRESETS

    presets = args.presets.split(",") if args.presets else list(PRESETS)
    out = Path(args.out)
    reports = []
    for p in presets:
        print(f"{p}: training {args.minutes:g} min ...", file=sys.stderr, flush=True)
        reports.append(run_preset(p, out, args.minutes, args.threads, args.n))
        print(row(reports[-1]), file=sys.stderr, flush=True)
    atomic_write_bytes(out / "table.json", (json.dumps(reports, indent=2) + "\n").encode())
    print(
        "| preset | family / loss | steps | FID | x floor | class acc. | modes | precision | recall | coverage | other |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in reports:
        print(row(r))


if __name__ == "__main__":
    main()
