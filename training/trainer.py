"""The training loop. It knows no GAN family: networks, optimisers, losses and step phases come
from the run's family (training/families, looked up by name); the loop owns devices, AMP, data parallelism,
EMA, checkpoints and callbacks (grids, quick evaluation, logging, the NaN guard).

Determinism: the data order is a function of (seed, epoch), the noise comes from a generator
whose state is checkpointed, and torch's global RNG (gradient-penalty mixing) is checkpointed
too, so on CPU a resumed run continues bit-identically.
"""

from __future__ import annotations

import contextlib
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gan_core.card import ModelCard
from gan_core.datasets import ImageDataset
from gan_core.errors import UserError
from gan_core.imaging import grid, png_bytes
from training import __version__
from training.checkpoint import (
    atomic_write_bytes,
    checkpoint_path,
    link_best,
    list_checkpoints,
    load_resumable,
    restore_optimizer,
    save_checkpoint,
)
from training.config import TrainConfig
from training.distributed import DistEnv, param_checksum
from training.ema import EMA, recalibrated
from training.families.base import DataInfo, Family, StepContext
from training.registry import get_family
from training.runlog import RunLog, plot_curves


class TrainingError(UserError):
    """A run that cannot go on (diverged, incompatible resume); the message is for the user."""


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class BatchSampler:
    """Batch k of the run is a pure function of (seed, k, rank): epoch permutations from (seed, epoch)."""

    def __init__(
        self, ds: ImageDataset, batch_size: int, seed: int, rank: int, world: int, device: torch.device
    ):
        self.images = torch.from_numpy(ds.images)
        self.labels = torch.from_numpy(ds.labels)
        self.bs, self.seed, self.rank, self.world, self.device = batch_size, seed, rank, world, device
        self.per_epoch = len(ds) // (batch_size * world)
        if self.per_epoch == 0:
            raise TrainingError(
                f"dataset has {len(ds)} images, fewer than one batch of {batch_size} x {world} ranks"
            )
        self._epoch, self._perm = -1, None

    def get(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, j = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm, self._epoch = torch.randperm(len(self.images), generator=g), epoch
        start = (j * self.world + self.rank) * self.bs
        idx = self._perm[start : start + self.bs]
        x = self.images[idx].to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        return x, self.labels[idx].to(self.device, non_blocking=True)


@dataclass
class TrainResult:
    out: Path
    step: int
    checkpoint: Path | None
    seconds: float
    stopped_by: str


PREVIEW_SEED = 2024  # which images of the data sample grids show


def dataset_doc(ds: ImageDataset) -> dict:
    """How a card names its training data."""
    source = Path(ds.source).name  # the data's name, not where it lives on this machine
    return {"name": ds.name, "source": source, "n": len(ds), "fingerprint": ds.fingerprint(), **ds.meta}


def preview_images(ds: ImageDataset, k: int = 10) -> np.ndarray:
    """k fixed images of the data: the first of each class (in class order) of a seeded shuffle, then others."""
    perm = np.random.default_rng([PREVIEW_SEED, len(ds)]).permutation(len(ds))
    labels = ds.labels[perm]
    firsts = [int(perm[np.argmax(labels == c)]) for c in range(ds.num_classes) if (labels == c).any()][:k]
    rest = [int(i) for i in perm[: k + len(firsts)] if int(i) not in firsts][: k - len(firsts)]
    return ds.images[firsts + rest]


def data_info(ds: ImageDataset, ds_b: ImageDataset | None = None) -> DataInfo:
    b = data_info(ds_b) if ds_b is not None else None
    return DataInfo(
        ds.image_shape, ds.num_classes, tuple(ds.class_names), b, dataset_doc(ds), preview_images(ds)
    )


def make_card(
    cfg: TrainConfig,
    ds: ImageDataset,
    step: int,
    seconds: float,
    metrics: dict | None = None,
    family: Family | None = None,
    ds_b: ImageDataset | None = None,
) -> ModelCard:
    family = family or get_family(cfg.family)(cfg.resolved(), data_info(ds, ds_b))
    fields = dict(
        name=cfg.name,
        variant=family.card_variant(),
        arch=cfg.arch,
        arch_params=family.card_arch_params(),
        inputs=family.card_inputs(),
        num_classes=ds.num_classes,
        class_names=list(ds.class_names),
        image_shape=ds.image_shape,
        dataset=dataset_doc(ds),
        steps=step,
        seed=cfg.seed,
        train_seconds=round(seconds, 1),
        versions={
            "gan_service": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        metrics=metrics,
    )
    return ModelCard(**{**fields, **family.card_fields()})


def ema_key(net: str, raw: bool = False) -> str:
    """Checkpoint prefix of a generator's EMA copy: 'g_ema' (BatchNorm re-estimated) / 'g_ema_raw'."""
    return f"{net}_ema_raw" if raw else f"{net}_ema"


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        ds: ImageDataset,
        resume: bool = False,
        progress: bool = True,
        dist: DistEnv | None = None,
        ds_b: ImageDataset | None = None,
    ):
        self.dist = dist or DistEnv.from_env()
        self.cfg = cfg.resolved()
        self.ds, self.ds_b = ds, ds_b
        self.out = Path(self.cfg.out)
        self.device = self.dist.device if self.dist.enabled else pick_device(self.cfg.device)
        self.progress = progress and self.dist.is_main
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        family_cls = get_family(self.cfg.family)
        if family_cls.needs_data_b != (ds_b is not None):
            raise TrainingError(
                f"data_b: the {self.cfg.family!r} family translates between two datasets; give --data-b"
                if family_cls.needs_data_b
                else f"data_b: the {self.cfg.family!r} family trains on one dataset; omit --data-b"
            )
        self.family: Family = family_cls(self.cfg, data_info(ds, ds_b))
        torch.manual_seed(self.cfg.seed)  # same initial weights on every rank (and in the EMA copies)
        self.family.build(self.device)  # its networks on the device, then their optimisers
        self.emas = {
            name: EMA(self.family.nets[name], self.cfg.ema_decay, self.cfg.ema_start)
            for name in self.family.generators
        }
        torch.manual_seed(self.cfg.seed + 1 + self.dist.rank)  # per-rank stream (gradient-penalty mixing)
        self.base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in self.family.opts.items()}
        self.noise = torch.Generator().manual_seed(self.cfg.seed * 7919 + 17 + self.dist.rank)
        self.sampler = BatchSampler(
            ds, self.cfg.batch_size, self.cfg.seed, self.dist.rank, self.dist.world, self.device
        )
        self.sampler_b = (
            None
            if ds_b is None
            else BatchSampler(
                ds_b, self.cfg.batch_size, self.cfg.seed + 1, self.dist.rank, self.dist.world, self.device
            )
        )
        self.step, self.batches, self.batches_b, self.seconds = 0, 0, 0, 0.0
        self.last_metrics: dict | None = None
        self.last_metrics_step = -1
        self.best: dict | None = None  # {"step", "fid"}: the checkpointed step with the lowest quick-eval FID
        self.quick_eval = None  # set by callers that want periodic metrics (see training.evaluation)
        if resume:
            self._resume()
        elif list_checkpoints(self.out) and self.dist.is_main:
            raise TrainingError(
                f"{self.out} already holds checkpoints; pass --resume to continue or choose another --out"
            )
        if self.dist.enabled:
            for net in self.family.nets.values():
                self.dist.share_weights(net)
            self.family.average_gradients = self.dist.average_gradients
        use_amp = self.cfg.amp and self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.log = RunLog(self.out, enabled=self.dist.is_main)

    @property
    def G(self) -> nn.Module:
        return self.family.nets[self.family.generator]

    @property
    def ema(self) -> EMA:
        return self.emas[self.family.generator]

    # ---------------------------------------------------------------- state
    def _resume(self) -> None:
        ckpts = list_checkpoints(self.out)
        if not ckpts:
            raise TrainingError(f"--resume: {self.out} holds no checkpoint to resume from")
        ck = load_resumable(self.out)
        diffs = self.cfg.model_differences(ck.config)
        if diffs:
            raise TrainingError(
                "cannot resume, the run config differs from the checkpoint's: " + "; ".join(diffs)
            )
        if ck.card.dataset.get("fingerprint") != self.ds.fingerprint():
            raise TrainingError(
                f"cannot resume: dataset differs from the checkpoint's ({ck.card.dataset.get('source')})"
            )
        if self.ds_b is not None and ck.extra.get("data_b_fingerprint") != self.ds_b.fingerprint():
            raise TrainingError(
                f"cannot resume: data_b differs from the checkpoint's ({ck.extra.get('data_b_source')})"
            )
        for name, net in self.family.nets.items():
            net.load_state_dict(ck.state(name))
        for name, ema in self.emas.items():
            ema.model.load_state_dict(ck.state(ema_key(name, raw=True)))
        for name, opt in self.family.opts.items():
            restore_optimizer(ck, name, opt)
        self.family.load_extra_state(ck.state("family"))
        # this rank's own streams when the checkpoint has them (same world size), else rank 0's
        own = f".rank{self.dist.rank}" if f"rng.noise.rank{self.dist.rank}" in ck.tensors else ""
        self.noise.set_state(ck.tensors[f"rng.noise{own}"])
        torch.set_rng_state(ck.tensors[f"rng.torch{own}"])
        self.step, self.batches, self.seconds = ck.step, int(ck.extra["batches"]), float(ck.extra["seconds"])
        self.best = ck.extra.get("best")
        self.batches_b = int(ck.extra.get("batches_b", 0))
        self.last_metrics = ck.card.metrics

    def recalibrated_ema(self, net: str | None = None) -> nn.Module:
        """EMA generator with BatchNorm statistics re-estimated (what the checkpoint stores as `g_ema`).

        Cached per step, since a checkpoint, a grid and a quick evaluation often share a step.
        """
        net = net or self.family.generator
        cache = self.__dict__.setdefault("_recalibrated", {})
        if cache.get(net, (None,))[0] != self.step:
            cache[net] = (self.step, recalibrated(self.emas[net].model, self.family.recalibration_inputs))
        return cache[net][1]

    def inference_generator(self, net: str | None = None) -> nn.Module:
        """What gets sampled and exported: the family's inference module around the recalibrated EMA."""
        return self.family.inference_module(self.recalibrated_ema(net))

    def card(self) -> ModelCard:
        """The model card of the run as it stands (what a checkpoint written now would carry)."""
        return make_card(
            self.cfg, self.ds, self.step, self.seconds, self.last_metrics, self.family, self.ds_b
        )

    def rng_states(self) -> dict[str, torch.Tensor]:
        """The noise and torch RNG states to checkpoint: rank 0's as `noise` / `torch`, and under torchrun
        every other rank's as `noise.rankR` / `torch.rankR`, so a resume on the same world size (on
        any split of it into nodes) continues each rank's streams bit-identically. Collective."""
        rng = {"noise": self.noise.get_state(), "torch": torch.get_rng_state()}
        if self.dist.enabled:
            for r, states in enumerate(self.dist.gather_objects(rng)[1:], start=1):
                rng.update({f"{k}.rank{r}": v for k, v in states.items()})
        return rng

    def save(self) -> Path | None:
        rng = self.rng_states()  # every rank takes part; only rank 0 writes
        if not self.dist.is_main:
            return None
        modules = dict(self.family.nets)
        for name, ema in self.emas.items():
            modules[ema_key(name, raw=True)] = ema.model
            modules[ema_key(name)] = self.recalibrated_ema(name)
        extra_tensors = {f"family.{k}": v for k, v in self.family.extra_state().items()}
        new_best = self._is_new_best()
        if new_best:
            self.best = {"step": self.step, "fid": float(self.last_metrics["fid"])}
        extra = {"batches": self.batches, "seconds": self.seconds, "best": self.best}
        if self.ds_b is not None:
            extra.update(batches_b=self.batches_b, data_b_fingerprint=self.ds_b.fingerprint(),
                         data_b_source=self.ds_b.source)  # fmt: skip
        path = save_checkpoint(
            self.out,
            self.step,
            self.card(),
            self.cfg,
            modules,
            self.family.opts,
            rng,
            extra=extra,
            keep=self.cfg.keep,
            tensors=extra_tensors,
            protect=checkpoint_path(self.out, self.best["step"]) if self.best else None,
        )
        if new_best:
            link_best(path)
        return path

    def _is_new_best(self) -> bool:
        """Whether this step's quick evaluation beat every checkpointed one (lower FID): a GAN's newest
        checkpoint is not always its best (instability), so the best one is kept out of the pruning.
        An evaluation with a caveat (a growing G's blurred samples) does not compete."""
        m = self.last_metrics
        if self.last_metrics_step != self.step or not m or m.get("caveat"):
            return False
        if not math.isfinite(m.get("fid", math.nan)):
            return False
        return self.best is None or m["fid"] < self.best["fid"]

    # ---------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample_grid(self, g: nn.Module | None = None) -> Path | None:
        if not self.dist.is_main:
            return None
        if g is not None:
            imgs, ncols = self.family.grid(g, self.device)
        else:
            nets = {n: self.inference_generator(n) for n in self.family.generators}
            imgs, ncols = self.family.grid_nets(nets, self.device)
        path = self.out / "samples" / f"{self.family.grid_name(self.step)}.png"
        data = png_bytes(grid(imgs, ncols), scale=2)
        atomic_write_bytes(path, data)
        atomic_write_bytes(self.out / "samples.png", data)
        return path

    # ---------------------------------------------------------------- loop
    def _ctx(self):
        return self.autocast if self.autocast is not None else contextlib.nullcontext()

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.sampler.get(self.batches)
        self.batches += 1
        return batch

    def _next_batch_b(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.sampler_b.get(self.batches_b)
        self.batches_b += 1
        return batch

    def run_step(self) -> dict[str, float]:
        """One training step: the family's schedule, then every phase due at this step (repeats averaged)."""
        self.family.schedule(self.step)
        for net in self.family.nets.values():
            net.train()
        self._set_learning_rates()
        ctx = StepContext(self.step, self.device, self.noise, self.family.nets, self._next_batch, self._ctx,
                          next_batch_b=self._next_batch_b if self.sampler_b is not None else None)  # fmt: skip
        losses: dict[str, float] = {}
        for phase in self.family.phases():
            if self.step % phase.every:
                continue
            runs = []
            for repeat in range(phase.repeats):
                ctx.extra["repeat"] = repeat  # which of the phase's runs at this step (lazy regularisers)
                runs.append(phase.run(ctx))
            for key in runs[0]:
                losses[key] = sum(r[key] for r in runs) / len(runs)
            if phase.ema:
                for name, ema in self.emas.items():
                    ema.update(self.family.nets[name], self.step)
        return losses

    def _set_learning_rates(self) -> None:
        """Linear decay to 0 over the last part of the run; a pure function of the step (resume-safe)."""
        cfg = self.cfg
        if cfg.lr_decay_from is None or cfg.steps == 0:
            return
        start = cfg.lr_decay_from * cfg.steps
        scale = 1.0 if self.step < start else max(0.0, (cfg.steps - self.step) / (cfg.steps - start))
        for name, opt in self.family.opts.items():
            for group, lr in zip(opt.param_groups, self.base_lrs[name], strict=True):
                group["lr"] = lr * scale

    def _finite_or_stop(self, losses: dict[str, float]) -> None:
        if all(math.isfinite(v) for v in losses.values()):
            return
        ckpts = list_checkpoints(self.out)
        kept = f"the last good checkpoint is {ckpts[-1]}" if ckpts else "no checkpoint was written yet"
        values = ", ".join(f"{k}={v}" for k, v in losses.items())
        raise TrainingError(
            f"training diverged at step {self.step}: {values} (non-finite); {kept}. "
            "Try a lower learning rate, spectral norm, or a gradient-penalty loss."
        )

    def train(self, finalize: bool = True) -> TrainResult:
        """Run to `cfg.steps` or the time budget; `finalize` writes the closing checkpoint, grid and plot."""
        cfg = self.cfg
        total = cfg.steps
        budget = (cfg.max_minutes or math.inf) * 60.0
        start_wall, seconds0 = time.perf_counter(), self.seconds
        self.log.truncate_after(self.step)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=total,
                initial=self.step,
                desc=cfg.name,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                mininterval=1.0,
            )
        stopped_by, ckpt = "steps", None
        window_t, window_batches = time.perf_counter(), 0
        sums: dict[str, float] = {}
        n_acc = 0
        try:
            while self.step < total:
                # the collective only with a budget, and then on every rank alike
                if budget < math.inf and self.dist.rank0_says(time.perf_counter() - start_wall > budget):
                    stopped_by = "max_minutes"
                    break
                batches0 = self.batches
                losses = self.run_step()
                self._finite_or_stop(losses)
                self.step += 1
                window_batches += self.batches - batches0
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_acc += 1
                if self.step % cfg.log_every == 0 or self.step == total:
                    now = time.perf_counter()
                    rate = window_batches * cfg.batch_size * self.dist.world / max(now - window_t, 1e-9)
                    means = {k: v / n_acc for k, v in sums.items()}
                    rec = {"step": self.step, **means, "images_per_s": rate,
                           "elapsed_s": round(seconds0 + now - start_wall, 2)}  # fmt: skip
                    self.log.write(rec)
                    if bar is not None:
                        short = {k.removesuffix("_loss"): f"{v:.3f}" for k, v in means.items()}
                        bar.set_postfix(**short, img_s=f"{rate:.0f}")
                    window_t, window_batches, sums, n_acc = now, 0, {}, 0
                if bar is not None:
                    bar.update(1)
                if (
                    self.quick_eval is not None
                    and cfg.eval_every
                    and self.step % cfg.eval_every == 0
                    and self.dist.is_main
                ):
                    with self.dist.main_rank_borrows_threads():
                        self.last_metrics, self.last_metrics_step = self.quick_eval(self), self.step
                if self.step % cfg.sample_every == 0:
                    self.sample_grid()
                if self.step % cfg.ckpt_every == 0:
                    self.seconds = seconds0 + time.perf_counter() - start_wall
                    ckpt = self.save()
        except KeyboardInterrupt:
            stopped_by = "interrupt"
        finally:
            if bar is not None:
                bar.close()
        self.seconds = seconds0 + time.perf_counter() - start_wall
        if self.dist.enabled:
            for module in [*self.family.nets.values(), *(e.model for e in self.emas.values())]:
                self.dist.sync_buffers(module)
        if finalize and (stopped_by != "interrupt" or self.step > 0):
            ckpt = self.save() or ckpt
            self.sample_grid()
        if self.dist.enabled:
            modules = [*self.family.nets.values(), *(e.model for e in self.emas.values())]
            sums_rank = self.dist.gather_floats([param_checksum(m) for m in modules])
            if self.dist.is_main:
                import json

                atomic_write_bytes(self.out / "ranks.json", json.dumps({"checksums": sums_rank}).encode())
        if self.dist.is_main and finalize:
            plot_curves(self.out / "metrics.jsonl", self.out / "curves.png")
        self.log.close()
        return TrainResult(self.out, self.step, ckpt, self.seconds, stopped_by)
