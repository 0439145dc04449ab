r"""`keras-vae traverse RUN_DIR`: each latent unit swept over [-3, 3], the others fixed -> PNG.

```none
keras-vae traverse runs/a                      # -> runs/a/pictures/traverse_index0.png
keras-vae traverse runs/a --units 5 --steps 11 --index 3 --out t.png
```

Rows are the most active units first (Burda et al.'s Var_x E q(z_u|x), measured on
the run's first `--examples` test examples), each labelled with its index and that
variance; columns are the values linspace(-limit, limit, steps). z0 is the posterior
mean of test example `--index`. A conditional run gets one block of rows per label.
The picture is `keras_vae.traversals.traversal_picture`'s, written atomically.
"""

import pathlib

from keras_vae import _util, runs, traversals
from keras_vae.cli import _common, _options
from keras_vae.cli._errors import EXIT_OK, UsageError
from keras_vae.cli._options import Option, nonnegative_int, positive_float, positive_int

OPTIONS = (
    _options.run_dir_option(),
    Option("units", ("--units",), type=positive_int, default=10, metavar="N",
           help="rows: the N most active latent units"),
    Option("steps", ("--steps",), type=positive_int, default=traversals.STEPS,
           help="values per unit (>= 2)"),
    Option("limit", ("--limit",), type=positive_float, default=traversals.RANGE,
           help="sweep each unit over [-LIMIT, LIMIT]"),
    Option("index", ("--index",), type=nonnegative_int, default=0,
           help="the test example whose posterior mean is the fixed point"),
    Option("examples", ("--examples",), type=positive_int, default=1000, metavar="N",
           help="test examples for the activity statistic"),
    Option("scale", ("--scale",), type=positive_int, default=2, help="pixel magnification"),
    Option("out", ("--out",), metavar="PNG", help="output",
           default_help="RUN_DIR/pictures/traverse_index<I>.png"),
) + _options.COMMON


def register(subparsers):
    _options.add_command(subparsers, "traverse", OPTIONS, run,
                         help="latent traversals, most active units first -> PNG")


def run(args):
    """`keras-vae traverse`: the traversal picture of a run's model."""
    run_dir = _common.require_run_dir(args)
    if args.steps < 2:
        raise UsageError(f"--steps must be >= 2, got {args.steps}")
    model, config = runs.load_run_model(run_dir)
    x, y = _common.eval_data(config, args.examples)
    if args.index >= len(x):
        raise UsageError(f"--index must be < {len(x)} (the test examples used)")
    conditional = getattr(model, "is_conditional", False)
    if conditional and y is None:
        raise UsageError(f"{run_dir}'s model is conditional but its test set has no labels")
    out = pathlib.Path(args.out or run_dir / "pictures" / f"traverse_index{args.index}.png")
    try:
        image, info = traversals.traversal_picture(
            model, x, labels=y if conditional else None, index=args.index,
            num_units=args.units, steps=args.steps, limit=args.limit, path=out,
            scale=args.scale)
    except ValueError as error:
        raise UsageError(f"cannot traverse: {_util.first_line(error)}") from error
    blocks = len(info["labels"])
    _common.say(f"keras-vae: {len(info['units'])} unit(s) x {args.steps} values over "
                f"[-{args.limit:g}, {args.limit:g}]" + (f", {blocks} labels" if conditional
                                                         else "") +
                f" -> {out} ({image.size[0]}x{image.size[1]})")
    return EXIT_OK


__all__ = ["OPTIONS", "register", "run"]
