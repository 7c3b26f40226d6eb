"""Run logging: metrics as JSON lines (append + flush per record), TensorBoard when installed, curves PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path


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
        """On resume, drop records newer than the checkpoint, so the log matches what is kept."""
        if not (self.enabled and self.path.exists()):
            return
        keep = [
            ln
            for ln in self.path.read_text().splitlines()
            if ln.strip() and json.loads(ln).get("step", 0) <= step
        ]
        self.path.write_text("".join(ln + "\n" for ln in keep))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self.tb.add_scalar(k, v, record.get("step", 0))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


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
    tmp = out_png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png
