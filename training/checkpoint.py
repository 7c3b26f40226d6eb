"""Checkpoints: one safetensors file per save holding weights, optimizer and RNG state.

The model card, run config and non-tensor optimizer state ride in the safetensors header
metadata, so a checkpoint is one file, written to a temp name and renamed (a crash never leaves a
half file), and loading it never unpickles anything. `card.json` beside it is for people.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gan_core.card import ModelCard
from gan_core.errors import UserError, one_line
from gan_core.fileio import atomic_write_bytes, sha256_file  # noqa: F401  (re-exported)
from training.config import TrainConfig

FORMAT = "gan-service-checkpoint/1"
CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")
BEST_LINK = "best.safetensors"  # a run folder's link to its checkpoint with the best quick-evaluation FID


class CheckpointError(UserError):
    """A file that is not a usable checkpoint; the message is one line for the user."""


@dataclass
class Checkpoint:
    path: Path
    step: int
    card: ModelCard
    config: TrainConfig
    tensors: dict[str, torch.Tensor]
    extra: dict

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        """The sub-state-dict stored under `prefix.` (e.g. 'g_ema')."""
        p = prefix + "."
        return {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict) -> dict:
    sd = opt.state_dict()
    meta = {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        meta["state"][str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{prefix}.{idx}.{k}"] = v.detach().clone().contiguous()
                meta["state"][str(idx)][k] = "tensor"
            else:
                meta["state"][str(idx)][k] = v
    return meta


def _unflatten_optimizer(prefix: str, meta: dict, tensors: dict) -> dict:
    state = {}
    for idx, entries in meta["state"].items():
        state[int(idx)] = {
            k: (tensors[f"{prefix}.{idx}.{k}"] if v == "tensor" else v) for k, v in entries.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    out: Path,
    step: int,
    card: ModelCard,
    config: TrainConfig,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    rng: dict[str, torch.Tensor],
    extra: dict | None = None,
    keep: int = 3,
    tensors: dict[str, torch.Tensor] | None = None,
    protect: Path | None = None,
) -> Path:
    """Write `out/ckpt-{step}.safetensors` atomically, refresh `card.json`, prune to `keep` files.

    tensors: further named tensors to keep as they are (e.g. a family's extra state).
    protect: a checkpoint the pruning leaves alone besides the newest `keep` (the run's best).
    """
    tensors = {k: v.detach().clone().contiguous() for k, v in (tensors or {}).items()}
    for name, mod in modules.items():
        for k, v in mod.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().clone().contiguous()
    opt_meta = {name: _flatten_optimizer(f"opt_{name}", opt, tensors) for name, opt in optimizers.items()}
    for name, state in rng.items():
        tensors[f"rng.{name}"] = state.clone().contiguous()
    metadata = {
        "format": FORMAT,
        "step": str(step),
        "card": card.model_dump_json(),
        "config": config.model_dump_json(),
        "optimizers": json.dumps(opt_meta),
        "extra": json.dumps(extra or {}),
    }
    path = checkpoint_path(out, step)
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))
    atomic_write_bytes(Path(out) / "card.json", card.to_json().encode())
    for old in list_checkpoints(out)[:-keep]:
        if protect is None or old.name != protect.name:
            old.unlink(missing_ok=True)
    return path


def checkpoint_path(out: str | os.PathLike, step: int) -> Path:
    return Path(out) / f"ckpt-{step:07d}.safetensors"


def link_best(path: Path) -> None:
    """Point the run folder's `best.safetensors` at `path` (a relative link, swapped in atomically)."""
    link = path.parent / BEST_LINK
    tmp = path.parent / f".{BEST_LINK}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(path.name, tmp)
    os.replace(tmp, link)


def list_checkpoints(out: str | os.PathLike) -> list[Path]:
    out = Path(out)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(target: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder (its newest checkpoint)."""
    p = Path(target)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file or folder")
    if p.is_symlink() and p.is_file():  # best.safetensors: metrics for "its" card go into the checkpoint
        return p.resolve()
    if p.is_dir():
        ckpts = list_checkpoints(p)
        if not ckpts:
            raise CheckpointError(f"{p}: folder holds no ckpt-*.safetensors checkpoint")
        return ckpts[-1]
    return p


def load_checkpoint(target: str | os.PathLike) -> Checkpoint:
    path = resolve_checkpoint(target)
    try:
        raw = path.read_bytes()
        tensors = st_load(raw)
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or not safetensors: {e})"
        ) from None
    n = int.from_bytes(raw[:8], "little")
    meta = json.loads(raw[8 : 8 + n]).get("__metadata__", {}) or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: safetensors file is not a gan-service checkpoint (format {meta.get('format')!r})"
        )
    try:
        card = ModelCard.model_validate_json(meta["card"])
        config = TrainConfig.model_validate_json(meta["config"])
        extra = {"optimizers": json.loads(meta["optimizers"]), **json.loads(meta.get("extra", "{}"))}
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: checkpoint metadata is damaged ({e})") from None
    return Checkpoint(path, int(meta["step"]), card, config, tensors, extra)


def load_resumable(out: str | os.PathLike) -> Checkpoint:
    """The newest checkpoint of a run folder that loads. Newer ones that do not (truncated, not
    safetensors) are renamed to NAME.corrupt, out of the rotation, each named on stderr."""
    skipped = []
    for path in reversed(list_checkpoints(out)):
        try:
            return load_checkpoint(path)
        except CheckpointError as e:
            aside = path.with_name(path.name + ".corrupt")
            with contextlib.suppress(OSError):  # another rank may have moved it already
                path.replace(aside)
            skipped.append(one_line(e))
            print(f"--resume: skipping {one_line(e)}; kept as {aside.name}", file=sys.stderr)
    raise CheckpointError(
        f"{out}: no readable checkpoint to resume from ({'; '.join(skipped) or 'none found'})"
    )


def restore_optimizer(ckpt: Checkpoint, name: str, opt: torch.optim.Optimizer) -> None:
    opt.load_state_dict(_unflatten_optimizer(f"opt_{name}", ckpt.extra["optimizers"][name], ckpt.tensors))


def checkpoint_family(ckpt: Checkpoint):
    """The checkpoint's GAN family, set up from its config and card (no networks built yet)."""
    from training.registry import get_family

    family = get_family(ckpt.config.family)
    return family(ckpt.config.resolved(), family.data_from_card(ckpt.card))


def build_generator(ckpt: Checkpoint, which: str = "g_ema") -> torch.nn.Module:
    """A checkpoint's generator as its family samples and exports it, in eval mode.

    which: '<net>_ema' (the EMA copy with re-estimated BatchNorm, default 'g_ema'), '<net>_ema_raw' or '<net>'.
    """
    family = checkpoint_family(ckpt)
    net = which.removesuffix("_raw").removesuffix("_ema")
    nets = family.build_nets()
    if net not in nets:
        raise KeyError(
            f"{which}: the {family.name!r} family has no network {net!r} (nets: {', '.join(nets)})"
        )
    g = nets[net]
    g.load_state_dict(ckpt.state(which))
    return family.inference_module(g.eval()).eval()
