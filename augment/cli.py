"""Generate a synthetic dataset with a generator (local .onnx or the HTTP service), resumable and shardable."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, help="MODEL.onnx, or http://host:port#model for the HTTP service"
    )
    p.add_argument("--out", required=True, help="output folder (rerun the same command on it to resume)")
    p.add_argument(
        "--per-class", type=int, help="images per class (classes interleaved: label of i = classes[i %% k])"
    )
    p.add_argument("--total", type=int, help="images in all, spread by --class-dist (default: uniform)")
    p.add_argument(
        "--class-dist",
        help='with --total: JSON {"class": weight} or [w0, w1, ...], a .json file, or "data" (class frequencies of --data)',
    )
    p.add_argument("--data", help="dataset for --class-dist data and --report (default: MNIST)")
    p.add_argument(
        "--translate",
        metavar="DATASET",
        help="translate mode (image-to-image models: cyclegan-a2b.onnx, or a repair / super-resolution model): image i of the output is the "
        "translation of DATASET's image i, its label kept",
    )
    p.add_argument(
        "--split",
        default="train",
        choices=["train", "test"],
        help="split of --translate (default: %(default)s)",
    )
    p.add_argument("--classes", help="comma-separated class names or ids to generate (default: all)")
    p.add_argument(
        "--format",
        default="folder",
        choices=["folder", "npz", "idx"],
        help="output format (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="latent seed: image i uses latents(seed, i) (default: %(default)s)",
    )
    p.add_argument("--truncation", type=float, help="truncation trick: redraw latent entries with |z| > T")
    p.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix one of the model's code / scalar inputs for every image (see its card's inputs); repeatable",
    )
    p.add_argument(
        "--label-from",
        metavar="code:NAME",
        help="label an unconditional model's images by its categorical code NAME (InfoGAN), using the value -> "
        "class map `gan evaluate` stored in its card; then --per-class / --classes / --class-dist apply",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="images per ORT call / HTTP request (default: %(default)s)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=1000,
        help="images per resumable chunk; part of the job (default: %(default)s)",
    )
    p.add_argument(
        "--shard", type=int, default=0, help="this machine's shard (0-based), e.g. $JOB_COMPLETION_INDEX"
    )
    p.add_argument(
        "--num-shards", type=int, default=1, help="shards in all; merge them with `gan augment-merge`"
    )
    p.add_argument(
        "--threads",
        type=int,
        help="ONNX Runtime intra-op threads (default: GAN_ORT_THREADS or all cores); --engine ray: CPUs per actor (default 1)",
    )
    p.add_argument("--workers", type=int, help="encode/write threads (default: cores + 1, at most 4)")
    p.add_argument(
        "--concurrency", type=int, default=4, help="HTTP backend: requests in flight (default: %(default)s)"
    )
    p.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="local: this process; ray: actors of a Ray cluster (pip install 'gan-service[scale]') (default: %(default)s)",
    )
    p.add_argument(
        "--address",
        help="--engine ray: the cluster (auto, HOST:PORT or ray://HOST:PORT; default $RAY_ADDRESS, else a local Ray)",
    )
    p.add_argument(
        "--actors",
        type=int,
        help="--engine ray: actors (default: the cluster's CPUs / --threads, or its GPUs)",
    )
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from augment.errors import AugmentError
    from augment.job import run_job
    from augment.request import parse_code_args, read_json_arg

    for flag in ("batch_size", "chunk_size", "num_shards", "threads", "workers", "concurrency", "actors"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise AugmentError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    result = run_job(
        args.model, args.out, per_class=args.per_class, total=args.total,
        class_dist=read_json_arg(args.class_dist) if args.class_dist else None, classes=args.classes, data=args.data,
        seed=args.seed, truncation=args.truncation, format=args.format, chunk_size=args.chunk_size,
        batch_size=args.batch_size, shard=args.shard, num_shards=args.num_shards, threads=args.threads,
        workers=args.workers, concurrency=args.concurrency, progress=not args.no_progress,
        codes=parse_code_args(args.code) or None, label_from=args.label_from, translate=args.translate,
        split=args.split, engine=args.engine, address=args.address, actors=args.actors,
    )  # fmt: skip
    cfg = result.config
    print(
        f"shard {result.shard}/{result.num_shards}: {result.planned} images planned, {result.generated} generated now "
        f"in {result.seconds:.1f}s ({result.images_per_s:.0f} img/s) with {result.backend}; job {cfg.config_hash()} in {result.out}"
    )
    if result.complete:
        print(
            f"complete: {cfg.total} images; " + ", ".join(str(p) for p in result.final_files)
            if result.final_files
            else f"complete: {cfg.total} images (already finalized)"
        )
    else:
        print("not complete yet: run the other shards, then `gan augment-merge SHARD_DIRS... --out DIR`")
    return 0
