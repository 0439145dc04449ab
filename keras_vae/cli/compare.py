r"""`keras-vae compare RUN_DIR...`: several runs side by side on the same test digits.

```none
keras-vae compare runs/vae runs/iwae --k 100 --examples 500 --out runs/compare
```

Test log-likelihood, reconstruction error, and the pictures of
`keras_vae.comparison.compare` (reconstructions, interpolations, samples).
"""

import pathlib

from keras_vae import comparison, runs
from keras_vae.cli import _common, _options
from keras_vae.cli._errors import EXIT_OK, UsageError
from keras_vae.cli._options import Option, nonnegative_int, positive_int

OPTIONS = (
    Option("run_dirs", nargs="*", metavar="RUN_DIR", help="run folders made by keras-vae train"),
    Option("out", ("--out",), metavar="DIR", default="runs/compare", help="output folder"),
    Option("k", ("--k",), type=positive_int, default=100, help="importance samples"),
    Option("examples", ("--examples",), type=positive_int, default=500, metavar="N",
           help="test examples"),
    Option("seed", ("--seed",), type=nonnegative_int, default=0, help="seed"),
) + _options.COMMON


def register(subparsers):
    _options.add_command(subparsers, "compare", OPTIONS, run,
                         help="several runs side by side: test log-likelihood, "
                              "reconstructions, interpolations, samples")


def _models(run_dirs):
    """{name: model} of the runs (folder names, or paths when two share a name), first config."""
    names = [r.name or str(r) for r in run_dirs]
    if len(set(names)) != len(names):
        names = [str(r) for r in run_dirs]
    models, first = {}, None
    for name, run_dir in zip(names, run_dirs):
        model, config = runs.load_run_model(run_dir)
        data = (config.get("data") or {}).get("data")
        if first is None:
            first = config
        elif data != (first.get("data") or {}).get("data"):
            raise UsageError(f"{run_dir} was trained on {data}, the first run on "
                             f"{first['data'].get('data')}: compare runs on the same data")
        models[name] = model
    return models, first


def run(args):
    run_dirs = [pathlib.Path(r) for r in args.run_dirs or []]
    if not run_dirs:
        raise UsageError("compare needs at least one RUN_DIR")
    models, config = _models(run_dirs)
    x, _ = _common.eval_data(config, args.examples)
    out = pathlib.Path(args.out)
    report = comparison.compare(models, x, str(out), seed=args.seed, k=args.k)
    _common.say(f"keras-vae: compared {len(models)} run(s) on {len(x)} test examples -> {out}")
    for name, entry in report["metrics"].items():
        ll = entry.get("test_log_likelihood")
        ll = f"log p(x) {ll:.2f} (k={entry.get('log_likelihood_k')})" if ll is not None else ""
        _common.say(f"  {name:<24} {ll}  reconstruction MSE {entry['reconstruction_mse']:.4f}")
    for name, path in report.get("files", {}).items():
        _common.say(f"  {name:<24} {path}")
    return EXIT_OK


__all__ = ["OPTIONS", "register", "run"]
