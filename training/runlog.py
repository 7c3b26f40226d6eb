"""Run logging: metrics as JSON lines (append + flush per record), TensorBoard when installed, curves PNG.

metrics.jsonl is append-only, so a kill while logging can leave a torn last line: readers skip
it, and a run that starts or resumes trims it (and any record newer than its checkpoint) with an
atomic rewrite. A damaged line anywhere else is reported, naming the file and line.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from gan_core.errors import UserError
from gan_core.fileio import FileWriteError, atomic_write_bytes


class RunLogError(UserError):
    """A metrics log damaged in the middle (not just a torn last line)."""


def read_records(path: Path) -> tuple[list[dict], bool]:
    """(records, whether a torn last line was skipped) of a JSON-lines file; [] when it is absent."""
    path = Path(path)
    if not path.exists():
        return [], False
    lines = path.read_bytes().split(b"\n")
    records, torn = [], False
    for k, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as e:
            if k < len(lines) - (lines[-1] == b""):
                raise RunLogError(
                    f"{path}: line {k} is not JSON ({e}); only a torn last line is skipped"
                ) from None
            torn = True
    return records, torn


class RunLog:
    def __init__(self, out: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(out) / "metrics.jsonl"
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out) / "tb"))
            except Exception:  # tensorboard is optional
                self.tb = None

    def truncate_after(self, step: int) -> None:
        """On (re)start, drop a torn last line and records newer than the checkpoint, so the log
        matches what is kept."""
        if not (self.enabled and self.path.exists()):
            return
        records, torn = read_records(self.path)
        keep = [r for r in records if r.get("step", 0) <= step]
        if torn or len(keep) != len(records):
            atomic_write_bytes(self.path, "".join(json.dumps(r) + "\n" for r in keep).encode())

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise FileWriteError(self.path, e, "append", "the lines before are kept") from None
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, record.get("step", 0))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: Path) -> list[dict]:
    return read_records(path)[0]


# Keys of a metrics record that are not curves of their own (or are drawn in the first two panels).
NOT_PLOTTED_AS_EXTRA = ("step", "d_loss", "g_loss", "images_per_s", "elapsed_s", "eval")


def extra_keys(recs: list[dict]) -> list[str]:
    """Numeric keys a family logs beside the losses (e.g. BEGAN's k_t and M_global), in first-seen order."""
    keys: dict[str, None] = {}
    for r in recs:
        for k, v in r.items():
            if k not in NOT_PLOTTED_AS_EXTRA and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys.setdefault(k)
    return list(keys)


def plot_curves(metrics_path: Path, out_png: Path) -> Path | None:
    """Loss and throughput curves from metrics.jsonl, a panel of any other logged values (a family's own,
    e.g. BEGAN's k_t and M_global) and the quick evaluations; needs matplotlib (in the train extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    recs = [r for r in read_metrics(metrics_path) if "d_loss" in r]
    evals = [r for r in read_metrics(metrics_path) if "eval" in r]
    if not recs:
        return None
    extras = extra_keys(recs)
    ncols = 2 + bool(extras) + bool(evals)
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.5))
    steps = [r["step"] for r in recs]
    axes[0].plot(steps, [r["d_loss"] for r in recs], label="D loss")
    axes[0].plot(steps, [r["g_loss"] for r in recs], label="G loss")
    axes[0].set_xlabel("generator step")
    axes[0].legend()
    axes[0].set_title("losses")
    axes[1].plot(steps, [r.get("images_per_s", 0) for r in recs])
    axes[1].set_xlabel("generator step")
    axes[1].set_title("real images / s")
    if extras:
        ax = axes[2]
        for key in extras:
            pts = [(r["step"], r[key]) for r in recs if key in r]
            ax.plot(*zip(*pts, strict=True), label=key)
        ax.set_xlabel("generator step")
        ax.legend()
        ax.set_title("other logged values")
    if evals:
        ax = axes[-1]
        for key in ("fid", "class_accuracy", "coverage"):
            pts = [(r["step"], r["eval"][key]) for r in evals if key in r["eval"]]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=key)
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("quick evaluation")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(out_png, buf.getvalue())
    return out_png
