"""Training throughput of a preset, and the share of step time spent outside the networks.

Runs the real Trainer loop (data slicing, noise, EMA, logging, progress bookkeeping) and a bare
loop doing the same forward/backward/optimizer work on tensors made up front, alternating the two
a few times so machine noise hits both alike. Overhead share = 1 - bare time / full time.

    python benchmarks/bench_train.py [--preset mnist-cdcgan] [--steps 150] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from gan_core.datasets import load_dataset
from training.config import preset
from training.families.terms import mode_seeking_penalty
from training.trainer import Trainer


def bare_loop(trainer: Trainer, steps: int) -> float:
    """The same network work as `steps` trainer steps, minus everything around it."""
    cfg, fam = trainer.cfg, trainer.family
    G, D, loss_fn, opt_g, opt_d = fam.nets["g"], fam.nets["d"], fam.loss, fam.opts["g"], fam.opts["d"]
    B = cfg.batch_size
    real, y = trainer.sampler.get(0)  # a real batch, fetched once: the data path is not timed here
    y = y if cfg.conditional else None
    z = torch.randn(B, cfg.latent_dim)
    yy = torch.cat([y, y]) if y is not None else None
    t0 = time.perf_counter()
    for _ in range(steps):
        for _ in range(cfg.n_critic):
            with torch.no_grad():
                fake = G(z, y)
            out = D(torch.cat([real, fake]), yy)
            loss = loss_fn.d_loss(out[:B], out[B:])
            pen = loss_fn.penalty(D, real, fake, y)
            loss = loss + pen if pen is not None else loss
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        fake = G(z, y)
        loss = loss_fn.g_loss(D(fake, y))
        if cfg.diversity_weight:
            loss = loss + cfg.diversity_weight * mode_seeking_penalty(fake, z, B // 2)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
    return time.perf_counter() - t0


def full_loop(trainer: Trainer, steps: int) -> float:
    trainer.cfg = trainer.cfg.model_copy(update={"steps": trainer.step + steps})
    t0 = time.perf_counter()
    trainer.train(finalize=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="mnist-cdcgan")
    ap.add_argument("--data", default=None)
    ap.add_argument("--steps", type=int, default=150, help="steps per timed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        # Checkpoints and grids are periodic work a real run also does, but at a period far above
        # a timed round; log_every stays at the preset's value.
        cfg = preset(
            args.preset, out=tmp, ckpt_every=10**9, sample_every=10**9, eval_every=0, threads=args.threads
        )
        trainer = Trainer(cfg, ds, progress=False)
        full_loop(trainer, 20)  # warm-up
        bare_loop(trainer, 5)
        fulls, bares = [], []
        for _ in range(args.rounds):
            fulls.append(full_loop(trainer, args.steps))
            bares.append(bare_loop(trainer, args.steps))
    c = trainer.cfg
    imgs = args.steps * c.batch_size * c.n_critic
    f, b = statistics.median(fulls), statistics.median(bares)
    print(
        f"preset {args.preset}: arch={c.arch} {c.arch_params} loss={c.loss} batch={c.batch_size} n_critic={c.n_critic} threads={args.threads}"
    )
    print(f"{'loop':<10}{'s/round':>10}{'steps/s':>10}{'real img/s':>12}")
    print(f"{'trainer':<10}{f:>10.2f}{args.steps / f:>10.1f}{imgs / f:>12.0f}")
    print(f"{'bare nets':<10}{b:>10.2f}{args.steps / b:>10.1f}{imgs / b:>12.0f}")
    print(
        f"share of step time outside the networks: {(1 - b / f) * 100:.1f}% (target < 5%; negative = within noise)"
    )
    print(f"10-minute budget at this rate: ~{600 * args.steps / f:.0f} generator steps")


if __name__ == "__main__":
    main()
