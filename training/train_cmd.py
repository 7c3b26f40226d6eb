"""Train a GAN from a preset (flags override the preset's fields)."""

from __future__ import annotations

import argparse
import json

from training.train_evaluator_cmd import add_preprocess_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default="mnist-cdcgan",
        metavar="NAME|FILE.yaml",
        help="named run config (`gan presets` lists them) or a preset file's path, e.g. a copy of one in "
        "training/presets/ (default: %(default)s)",
    )
    p.add_argument(
        "--data", "--data-a", dest="data",
        help="IDX folder, image folder (class subfolders = labelled, flat = unlabelled; PNG/JPEG, grayscale or "
        "RGB; optionally train/ + test/) or .npz; default: MNIST (--data-a: domain A of a translation)",
    )  # fmt: skip
    p.add_argument(
        "--data-b", help="second dataset (domain B) of a two-dataset family such as mnist-cyclegan"
    )
    p.add_argument("--out", help="run folder for checkpoints, card, metrics and grids (default: runs/PRESET)")
    p.add_argument(
        "--steps", type=int, help="generator steps in total (a resumed run counts its earlier steps)"
    )
    p.add_argument("--max-minutes", type=float, help="stop (and checkpoint) after this much wall time")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--loss", help="override the preset's loss (minimax, ns, lsgan, wgan, wgan-gp, hinge)")
    p.add_argument("--n-critic", type=int, help="discriminator steps per generator step")
    p.add_argument("--device", help="auto (default), cpu, cuda, mps")
    p.add_argument("--sample-every", type=int)
    p.add_argument("--ckpt-every", type=int)
    p.add_argument("--eval-every", type=int, help="quick evaluation period in steps (0 = off)")
    p.add_argument("--threads", type=int, help="torch intra-op threads")
    add_preprocess_arguments(p)
    p.add_argument(
        "--evaluator",
        help="quick evaluation: default = the evaluator bound to the data (off with a note when there is none); "
        "auto = train one first when there is none; off; or an evaluator name / path stem bound to this data",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="override any config field, e.g. --set arch_params='{\"g_width\":32}'",
    )
    p.add_argument(
        "--download",
        action="store_true",
        help="download MNIST when --data is absent and no local copy exists",
    )
    p.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace):
    from gan_core.errors import UserError
    from training.config import RENAMED, preset

    overrides = {
        "data": args.data, "data_b": args.data_b, "out": args.out, "steps": args.steps, "max_minutes": args.max_minutes, "seed": args.seed,
        "batch_size": args.batch_size, "loss": args.loss, "n_critic": args.n_critic, "device": args.device,
        "sample_every": args.sample_every, "ckpt_every": args.ckpt_every, "eval_every": args.eval_every, "threads": args.threads,
        "image_size": args.image_size, "fit": args.fit, "channels": args.channels, "evaluator": args.evaluator,
    }  # fmt: skip
    nulls: set[str] = set()  # `--set FIELD=null`: preset() drops None (a flag left out), so set these after
    for item in args.set:
        key, sep, val = item.partition("=")
        key = RENAMED.get(key, key)  # an old field name sets the field it names now
        if not sep:
            raise UserError(f"--set expects FIELD=JSON, got {item!r}")
        try:
            overrides[key] = json.loads(val)
        except json.JSONDecodeError:
            overrides[key] = val
        if overrides[key] is None:
            nulls.add(key)
        else:
            nulls.discard(key)  # the last --set of a field wins
    try:
        cfg = preset(args.preset, **overrides)
    except KeyError as e:
        raise UserError(str(e.args[0])) from None
    return type(cfg).model_validate({**cfg.model_dump(), **dict.fromkeys(nulls)}) if nulls else cfg


def run(args: argparse.Namespace) -> int:
    from gan_core.datasets import load_dataset
    from gan_core.fileio import FileWriteError
    from gan_core.preprocess import Preprocess
    from training.checkpoint import list_checkpoints
    from training.evaluation import attach_quick_eval
    from training.sizing import fit_to_data
    from training.trainer import Trainer, TrainingError

    cfg = config_from_args(args)
    cfg.resolved()  # the family's settings are checked before the data is read (which can take minutes)
    prep = Preprocess(cfg.image_size, cfg.fit, cfg.channels)
    ds = load_dataset(cfg.data, "train", download=args.download, prep=prep)
    cfg = fit_to_data(cfg, ds.image_shape, ds.labelled, ds.source)
    ds_b = load_dataset(cfg.data_b, "train") if cfg.data_b is not None else None
    trainer = Trainer(cfg, ds, resume=args.resume, progress=not args.no_progress, ds_b=ds_b)
    try:
        if trainer.cfg.eval_every:
            attach_quick_eval(trainer)
        result = trainer.train()
    except FileWriteError as e:  # e.g. a full disk: one line, and which checkpoint is still good
        trainer.dist.close(wait=False)
        ckpts = list_checkpoints(trainer.out)
        kept = f"the last good checkpoint is {ckpts[-1]}" if ckpts else "no checkpoint was written yet"
        raise TrainingError(f"{e}; {kept}") from None
    except BaseException:
        trainer.dist.close(wait=False)
        raise
    trainer.dist.close()
    if trainer.dist.is_main:
        print(
            f"{result.stopped_by}: {result.step} steps in {result.seconds:.0f}s; checkpoint {result.checkpoint}; samples {result.out / 'samples.png'}"
        )
    return 0
