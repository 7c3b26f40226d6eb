"""The training loop. It knows losses and networks only through the registry's interfaces.

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
from gan_core.imaging import float_to_uint8, grid, png_bytes
from training import __version__
from training.checkpoint import (
    atomic_write_bytes,
    list_checkpoints,
    load_resumable,
    restore_optimizer,
    save_checkpoint,
)
from training.config import TrainConfig
from training.distributed import DistEnv, param_checksum
from training.ema import EMA, recalibrated
from training.models import build_networks
from training.registry import get_loss
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


def mode_seeking_penalty(fake: torch.Tensor, z: torch.Tensor, half: int) -> torch.Tensor:
    """1 / (mean |x1 - x2| / mean |z1 - z2|) over the pairs (i, i + half): small when outputs differ.

    Mao et al. 2019 (MSGAN): a generator that ignores z within a class pays for it directly.
    """
    dx = (fake[:half] - fake[half : 2 * half]).abs().mean()
    dz = (z[:half] - z[half : 2 * half]).abs().mean()
    return 1.0 / (dx / dz + 1e-5)


def _make_optimizer(cfg: TrainConfig, params, lr: float):
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.betas))


def make_card(
    cfg: TrainConfig, ds: ImageDataset, step: int, seconds: float, metrics: dict | None = None
) -> ModelCard:
    return ModelCard(
        name=cfg.name,
        variant=cfg.loss,
        arch=cfg.arch,
        arch_params={**cfg.arch_params, "cond_mode": cfg.cond_mode, "spectral_norm": cfg.spectral_norm},
        latent_dim=cfg.latent_dim,
        conditional=cfg.conditional,
        num_classes=ds.num_classes,
        class_names=list(ds.class_names),
        image_shape=ds.image_shape,
        dataset={
            "name": ds.name,
            "source": Path(ds.source).name,  # the data's name, not where it lives on this machine
            "n": len(ds),
            "fingerprint": ds.fingerprint(),
            **ds.meta,
        },
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


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        ds: ImageDataset,
        resume: bool = False,
        progress: bool = True,
        dist: DistEnv | None = None,
    ):
        self.dist = dist or DistEnv.from_env()
        self.cfg = cfg.resolved()
        self.ds = ds
        self.out = Path(self.cfg.out)
        self.device = self.dist.device if self.dist.enabled else pick_device(self.cfg.device)
        self.progress = progress and self.dist.is_main
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        torch.manual_seed(self.cfg.seed)  # same initial weights on every rank (and in the EMA copy)
        self.G, self.D = build_networks(self.cfg, ds.image_shape, ds.num_classes)
        self.G.to(self.device)
        self.D.to(self.device)
        self.ema = EMA(self.G, self.cfg.ema_decay, self.cfg.ema_start)
        torch.manual_seed(self.cfg.seed + 1 + self.dist.rank)  # per-rank stream (gradient-penalty mixing)
        self.loss = get_loss(self.cfg.loss)(gp_lambda=self.cfg.gp_lambda, clip=self.cfg.clip)
        self.opt_g = _make_optimizer(self.cfg, self.G.parameters(), self.cfg.lr_g)
        self.opt_d = _make_optimizer(self.cfg, self.D.parameters(), self.cfg.lr_d)
        self.noise = torch.Generator().manual_seed(self.cfg.seed * 7919 + 17 + self.dist.rank)
        self.sampler = BatchSampler(
            ds, self.cfg.batch_size, self.cfg.seed, self.dist.rank, self.dist.world, self.device
        )
        self.step, self.batches, self.seconds = 0, 0, 0.0
        self.last_metrics: dict | None = None
        self.quick_eval = None  # set by callers that want periodic metrics (see training.evaluation)
        if resume:
            self._resume()
        elif list_checkpoints(self.out) and self.dist.is_main:
            raise TrainingError(
                f"{self.out} already holds checkpoints; pass --resume to continue or choose another --out"
            )
        self.g_train, self.d_train = self.dist.wrap(self.G), self.dist.wrap(self.D)
        use_amp = self.cfg.amp and self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.log = RunLog(self.out, enabled=self.dist.is_main)

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
        self.G.load_state_dict(ck.state("g"))
        self.D.load_state_dict(ck.state("d"))
        self.ema.model.load_state_dict(ck.state("g_ema_raw"))
        restore_optimizer(ck, "g", self.opt_g)
        restore_optimizer(ck, "d", self.opt_d)
        self.noise.set_state(ck.tensors["rng.noise"])
        torch.set_rng_state(ck.tensors["rng.torch"])
        self.step, self.batches, self.seconds = ck.step, int(ck.extra["batches"]), float(ck.extra["seconds"])
        self.last_metrics = ck.card.metrics

    def inference_generator(self) -> nn.Module:
        """EMA generator with BatchNorm statistics re-estimated: what gets sampled and exported.

        Cached per step, since a checkpoint, a grid and a quick evaluation often share a step.
        """
        if getattr(self, "_infer", (None, None))[0] != self.step:
            self._infer = (self.step, recalibrated(self.ema.model))
        return self._infer[1]

    def card(self) -> ModelCard:
        """The model card of the run as it stands (what a checkpoint written now would carry)."""
        return make_card(self.cfg, self.ds, self.step, self.seconds, self.last_metrics)

    def save(self) -> Path | None:
        if not self.dist.is_main:
            return None
        g_infer = self.inference_generator()
        card = self.card()
        return save_checkpoint(
            self.out,
            self.step,
            card,
            self.cfg,
            {"g": self.G, "d": self.D, "g_ema_raw": self.ema.model, "g_ema": g_infer},
            {"g": self.opt_g, "d": self.opt_d},
            {"noise": self.noise.get_state(), "torch": torch.get_rng_state()},
            extra={"batches": self.batches, "seconds": self.seconds},
            keep=self.cfg.keep,
        )

    # ---------------------------------------------------------------- sampling
    def fixed_latents(self, n_per_row: int = 10):
        """Same latents for every grid of a run: rows are classes for conditional models."""
        g = torch.Generator().manual_seed(2024)
        rows = self.ds.num_classes if self.cfg.conditional else 8
        rows = min(rows, 16)
        z = torch.randn(rows * n_per_row, self.cfg.latent_dim, generator=g)
        labels = torch.arange(rows).repeat_interleave(n_per_row) if self.cfg.conditional else None
        return z, labels, n_per_row

    @torch.no_grad()
    def sample_grid(self, g: nn.Module | None = None) -> Path | None:
        if not self.dist.is_main:
            return None
        g = g or self.inference_generator()
        z, labels, ncols = self.fixed_latents()
        x = g(z.to(self.device), labels.to(self.device) if labels is not None else None).float().cpu().numpy()
        imgs = float_to_uint8(x)
        path = self.out / "samples" / f"step-{self.step:07d}.png"
        data = png_bytes(grid(imgs, ncols), scale=2)
        atomic_write_bytes(path, data)
        atomic_write_bytes(self.out / "samples.png", data)
        return path

    # ---------------------------------------------------------------- loop
    def _ctx(self):
        return self.autocast if self.autocast is not None else contextlib.nullcontext()

    def d_step(self) -> float:
        real, labels = self.sampler.get(self.batches)
        self.batches += 1
        cond = labels if self.cfg.conditional else None
        z = torch.randn(real.shape[0], self.cfg.latent_dim, generator=self.noise).to(self.device)
        with self._ctx():
            with torch.no_grad():
                fake = self.g_train(z, cond)
            both_labels = torch.cat([cond, cond]) if cond is not None else None
            out = self.d_train(torch.cat([real, fake.to(real.dtype)]), both_labels).float()
            loss = self.loss.d_loss(out[: real.shape[0]], out[real.shape[0] :])
            pen = self.loss.penalty(self.d_train, real, fake.float(), cond)
            if pen is not None:
                loss = loss + pen
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.loss.after_d_step(self.D)
        return loss.item()

    def g_step(self) -> float:
        n = self.cfg.batch_size
        z = torch.randn(n, self.cfg.latent_dim, generator=self.noise).to(self.device)
        labels = (
            torch.randint(0, self.ds.num_classes, (n,), generator=self.noise).to(self.device)
            if self.cfg.conditional
            else None
        )
        if labels is not None and self.cfg.diversity_weight:
            labels[n // 2 : 2 * (n // 2)] = labels[: n // 2]  # pairs (i, i + n/2) share a label
        with self._ctx():
            fake = self.g_train(z, labels)
            loss = self.loss.g_loss(self.d_train(fake, labels).float())
            if self.cfg.diversity_weight:
                loss = loss + self.cfg.diversity_weight * mode_seeking_penalty(fake.float(), z, n // 2)
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.ema.update(self.G, self.step)
        return loss.item()

    def _set_learning_rates(self) -> None:
        """Linear decay to 0 over the last part of the run; a pure function of the step (resume-safe)."""
        cfg = self.cfg
        if cfg.lr_decay_from is None or cfg.steps == 0:
            return
        start = cfg.lr_decay_from * cfg.steps
        scale = 1.0 if self.step < start else max(0.0, (cfg.steps - self.step) / (cfg.steps - start))
        for opt, lr in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def _finite_or_stop(self, d_loss: float, g_loss: float) -> None:
        if math.isfinite(d_loss) and math.isfinite(g_loss):
            return
        ckpts = list_checkpoints(self.out)
        kept = f"the last good checkpoint is {ckpts[-1]}" if ckpts else "no checkpoint was written yet"
        raise TrainingError(
            f"training diverged at step {self.step}: d_loss={d_loss}, g_loss={g_loss} (non-finite); {kept}. "
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
        window_t, window_imgs = time.perf_counter(), 0
        d_acc = g_acc = 0.0
        n_acc = 0
        try:
            while self.step < total:
                if time.perf_counter() - start_wall > budget:
                    stopped_by = "max_minutes"
                    break
                self.G.train()
                self._set_learning_rates()
                d_loss = sum(self.d_step() for _ in range(cfg.n_critic)) / cfg.n_critic
                g_loss = self.g_step()
                self._finite_or_stop(d_loss, g_loss)
                self.step += 1
                window_imgs += cfg.batch_size * cfg.n_critic * self.dist.world
                d_acc, g_acc, n_acc = d_acc + d_loss, g_acc + g_loss, n_acc + 1
                if self.step % cfg.log_every == 0 or self.step == total:
                    now = time.perf_counter()
                    rate = window_imgs / max(now - window_t, 1e-9)
                    rec = {"step": self.step, "d_loss": d_acc / n_acc, "g_loss": g_acc / n_acc, "images_per_s": rate,
                           "elapsed_s": round(seconds0 + now - start_wall, 2)}  # fmt: skip
                    self.log.write(rec)
                    if bar is not None:
                        bar.set_postfix(
                            d=f"{rec['d_loss']:.3f}", g=f"{rec['g_loss']:.3f}", img_s=f"{rate:.0f}"
                        )
                    window_t, window_imgs, d_acc, g_acc, n_acc = now, 0, 0.0, 0.0, 0
                if bar is not None:
                    bar.update(1)
                if (
                    self.quick_eval is not None
                    and cfg.eval_every
                    and self.step % cfg.eval_every == 0
                    and self.dist.is_main
                ):
                    self.last_metrics = self.quick_eval(self)
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
            for module in (self.G, self.D, self.ema.model):
                self.dist.sync_buffers(module)
        if finalize and (stopped_by != "interrupt" or self.step > 0):
            ckpt = self.save() or ckpt
            self.sample_grid()
        if self.dist.enabled:
            sums = self.dist.gather_floats([param_checksum(m) for m in (self.G, self.D, self.ema.model)])
            if self.dist.is_main:
                import json

                atomic_write_bytes(self.out / "ranks.json", json.dumps({"checksums": sums}).encode())
        if self.dist.is_main and finalize:
            plot_curves(self.out / "metrics.jsonl", self.out / "curves.png")
        self.log.close()
        return TrainResult(self.out, self.step, ckpt, self.seconds, stopped_by)
