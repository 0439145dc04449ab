r"""`keras-vae sample` and `keras-vae interpolate`: pictures of a trained run -> PNG.

```none
keras-vae sample runs/a -n 64 --temperature 0.8 --seed 1 --out grid.png
keras-vae interpolate runs/a --pairs 4 --steps 10 --method slerp --out path.png
```

The images are the model's own (`VAE.sample`, `VAE.interpolate`), drawn by
`keras_vae.plotting`.
"""

import pathlib

import numpy as np

from keras_vae import _util, plotting, runs
from keras_vae.cli import _common, _options
from keras_vae.cli._errors import EXIT_OK, UsageError
from keras_vae.cli._options import Option, integer, nonnegative_float, nonnegative_int, \
    positive_int

SAMPLE_OPTIONS = (
    _options.run_dir_option(),
    Option("num", ("-n", "--num"), type=positive_int, default=64, help="number of samples"),
    Option("temperature", ("--temperature",), type=nonnegative_float, default=1.0,
           metavar="T", help="scale of the prior's spread"),
    Option("seed", ("--seed",), type=nonnegative_int, default=0, help="seed"),
    Option("ncols", ("--ncols",), type=positive_int, help="columns of the grid",
           default_help="~sqrt(n)"),
    Option("scale", ("--scale",), type=positive_int, default=2, help="pixel magnification"),
    Option("npy", ("--npy",), metavar="FILE", help="also save the images as a .npy array"),
    Option("out", ("--out",), metavar="PNG", help="output",
           default_help="RUN_DIR/pictures/sample_T<T>_seed<S>.png"),
) + _options.COMMON

INTERPOLATE_OPTIONS = (
    _options.run_dir_option(),
    Option("pairs", ("--pairs",), type=positive_int, default=4, help="random test pairs"),
    Option("indices", ("--indices",), type=nonnegative_int, nargs=2, metavar=("A", "B"),
           help="interpolate between these two test examples instead"),
    Option("steps", ("--steps",), type=integer, default=10,
           help="images per path, ends included"),
    Option("method", ("--method",), choices=("linear", "slerp"), default="linear",
           help="path"),
    Option("seed", ("--seed",), type=nonnegative_int, default=0,
           help="seed of the pair choice"),
    Option("out", ("--out",), metavar="PNG", help="output",
           default_help="RUN_DIR/pictures/interpolate_<method>_seed<S>.png"),
) + _options.COMMON


def register(subparsers):
    _options.add_command(subparsers, "sample", SAMPLE_OPTIONS, run,
                         help="a grid of samples from the prior -> PNG")
    _options.add_command(subparsers, "interpolate", INTERPOLATE_OPTIONS, run_interpolate,
                         help="latent interpolations between test images -> PNG")


def run(args):
    """`keras-vae sample`: n images from the prior at a temperature, as a grid."""
    run_dir = _common.require_run_dir(args)
    model, _ = runs.load_run_model(run_dir)
    n, t, seed = args.num, args.temperature, args.seed
    images = np.asarray(model.sample(n, temperature=t, seed=seed), "float32")
    out = pathlib.Path(args.out or run_dir / "pictures" / f"sample_T{t:g}_seed{seed}.png")
    image = plotting.image_grid(images, ncols=args.ncols, scale=args.scale, path=out)
    if args.npy:
        np.save(args.npy, images)
    _common.say(f"keras-vae: {n} samples at temperature {t:g} (seed {seed}) -> {out} "
                f"({image.size[0]}x{image.size[1]})")
    return EXIT_OK


def run_interpolate(args):
    """`keras-vae interpolate`: latent paths between test images (random pairs or two indices)."""
    run_dir = _common.require_run_dir(args)
    if args.indices is not None and "pairs" in args.given:
        raise UsageError("--indices and --pairs conflict: give two test indices or a number "
                         "of random pairs")
    model, config = runs.load_run_model(run_dir)
    x, _ = _common.eval_data(config)
    if args.indices is not None:
        if max(args.indices) >= len(x):
            raise UsageError(f"--indices must be < {len(x)} (the test set's size)")
        ia, ib = np.asarray(args.indices[:1]), np.asarray(args.indices[1:])
    else:
        pairs = args.pairs
        if 2 * pairs > len(x):
            raise UsageError(f"--pairs {pairs} needs {2 * pairs} test examples; there are "
                             f"{len(x)}")
        idx = np.random.default_rng(args.seed).choice(len(x), size=2 * pairs, replace=False)
        ia, ib = idx[:pairs], idx[pairs:]
    try:
        strips = model.interpolate(x[ia], x[ib], steps=args.steps, method=args.method)
    except ValueError as error:  # the model's rules (e.g. steps >= 2)
        raise UsageError(f"cannot interpolate: {_util.first_line(error)}") from error
    out = pathlib.Path(args.out or run_dir / "pictures" /
                       f"interpolate_{args.method}_seed{args.seed}.png")
    image = plotting.interpolation_figure(np.asarray(strips, "float32"), path=out,
                                          method=args.method)
    _common.say(f"keras-vae: {len(strips)} {args.method} interpolation(s) of {args.steps} "
                f"steps -> {out} ({image.size[0]}x{image.size[1]})")
    return EXIT_OK


__all__ = ["SAMPLE_OPTIONS", "INTERPOLATE_OPTIONS", "register", "run", "run_interpolate"]
