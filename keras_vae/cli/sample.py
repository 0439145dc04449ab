r"""`keras-vae sample` and `keras-vae interpolate`: pictures of a trained run -> PNG.

```none
keras-vae sample runs/a -n 64 --temperature 0.8 --seed 1 --out grid.png
keras-vae sample runs/c --label 3          # a conditional run: 64 samples of class 3
keras-vae sample runs/c                    # a conditional run: one row per class
keras-vae interpolate runs/a --pairs 4 --steps 10 --method slerp --out path.png
```

The images are the model's own (`VAE.sample`, `VAE.interpolate`), drawn by
`keras_vae.plotting`.
"""

import pathlib

import numpy as np

from keras_vae import _util, class_pictures, plotting, runs
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
    Option("label", ("--label",), type=nonnegative_int, metavar="C",
           help="the class of the samples (a run trained with --conditional)",
           default_help="one row per class for a conditional run"),
    Option("ncols", ("--ncols",), type=positive_int, help="columns of the grid",
           default_help="~sqrt(n); 10 per class row"),
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
    if model.is_conditional and args.label is None:
        return _class_rows(model, run_dir, args)
    images = np.asarray(_sample(model, n, t, seed, args.label), "float32")
    tag = "" if args.label is None else f"_label{args.label}"
    out = pathlib.Path(args.out or run_dir / "pictures" / f"sample_T{t:g}_seed{seed}{tag}.png")
    image = plotting.image_grid(images, ncols=args.ncols, scale=args.scale, path=out)
    if args.npy:
        _util.atomic_write_npy(args.npy, images)
    _common.say(f"keras-vae: {n} samples at temperature {t:g} (seed {seed}) -> {out} "
                f"({image.size[0]}x{image.size[1]})")
    return EXIT_OK


def _sample(model, n, t, seed, label):
    """model.sample, with --label for a conditional run; UsageError for a misfit label."""
    if label is not None and not model.is_conditional:
        raise UsageError("--label needs a conditional run (trained with --conditional)")
    try:
        return model.sample(n, temperature=t, seed=seed, labels=label)
    except ValueError as error:  # e.g. a label outside 0..C-1
        raise UsageError(f"--label {label}: {_util.first_line(error)}") from error


def _class_rows(model, run_dir, args):
    """A conditional run without --label: one row of --ncols (10) samples per class."""
    if not model.num_classes:
        raise UsageError("this run is conditioned on vectors, not classes: the CLI cannot "
                         "sample it; use VAE.sample(n, labels=...) in Python")
    t, seed, per_class = args.temperature, args.seed, args.ncols or 10
    out = pathlib.Path(args.out or run_dir / "pictures" / f"sample_T{t:g}_seed{seed}_classes.png")
    image = class_pictures.class_grid(model, per_class, t, seed, path=out)
    if args.npy:
        _util.atomic_write_npy(args.npy, np.stack([np.asarray(model.sample(per_class, temperature=t, seed=seed,
                                                            labels=c), "float32")
                                    for c in range(model.num_classes)]))
    _common.say(f"keras-vae: {per_class} samples of each of {model.num_classes} classes at "
                f"temperature {t:g} (seed {seed}) -> {out} ({image.size[0]}x{image.size[1]})")
    return EXIT_OK


def run_interpolate(args):
    """`keras-vae interpolate`: latent paths between test images (random pairs or two indices)."""
    run_dir = _common.require_run_dir(args)
    if args.indices is not None and "pairs" in args.given:
        raise UsageError("--indices and --pairs conflict: give two test indices or a number "
                         "of random pairs")
    model, config = runs.load_run_model(run_dir)
    x, y = _common.eval_data(config)
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
        labels = y[ia] if model.is_conditional else None  # the first end's class
        strips = model.interpolate(x[ia], x[ib], steps=args.steps, method=args.method,
                                   labels=labels)
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
