"""Write the procedural colour demo dataset (coloured shapes on textured backgrounds, 10 classes, train + test)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        required=True,
        help="new folder: OUT/{train,test}/<class>/<index>.png (or OUT/{train,test}.npz)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=32,
        choices=[28, 32, 64],
        help="image side in pixels (default: %(default)s)",
    )
    p.add_argument("--train", type=int, default=10_000, help="training images (default: %(default)s)")
    p.add_argument("--test", type=int, default=2_000, help="test images (default: %(default)s)")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="image i of a split is the same for a given seed (default: %(default)s)",
    )
    p.add_argument(
        "--pixel-noise",
        type=float,
        default=4.0,
        help="std of the Gaussian pixel noise in 0..255 levels; 0 = the same scenes, clean (default: %(default)s)",
    )
    p.add_argument(
        "--backgrounds",
        default="gradient,stripes,checker,noise",
        help="comma-separated background kinds to draw from: gradient, stripes, checker, noise, flat "
        "(other sets make other scenes, e.g. flat to see what the textures cost; default: %(default)s)",
    )
    p.add_argument("--format", default="folder", choices=["folder", "npz"], help="default: %(default)s")


def run(args: argparse.Namespace) -> int:
    from gan_core.demo_data import write_demo_data

    rec = write_demo_data(
        args.out, args.size, args.train, args.test, args.seed, args.format, args.pixel_noise,
        tuple(k.strip() for k in args.backgrounds.split(",") if k.strip()),
    )  # fmt: skip
    print(
        f"wrote {rec['train']} train + {rec['test']} test images, {rec['size']}x{rec['size']} RGB, "
        f"{len(rec['classes'])} classes ({', '.join(rec['classes'])}), seed {rec['seed']}, to {args.out}"
    )
    return 0
