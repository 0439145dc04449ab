r"""`keras-vae demo`: the first command. Train, evaluate, picture, export and verify in a minute.

```none
keras-vae demo                     # -> runs/demo: an IWAE(k=5) on the embedded digits, offline
keras-vae demo --epochs 3 --no-export --out /tmp/demo
```

It runs the other commands' functions in turn: `train.train`,
`evaluate.evaluate_run`, `export.export_run` and `export.verify_run`.
"""

import dataclasses
import pathlib
import time

from keras_vae import runs
from keras_vae.cli import _common, _options, evaluate, export, train
from keras_vae.cli._errors import EXIT_OK
from keras_vae.cli._options import Option, positive_int

#: The demo's training: embedded data, an IWAE(k=5) MLP; about a minute on 2 CPU cores.
DEMO_TRAIN = {"data": "embedded", "preset": "mlp", "latent_dim": 16, "objective": "iwae",
              "k": 5, "epochs": 15, "batch_size": 100, "learning_rate": 1e-3, "seed": 0,
              "test_examples": 1000, "out": "runs/demo"}
DEMO_EVAL_K = 100
DEMO_EVAL_EXAMPLES = 500

OPTIONS = tuple(
    dataclasses.replace(o, default=DEMO_TRAIN.get(o.dest, o.default),
                        help="run folder" if o.dest == "out" else o.help)
    for o in _options.TRAIN_OPTIONS + _options.RUN_OPTIONS if o.dest != "resume"
) + (
    Option("export", ("--no-export",), action="store_false", default=True,
           help="skip the export step"),
    Option("eval_k", ("--eval-k",), type=positive_int, default=DEMO_EVAL_K, metavar="K",
           help="importance samples of the evaluation"),
) + _options.COMMON


def register(subparsers):
    parser = _options.add_command(
        subparsers, "demo", OPTIONS, run,
        help="the first command: train on the embedded digits (about a minute), evaluate, "
             "picture, export and verify",
        description="Train an IWAE(k=5) on the embedded MNIST digits (no network needed), "
                    "evaluate it, write the pictures, export it to SavedModel, ONNX and "
                    "TFLite, verify the exports, and say where everything is.")
    parser.set_defaults(resume=False)  # train.train reads it; a demo always starts afresh


def _steps(args, result):
    """Steps 2 to 5 after training; returns (evaluation report, metrics path, export dir)."""
    run_dir, model = result["run_dir"], result["model"]
    _common.say(f"keras-vae demo [2/5] evaluating (k={args.eval_k}, {DEMO_EVAL_EXAMPLES} test "
                "digits)")
    report, metrics = evaluate.evaluate_run(
        run_dir, k=args.eval_k, examples=DEMO_EVAL_EXAMPLES, batch_size=50, snr_estimates=0,
        seed=0, model=model, config=runs.read_config(run_dir))
    _common.print_table(evaluate.metrics_table(report))
    _common.say("keras-vae demo [3/5] pictures")
    for name, path in result["pictures"].items():
        _common.say(f"  {name:<16} {path}")
    if not args.export:
        _common.say("keras-vae demo [4/5] export skipped (--no-export)")
        return report, metrics, None
    _common.say("keras-vae demo [4/5] exporting to SavedModel, ONNX and TFLite, each checked "
                "against the Keras model")
    manifest, export_dir = export.export_run(run_dir, ["all"], run_dir / "export",
                                             overwrite=True)
    for line in export.summary_lines(manifest, export_dir):
        _common.say(line)
    _common.say("keras-vae demo [5/5] verifying: each artefact reloaded by its own runtime, "
                "decoding the same z as the Keras model")
    for line in export.verify_run(model, export_dir, manifest):
        _common.say(line)
    return report, metrics, export_dir


def _check_out(args):
    """An existing run in --out is replaced only with --overwrite, and only once the new
    run's data and model are ready (`train.train`); without it the demo refuses."""
    out = pathlib.Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        what = "a run" if runs.is_run(out) else "files that are not a keras-vae run"
        raise runs.RunFolderError(f"--out {out} already holds {what}: pass --overwrite to "
                                  "replace a previous demo run (kept until the new one's data "
                                  "and model are ready), or choose another --out")


def run(args):
    started = time.time()
    _check_out(args)
    _common.say("keras-vae demo [1/5] training on the embedded MNIST digits (no network needed)")
    result = train.train(args, "demo")
    t_train = time.time() - started
    report, metrics, export_dir = _steps(args, result)
    run_dir, ll = result["run_dir"], report.get("log_likelihood") or {}
    _common.say("")
    _common.say(f"keras-vae demo: done in {time.time() - started:.0f} s (training "
                f"{t_train:.0f} s)")
    _common.say(f"  run folder     {run_dir}")
    _common.say(f"  model          {run_dir / 'model.keras'}")
    _common.say(f"  test NLL       {ll.get('nll', float('nan')):.2f} nats (k={args.eval_k}) -> "
                f"{metrics}")
    _common.say(f"  pictures       {run_dir / 'pictures'}")
    if export_dir is not None:
        _common.say(f"  exports        {export_dir}")
    _common.say(f"  TensorBoard    tensorboard --logdir {run_dir / 'logs'}")
    _common.say(f"  next           keras-vae sample {run_dir} -n 64 --temperature 0.8 "
                "--out grid.png")
    return EXIT_OK


__all__ = ["DEMO_TRAIN", "DEMO_EVAL_K", "DEMO_EVAL_EXAMPLES", "OPTIONS", "register", "run"]
