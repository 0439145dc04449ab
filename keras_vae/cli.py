r"""The `keras-vae` command: train, evaluate, picture, export and verify a VAE.

```none
keras-vae demo                                   # the first command: about a minute, offline
keras-vae train --out runs/a --objective iwae --k 5 --epochs 20
keras-vae train --out runs/a --resume            # continue a killed or interrupted run
keras-vae evaluate runs/a --k 1000               # -> runs/a/metrics.json and a table
keras-vae sample runs/a -n 64 --temperature 0.8 --seed 1 --out grid.png
keras-vae interpolate runs/a --pairs 4 --steps 10 --method slerp --out path.png
keras-vae export runs/a --format all             # -> runs/a/export (SavedModel, ONNX, TFLite)
keras-vae serve ...                              # keras_vae.serving's development server
```

Every option can also come from a YAML or JSON file (`--config FILE`): its keys
are the options' long names (`learning-rate` or `learning_rate`); flags given
on the command line win. A run folder's own config.json is such a file, so
`keras-vae train --config runs/a/config.json --out runs/b` repeats run a.

Exit codes: 0 success, 1 failure, 2 bad or conflicting arguments (unknown data
set, bad config file), 3 run folder missing, foreign or already used, 4 corrupt
checkpoint or model file, 130 interrupted (Ctrl-C; training saves a checkpoint
first). Errors print one line on stderr; `--debug` prints the traceback too.
"""

import argparse
import csv
import datetime
import json
import math
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
import traceback

PROG = "keras-vae"
RUN_MARKER = "keras_vae_run"
RUN_FORMAT = 1

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_RUN_FOLDER, EXIT_CORRUPT, EXIT_INTERRUPTED = (
    0, 1, 2, 3, 4, 130)

DATA_NAMES = ("embedded", "mnist", "fashion_mnist")
PRESETS = ("mlp", "conv", "iwae")
LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian", "gaussian_learned_scale")
PRIORS = ("normal", "mixture", "vamp")
OBJECTIVES = ("elbo", "iwae", "miwae", "piwae", "ciwae")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)

# The defaults of `train`, applied after the config file and the command line
# (so that the options actually given can be told apart from the defaults).
TRAIN_DEFAULTS = {
    "data": "embedded",
    "binarization": "auto",
    "train_examples": None,
    "test_examples": 1000,
    "preset": "mlp",
    "latent_dim": None,
    "likelihood": "bernoulli",
    "prior": "normal",
    "objective": "elbo",
    "k": None,
    "num_groups": None,
    "ciwae_beta": None,
    "kl_beta": 1.0,
    "warmup_steps": 0,
    "free_bits": None,
    "gradient_estimator": "standard",
    "epochs": 10,
    "batch_size": 100,
    "learning_rate": 1e-3,
    "seed": None,
    "jit": None,  # Keras's "auto": measured here, XLA is slower for the IWAE net on CPU (bench/)
    "steps_per_execution": 1,
    "precision": "float32",
    "strategy": "default",
    "out": None,
    "resume": False,
    "overwrite": False,
    "early_stopping": None,
    "pictures": True,
    "verbose": 1,
    "epoch_delay": 0.0,
}
# Options that say where and how to run, not what: a resumed run may change them.
RUN_ONLY = {"out", "resume", "overwrite", "verbose", "epoch_delay", "config", "debug"}

# The demo: embedded data, an IWAE(k=5) MLP; about a minute on 2 CPU cores.
DEMO_TRAIN = {
    "data": "embedded",
    "preset": "mlp",
    "latent_dim": 16,
    "objective": "iwae",
    "k": 5,
    "epochs": 15,
    "batch_size": 100,
    "learning_rate": 1e-3,
    "seed": 0,
    "test_examples": 1000,
}
DEMO_EVAL_K = 100
DEMO_EVAL_EXAMPLES = 500


class CLIError(Exception):
    """A failure to report as one line with an exit code (no traceback unless --debug)."""

    def __init__(self, message, code=EXIT_FAILURE):
        super().__init__(message)
        self.code = code


class UsageError(CLIError):
    def __init__(self, message):
        super().__init__(message, EXIT_USAGE)


class TrainingInterrupted(Exception):
    """Raised by the Ctrl-C callback after it has saved a checkpoint."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors raised as UsageError (no usage dump, no sys.exit)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


# =============================================================================== parser


def _help(text, dest, defaults):
    value = defaults.get(dest)
    if value is None or value is False or dest in ("resume", "overwrite"):
        return text
    return f"{text} (default: {value})"


def _positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonnegative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _nonnegative_float(text):
    value = float(text)
    if not value >= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


_positive_int.__name__ = "positive integer"
_nonnegative_int.__name__ = "integer >= 0"
_positive_float.__name__ = "positive number"
_nonnegative_float.__name__ = "number >= 0"


def _add_common(parser):
    parser.add_argument("--config", metavar="FILE",
                        help="read options from a YAML or JSON file (command-line flags win)")
    parser.add_argument("--debug", action="store_true", default=None,
                        help="show the full traceback of an error")


def _add_train_options(parser, defaults, demo=False):
    h = lambda text, dest: _help(text, dest, defaults)  # noqa: E731
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="NAME|PATH",
                      help=h("embedded (a small MNIST subset shipped in the package: offline), "
                             "mnist, fashion_mnist, or a .npy/.npz file or image folder (without "
                             "a test part, its last 10%% are the test set)", "data"))
    data.add_argument("--binarization", choices=("auto", "dynamic", "static", "none"),
                      help=h("auto: dynamic for a (continuous) Bernoulli likelihood "
                             "(a fresh Bernoulli draw each epoch), else none; the test set is "
                             "binarised once with a fixed seed", "binarization"))
    data.add_argument("--train-examples", type=_positive_int, metavar="N",
                      help="use only the first N training examples")
    data.add_argument("--test-examples", type=_positive_int, metavar="N",
                      help=h("test examples used for validation and pictures", "test_examples"))
    model = parser.add_argument_group("model")
    model.add_argument("--preset", choices=PRESETS,
                       help=h("encoder/decoder networks: mlp (512-256 ReLU), conv, or iwae "
                              "(Burda et al.'s 200-200 tanh, d=50)", "preset"))
    model.add_argument("--latent-dim", type=_positive_int, metavar="D",
                       help="size of z (default: the preset's: mlp 16, conv 16, iwae 50)")
    model.add_argument("--likelihood", choices=LIKELIHOODS, help=h("p(x|z)", "likelihood"))
    model.add_argument("--prior", choices=PRIORS, help=h("p(z)", "prior"))
    obj = parser.add_argument_group("objective")
    obj.add_argument("--objective", choices=OBJECTIVES, help=h("the training bound", "objective"))
    obj.add_argument("--k", type=_positive_int, metavar="K",
                     help="importance samples per example (iwae, ciwae; elbo: Monte-Carlo "
                          "samples) or per group (miwae, piwae); default: the objective's")
    obj.add_argument("--num-groups", type=_positive_int, metavar="M",
                     help="groups M of miwae/piwae (M x K samples per example)")
    obj.add_argument("--ciwae-beta", type=float, metavar="B",
                     help="ciwae's mixing weight in [0, 1]: B*ELBO + (1-B)*IWAE")
    obj.add_argument("--kl-beta", type=_nonnegative_float, metavar="B",
                     help=h("weight of the KL term (beta-VAE)", "kl_beta"))
    obj.add_argument("--warmup-steps", type=_nonnegative_int, metavar="N",
                     help=h("KL warm-up: the KL weight rises linearly over N steps",
                            "warmup_steps"))
    obj.add_argument("--free-bits", type=_nonnegative_float, metavar="NATS",
                     help="free bits per latent unit (elbo only)")
    obj.add_argument("--gradient-estimator", choices=("standard", "dreg"),
                     help=h("dreg: doubly-reparameterised encoder gradients",
                            "gradient_estimator"))
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, help=h("epochs", "epochs"))
    fit.add_argument("--batch-size", type=_positive_int, help=h("batch size", "batch_size"))
    fit.add_argument("--learning-rate", type=_positive_float, metavar="LR",
                     help=h("Adam's learning rate", "learning_rate"))
    fit.add_argument("--seed", type=_nonnegative_int,
                     help="seed of everything random (default: a random one, saved in "
                          "config.json)")
    fit.add_argument("--jit", action=argparse.BooleanOptionalAction,
                     help="XLA-compile the training step (default: Keras's 'auto', no XLA on "
                          "CPU, where bench/ measured it slower for the IWAE net)")
    fit.add_argument("--steps-per-execution", type=_positive_int, metavar="N",
                     help=h("training steps per compiled call", "steps_per_execution"))
    fit.add_argument("--precision", choices=PRECISIONS, help=h("dtype policy", "precision"))
    fit.add_argument("--strategy", choices=STRATEGIES,
                     help=h("tf.distribute strategy (multiworker needs TF_CONFIG)", "strategy"))
    fit.add_argument("--early-stopping", type=_positive_int, metavar="PATIENCE",
                     help="stop when val_loss has not improved for PATIENCE epochs "
                          "(the best weights are kept)")
    out = parser.add_argument_group("run folder")
    out.add_argument("--out", metavar="RUN_DIR",
                     help=("run folder (default: runs/demo)" if demo else
                           "run folder (default: runs/run-YYYYmmdd-HHMMSS)"))
    if not demo:
        out.add_argument("--resume", action="store_true", default=None,
                         help="continue the run in --out from its last checkpoint")
    out.add_argument("--overwrite", action="store_true", default=None,
                     help="replace an existing run in --out")
    out.add_argument("--pictures", action=argparse.BooleanOptionalAction,
                     help=h("write the PNG pictures", "pictures"))
    out.add_argument("--verbose", type=int, choices=(0, 1, 2),
                     help=h("Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch",
                            "verbose"))
    # A testing aid: sleep after each epoch (keeps a tiny run alive long enough to kill).
    out.add_argument("--epoch-delay", type=_nonnegative_float, help=argparse.SUPPRESS)


def build_parser():
    parser = _Parser(
        prog=PROG,
        description="Train, evaluate, picture, export and serve variational autoencoders "
                    "(Keras 3 + TensorFlow Probability).",
        epilog="Start with 'keras-vae demo'. Exit codes: 0 ok, 1 failure, 2 bad or "
               "conflicting arguments, 3 run folder missing/foreign/in use, 4 corrupt "
               "checkpoint or model, 130 interrupted. Every option can also come from "
               "--config FILE (YAML or JSON).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("train", help="train a VAE into a run folder",
                       description="Train a VAE. The run folder gets config.json, "
                                   "history.json/.csv, model.keras, checkpoints/, logs/ "
                                   "(TensorBoard) and pictures/*.png.",
                       argument_default=None)
    _add_train_options(p, TRAIN_DEFAULTS)
    _add_common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("demo", help="the first command: train on the embedded digits (about a "
                                    "minute), evaluate, picture, export and verify",
                       description="Train an IWAE(k=5) on the embedded MNIST digits (no network "
                                   "needed), evaluate it, write the pictures, export it to "
                                   "SavedModel, ONNX and TFLite, verify the exports, and say "
                                   "where everything is.",
                       argument_default=None)
    _add_train_options(p, {**TRAIN_DEFAULTS, **DEMO_TRAIN}, demo=True)
    p.add_argument("--no-export", dest="export", action="store_false", default=None,
                   help="skip the export step")
    p.add_argument("--eval-k", type=_positive_int, metavar="K",
                   help=f"importance samples of the evaluation (default: {DEMO_EVAL_K})")
    _add_common(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("evaluate", help="log-likelihood, bounds, active units, ESS -> "
                                        "metrics.json", argument_default=None)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
    p.add_argument("--k", type=_positive_int, help="importance samples per example "
                                                   "(default: 1000; Burda et al. use 5000)")
    p.add_argument("--examples", type=_positive_int, metavar="N",
                   help="evaluate the first N test examples (default: all)")
    p.add_argument("--batch-size", type=_positive_int, help="examples per batch (default: 20)")
    p.add_argument("--snr-estimates", type=_nonnegative_int, metavar="N",
                   help="gradient estimates for the gradient SNR; 0 skips it (default: 32)")
    p.add_argument("--seed", type=_nonnegative_int, help="seed of the draws (default: 0)")
    p.add_argument("--out", metavar="FILE", help="the JSON report (default: RUN_DIR/metrics.json)")
    _add_common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="a grid of samples from the prior -> PNG",
                       argument_default=None)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
    p.add_argument("-n", "--num", type=_positive_int, help="number of samples (default: 64)")
    p.add_argument("--temperature", type=_nonnegative_float, metavar="T",
                   help="scale of the prior's spread (default: 1.0)")
    p.add_argument("--seed", type=_nonnegative_int, help="seed (default: 0)")
    p.add_argument("--ncols", type=_positive_int, help="columns of the grid (default: ~sqrt(n))")
    p.add_argument("--scale", type=_positive_int, help="pixel magnification (default: 2)")
    p.add_argument("--npy", metavar="FILE", help="also save the images as a .npy array")
    p.add_argument("--out", metavar="PNG",
                   help="output (default: RUN_DIR/pictures/sample_T<T>_seed<S>.png)")
    _add_common(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("interpolate", help="latent interpolations between test images -> PNG",
                       argument_default=None)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
    p.add_argument("--pairs", type=_positive_int, help="random test pairs (default: 4)")
    p.add_argument("--indices", type=_nonnegative_int, nargs=2, metavar=("A", "B"),
                   help="interpolate between these two test examples instead")
    p.add_argument("--steps", type=int, help="images per path, ends included (default: 10)")
    p.add_argument("--method", choices=("linear", "slerp"), help="path (default: linear)")
    p.add_argument("--seed", type=_nonnegative_int, help="seed of the pair choice (default: 0)")
    p.add_argument("--out", metavar="PNG", help="output (default: RUN_DIR/pictures/"
                                                "interpolate_<method>_seed<S>.png)")
    _add_common(p)
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("export", help="SavedModel (TF Serving layout), ONNX and TFLite, each "
                                      "verified against the Keras model", argument_default=None)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
    p.add_argument("--format", choices=("savedmodel", "onnx", "tflite", "all"), nargs="+",
                   help="one or more formats (default: all)")
    p.add_argument("--out", metavar="DIR", help="export folder (default: RUN_DIR/export)")
    p.add_argument("--name", help="model name in the TF Serving layout (default: vae)")
    p.add_argument("--version", type=_positive_int, dest="model_version",
                   help="model version (default: 1)")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace an existing export of the same version")
    _add_common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="reload an export folder with each runtime and compare "
                                      "with the run's model", argument_default=None)
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="export folder (default: RUN_DIR/export)")
    _add_common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("compare", help="several runs side by side: test log-likelihood, "
                                       "reconstructions, interpolations, samples",
                       argument_default=None)
    p.add_argument("run_dirs", nargs="*", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/compare)")
    p.add_argument("--k", type=_positive_int, help="importance samples (default: 100)")
    p.add_argument("--examples", type=_positive_int, metavar="N",
                   help="test examples (default: 500)")
    p.add_argument("--seed", type=_nonnegative_int, help="seed (default: 0)")
    _add_common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("serve", help="the development model server (keras_vae.serving); "
                                     "'keras-vae serve --help' for its options",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_serve)
    return parser


def _version():
    try:
        from importlib.metadata import version

        return version("keras-vae")
    except Exception:  # noqa: BLE001
        return "unknown"


# =============================================================================== config


def _actions(parser):
    return {a.dest: a for a in parser._actions if a.dest not in ("help", argparse.SUPPRESS)}


def _subparser(parser, name):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


def read_config_file(path, command, parser):
    """Options from a YAML/JSON file: {option: value}, or a section per command.

    A run's config.json is accepted as is (its 'train' section is used).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        import yaml

        text = path.read_text()
        content = yaml.safe_load(text) if path.suffix.lower() != ".json" else json.loads(text)
    except Exception as error:  # noqa: BLE001
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"cannot read config file {path}: {first}") from error
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise UsageError(f"config file {path}: expected a mapping of option: value")
    section = command
    if command == "demo" and "demo" not in content and "train" in content:
        section = "train"
    if isinstance(content.get(section), dict):
        content = content[section]
    elif RUN_MARKER in content:
        raise UsageError(f"config file {path} is a run's config.json without a "
                         f"'{command}' section")
    actions = _actions(parser)
    options = {}
    for key, value in content.items():
        dest = str(key).replace("-", "_")
        if dest == "version" and "model_version" in actions:
            dest = "model_version"
        if dest not in actions or dest in ("config", "func"):
            raise UsageError(f"config file {path}: unknown option '{key}' for "
                             f"'{PROG} {command}'")
        options[dest] = _coerce(path, key, value, actions[dest])
    return options


def _coerce(path, key, value, action):
    where = f"config file {path}: option '{key}'"
    if value is None:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                           argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise UsageError(f"{where} must be true or false, got {value!r}")
        if isinstance(action, argparse._StoreFalseAction):
            return value  # the dest holds the positive meaning already
        return value
    if action.nargs in ("+", "*", 2) and not isinstance(value, list):
        value = [value] if action.nargs in ("+", "*") else value
    values = value if isinstance(value, list) else [value]
    converted = []
    for v in values:
        if action.type is not None and not isinstance(v, bool):
            try:
                v = action.type(str(v)) if isinstance(v, str) else action.type(v)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
                raise UsageError(f"{where}: {error}") from None
        if action.choices is not None and v not in action.choices:
            choices = ", ".join(str(c) for c in action.choices)
            raise UsageError(f"{where}: invalid choice {v!r} (choose from {choices})")
        converted.append(v)
    return converted if isinstance(value, list) else converted[0]


def parse(argv):
    """Parses argv into (namespace, explicit options, the subcommand's parser)."""
    parser = build_parser()
    argv = list(argv)
    if argv and argv[0] == "serve":
        return argparse.Namespace(command="serve", func=cmd_serve, args=argv[1:],
                                  debug=False), {}, None
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        raise CLIError("no command given: start with 'keras-vae demo'", EXIT_USAGE)
    sub = _subparser(parser, args.command)
    explicit = {k: v for k, v in vars(args).items()
                if v is not None and k not in ("func", "command")}
    options = {}
    if getattr(args, "config", None):
        options.update(read_config_file(args.config, args.command, sub))
    options.update(explicit)
    return args, options, sub


# =============================================================================== helpers


def _say(*parts):
    print(*parts, flush=True)


def _write_json(path, obj):
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    if isinstance(value, (pathlib.Path,)):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def _first_line(error):
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = lines[0] if not lines[0].endswith(":") else lines[-1]
    return line if len(line) <= 300 else line[:297] + "..."


def run_config(run_dir):
    """The config.json of a keras-vae run folder; CLIError (exit 3) if missing or foreign."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.exists():
        raise CLIError(f"run folder not found: {run_dir}", EXIT_RUN_FOLDER)
    if not run_dir.is_dir():
        raise CLIError(f"not a folder: {run_dir}", EXIT_RUN_FOLDER)
    path = run_dir / "config.json"
    if not path.is_file():
        raise CLIError(f"{run_dir} is not a keras-vae run folder (no config.json); "
                       "make one with 'keras-vae train --out DIR'", EXIT_RUN_FOLDER)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CLIError(f"{path} is corrupt: {_first_line(error)}", EXIT_CORRUPT) from error
    if not isinstance(config, dict) or config.get(RUN_MARKER) != RUN_FORMAT:
        raise CLIError(f"{run_dir} is not a keras-vae run folder (its config.json was not "
                       "written by keras-vae train)", EXIT_RUN_FOLDER)
    return config


def _require_run_dir(options):
    run_dir = options.get("run_dir")
    if not run_dir:
        raise UsageError("RUN_DIR is required (a folder made by 'keras-vae train')")
    return pathlib.Path(run_dir)


def load_run_model(run_dir):
    """The trained model of a run folder (compile=False)."""
    config = run_config(run_dir)
    path = pathlib.Path(run_dir) / "model.keras"
    if not path.is_file():
        state = _read_state(run_dir)
        status = state.get("status", "unknown")
        raise CLIError(f"{run_dir} has no model.keras yet (training status: {status}); "
                       f"finish it with 'keras-vae train --out {run_dir} --resume'",
                       EXIT_RUN_FOLDER)
    _import_tf()
    import keras

    import keras_vae  # noqa: F401  (registers the custom objects)

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001
        raise CLIError(f"cannot load {path}: the file is corrupt or not a keras-vae model "
                       f"({_first_line(error)})", EXIT_CORRUPT) from error
    return model, config


def _read_state(run_dir):
    try:
        return json.loads((pathlib.Path(run_dir) / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_state(run_dir, **state):
    _write_json(pathlib.Path(run_dir) / "state.json",
                {**state, "updated": _now()})


def _host():
    import socket

    return socket.gethostname()


def _process_alive(state):
    """True if the state names a live process on this host (a run being trained now)."""
    pid = state.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or state.get("host") != _host():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_vae  # noqa: F401


# =============================================================================== data


def check_data_name(name):
    """Rejects an unknown data set before anything is loaded (exit 2)."""
    if name in DATA_NAMES:
        return
    path = pathlib.Path(str(name)).expanduser()
    if path.exists():
        return
    looks_like_path = (os.sep in str(name) or path.suffix.lower() in (".npy", ".npz")
                       or str(name).startswith("."))
    if looks_like_path:
        raise UsageError(f"data file or folder not found: {name}")
    raise UsageError(f"unknown data set '{name}': use embedded, mnist, fashion_mnist, or the "
                     "path of a .npy/.npz file or a folder of images")


def resolve_binarization(options):
    binarization = options["binarization"]
    if binarization == "auto":
        binarization = ("dynamic" if options["likelihood"] in ("bernoulli", "continuous_bernoulli")
                        else "none")
    return binarization


def load_run_data(options):
    """The data set of a run: (Dataset, x_train, x_val, y_val, binarization)."""
    from keras_vae import data as data_lib

    check_data_name(options["data"])
    binarization = resolve_binarization(options)
    try:
        ds = data_lib.load(options["data"],
                           binarization=None if binarization == "none" else binarization,
                           seed=int(options["seed"] or 0), likelihood=options["likelihood"],
                           # user data without a test part: its last 10% become the test set
                           test_fraction=0.0 if options["data"] in DATA_NAMES else 0.1)
    except (FileNotFoundError, ValueError, TypeError) as error:
        raise UsageError(f"cannot load data set {options['data']}: {_first_line(error)}") \
            from error
    except OSError as error:
        raise CLIError(f"cannot load data set {options['data']}: {_first_line(error)}") \
            from error
    x_train = ds.x_train
    if options.get("train_examples"):
        x_train = x_train[: options["train_examples"]]
    x_val, y_val = ds.x_test, ds.y_test
    if len(x_val) == 0:
        raise UsageError(f"{options['data']} has no test examples (too few examples?)")
    n_val = options.get("test_examples") or len(x_val)
    x_val = x_val[:n_val]
    y_val = None if y_val is None else y_val[:n_val]
    return ds, x_train, x_val, y_val, binarization


def training_stream(x, batch_size, seed, start_epoch, epochs, dynamic):
    """A tf.data stream of the batches of epochs start_epoch..epochs-1.

    Batch b of epoch e is a pure function of (seed, e, b): the examples come
    through a stateless permutation (`stateless_shuffle`) and a dynamic binarisation
    draws with a stateless seed, so a resumed run sees exactly the batches an
    uninterrupted run would have seen.
    """
    import tensorflow as tf

    n = len(x)
    steps = n // batch_size
    images = tf.constant(x, dtype="float32")
    seed = int(seed) % (2**31 - 1)

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype="int64"), seed=tf.stack([tf.constant(seed, "int64"), epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size,
                                                                  drop_remainder=True)
        batches = tf.data.Dataset.zip((batches, tf.data.Dataset.range(steps)))

        def make_batch(index, step):
            batch = tf.gather(images, index)
            if dynamic:
                u = tf.random.stateless_uniform(
                    tf.shape(batch), dtype="float32",
                    seed=tf.stack([tf.constant(seed + 1, "int64"), epoch * steps + step]))
                batch = tf.cast(u < batch, "float32")
            return batch

        return batches.map(make_batch)

    ds = tf.data.Dataset.range(start_epoch, epochs).flat_map(epoch_batches)
    ds = ds.apply(tf.data.experimental.assert_cardinality((epochs - start_epoch) * steps))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return ds.with_options(options).prefetch(4), steps


# =============================================================================== train


def _check_train_options(options, given):
    """Conflicting or impossible settings -> UsageError, before anything heavy runs."""
    objective = options["objective"]
    if options.get("num_groups") is not None and objective not in ("miwae", "piwae"):
        raise UsageError(f"--num-groups applies to miwae and piwae, not --objective {objective}")
    if options.get("ciwae_beta") is not None and objective != "ciwae":
        raise UsageError(f"--ciwae-beta applies to --objective ciwae, not {objective}")
    if options.get("ciwae_beta") is not None and not 0.0 <= options["ciwae_beta"] <= 1.0:
        raise UsageError(f"--ciwae-beta must lie in [0, 1], got {options['ciwae_beta']}")
    if options.get("free_bits") is not None and objective != "elbo":
        raise UsageError(f"--free-bits applies to --objective elbo, not {objective}")
    if options.get("free_bits") and options["prior"] != "normal":
        raise UsageError("--free-bits needs --prior normal (a factorised prior)")
    if options.get("resume") and options.get("overwrite"):
        raise UsageError("--resume and --overwrite conflict: continue the run or replace it")
    binarization = options["binarization"]
    if binarization in ("dynamic", "static") and options["likelihood"] not in (
            "bernoulli", "continuous_bernoulli"):
        raise UsageError(f"--binarization {binarization} makes 0/1 data, which needs a "
                         f"Bernoulli likelihood, not --likelihood {options['likelihood']}")
    if options["strategy"] == "multiworker" and "TF_CONFIG" not in os.environ:
        raise UsageError("--strategy multiworker needs the TF_CONFIG environment variable "
                         "(the cluster and this worker's task)")
    if options["precision"] == "mixed_float16" and options["strategy"] == "multiworker":
        raise UsageError("--precision mixed_float16 with --strategy multiworker is not "
                         "supported; use mixed_bfloat16 or float32")
    train_examples = options.get("train_examples")
    if train_examples is not None and train_examples < options["batch_size"]:
        raise UsageError(f"--train-examples {train_examples} is smaller than --batch-size "
                         f"{options['batch_size']}")


def _objective_kwargs(options):
    name = options["objective"]
    kwargs = {}
    if options.get("k") is not None:
        kwargs["num_samples" if name == "elbo" else "k"] = options["k"]
    if options.get("num_groups") is not None:
        kwargs["num_groups"] = options["num_groups"]
    if options.get("ciwae_beta") is not None:
        kwargs["beta"] = options["ciwae_beta"]
    if options.get("free_bits") is not None:
        kwargs["free_bits"] = options["free_bits"]
    return kwargs


def _default_out(command):
    if command == "demo":
        return pathlib.Path("runs") / "demo"
    return pathlib.Path("runs") / datetime.datetime.now().strftime("run-%Y%m%d-%H%M%S")


def prepare_run_dir(options, command):
    """Resolves --out/--resume/--overwrite into (run_dir, options to use, resuming)."""
    run_dir = pathlib.Path(options.get("out") or _default_out(command))
    given = {k: v for k, v in options.items() if k not in RUN_ONLY}
    if options.get("resume"):
        saved = run_config(run_dir)
        saved_options = dict(saved.get("train") or {})
        for key, value in given.items():
            if key in TRAIN_DEFAULTS and saved_options.get(key) != value:
                flag = "--" + key.replace("_", "-")
                raise UsageError(
                    f"{flag} {value} conflicts with the run's saved {key}="
                    f"{saved_options.get(key)}: a resumed run keeps its settings (drop "
                    f"{flag}, or start a new run)")
        merged = {**TRAIN_DEFAULTS, **saved_options,
                  **{k: v for k, v in options.items() if k in RUN_ONLY}}
        merged["out"] = str(run_dir)
        return run_dir, merged, True
    merged = {**TRAIN_DEFAULTS, **options}
    merged["out"] = str(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CLIError(f"--out {run_dir} is a file, not a folder", EXIT_RUN_FOLDER)
    if run_dir.is_dir() and any(run_dir.iterdir()):
        is_run = (run_dir / "config.json").is_file()
        if is_run:
            try:
                is_run = json.loads((run_dir / "config.json").read_text()).get(RUN_MARKER) \
                    == RUN_FORMAT
            except (OSError, ValueError, AttributeError):
                is_run = False
        if not is_run:
            raise CLIError(f"--out {run_dir} exists and is not a keras-vae run folder; "
                           "choose another folder", EXIT_RUN_FOLDER)
        if not options.get("overwrite"):
            raise CLIError(f"{run_dir} already holds a run: continue it with --resume, or "
                           "replace it with --overwrite", EXIT_RUN_FOLDER)
        shutil.rmtree(run_dir)
    return run_dir, merged, False


class _SigintFlag:
    """Turns the first Ctrl-C into a flag that the training callback acts on."""

    def __init__(self):
        self.raised = False
        self.training = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def _handle(self, signum, frame):
        if self.raised or not self.training:
            raise KeyboardInterrupt
        self.raised = True
        print("\nkeras-vae: Ctrl-C: saving a checkpoint after this step (Ctrl-C again to "
              "quit at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _callbacks(keras, run_dir, options, history_rows, sigint, seed):
    """The training callbacks, in the order that keeps a killed run consistent."""
    backup_dir = run_dir / "backup"
    # A resumed run keeps the best val_loss so far, so best.keras stays the best.
    finished = [r.get("val_loss") for r in history_rows.values()
                if isinstance(r.get("val_loss"), float) and math.isfinite(r["val_loss"])]
    best_val = min(finished) if finished else None

    class EpochSeeds(keras.callbacks.Callback):
        """Sets every seed generator to a function of (seed, epoch) at each epoch's start.

        The generators' state is not part of the saved weights; keyed by epoch, a
        resumed run draws the same noise as an uninterrupted one.
        """

        def on_epoch_begin(self, epoch, logs=None):
            import numpy as np

            for i, variable in enumerate(v for v in self.model.variables
                                         if v.path.endswith("seed_generator_state")):
                mixed = (seed * 1_000_003 + epoch * 7_919 + i * 104_729 + 1) % (2**31 - 1)
                variable.assign(np.asarray([mixed, 0]).astype(variable.dtype))

    class HistoryWriter(keras.callbacks.Callback):
        """history.json and history.csv after every epoch (a resumed run appends)."""

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1}
            row.update({k: float(v) for k, v in (logs or {}).items()})
            history_rows[epoch + 1] = row
            write_history(run_dir, history_rows)

    class Interrupt(keras.callbacks.Callback):
        """On Ctrl-C: saves the backup (this epoch restarts on --resume) and stops."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if sigint.raised:
                backup_dir.mkdir(parents=True, exist_ok=True)
                self.model.save_weights(backup_dir / "latest.weights.h5", overwrite=True)
                _write_json(backup_dir / "training_metadata.json",
                            {"epoch": int(self.epoch), "batch": 0})
                raise TrainingInterrupted(int(self.epoch))

    class Delay(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            until = time.time() + float(options.get("epoch_delay") or 0)
            while time.time() < until and not sigint.raised:
                time.sleep(0.05)

    callbacks = [EpochSeeds(), Interrupt(), HistoryWriter(),
                 keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True,
                                                  delete_checkpoint=False),
                 keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "best.keras"),
                                                 monitor="val_loss", save_best_only=True,
                                                 initial_value_threshold=best_val),
                 _tensorboard(keras, run_dir / "logs")]
    if options.get("early_stopping"):
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=options["early_stopping"],
            restore_best_weights=True, verbose=1))
    if options.get("epoch_delay"):
        callbacks.append(Delay())
    return callbacks


def _tensorboard(keras, log_dir):
    """Keras's TensorBoard callback, or (without the tensorboard package) a writer of the
    same per-epoch scalar event files through TensorFlow's core `tf.summary.write`."""
    try:
        import tensorboard  # noqa: F401

        return keras.callbacks.TensorBoard(str(log_dir), write_graph=False, profile_batch=0)
    except ImportError:
        pass
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    metadata = metadata.SerializeToString()

    class ScalarEvents(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writers = {}

        def _writer(self, name):
            if name not in self.writers:
                self.writers[name] = tf.summary.create_file_writer(str(log_dir / name))
            return self.writers[name]

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                split = "validation" if key.startswith("val_") else "train"
                tag = "epoch_" + (key[4:] if split == "validation" else key)
                with self._writer(split).as_default():
                    tf.summary.write(tag, tf.constant(float(value)), step=epoch,
                                     metadata=metadata)
            for writer in self.writers.values():
                writer.flush()

        def on_train_end(self, logs=None):
            for writer in self.writers.values():
                writer.close()

    return ScalarEvents()


def write_history(run_dir, rows):
    """rows {epoch: {metric: value}} -> history.json (lists per metric) and history.csv."""
    epochs = sorted(rows)
    keys = ["epoch"] + sorted({k for e in epochs for k in rows[e] if k != "epoch"})
    history = {k: [rows[e].get(k) for e in epochs] for k in keys}
    _write_json(run_dir / "history.json", history)
    tmp = run_dir / "history.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(keys)
        for e in epochs:
            writer.writerow([rows[e].get(k, "") for k in keys])
    os.replace(tmp, run_dir / "history.csv")
    return history


def read_history_rows(run_dir):
    try:
        history = json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):
        return {}
    rows = {}
    for i, epoch in enumerate(history.get("epoch", [])):
        rows[int(epoch)] = {k: v[i] for k, v in history.items() if i < len(v)}
    return rows


def _strategy(name):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _is_chief():
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    return kind == "chief" or (kind == "worker" and index == 0 and
                               "chief" not in config.get("cluster", {}))


def _restore_point(model, backup_dir):
    """The epoch a resumed run starts at; checks that the backup loads (else exit 4)."""
    weights = backup_dir / "latest.weights.h5"
    metadata = backup_dir / "training_metadata.json"
    if not weights.exists():
        return 0
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    candidates = [(weights, metadata),
                  (backup_dir / "latest.weights.h5.bkp",
                   backup_dir / "training_metadata.json.bkp")]
    errors = []
    for w, m in candidates:
        if not w.exists():
            continue
        try:
            model.load_weights(w)
            epoch = int(json.loads(m.read_text())["epoch"]) if m.exists() else 0
        except Exception as error:  # noqa: BLE001
            errors.append(f"{w.name}: {_first_line(error)}")
            continue
        if w != weights:  # the previous checkpoint: put it where BackupAndRestore looks
            shutil.copy(w, weights)
            if m.exists():
                shutil.copy(m, metadata)
        return epoch
    raise CLIError(f"corrupt checkpoint in {backup_dir}: {'; '.join(errors)}; delete that "
                   "folder to start the run again from scratch", EXIT_CORRUPT)


def train(options, command="train"):
    """Trains a run as `options` says; returns a dict of what it wrote."""
    merged = {**TRAIN_DEFAULTS, **options}
    _check_train_options(merged, options)
    chief = merged["strategy"] != "multiworker" or _is_chief()
    scratch = None
    if not chief:
        # Only the chief writes the run folder; the other workers of a multi-worker run
        # work in a scratch copy (read from the shared folder when resuming).
        scratch = pathlib.Path(tempfile.mkdtemp(prefix="keras_vae_worker_"))
        target = pathlib.Path(options.get("out") or _default_out(command))
        if options.get("resume") and target.is_dir():
            shutil.copytree(target, scratch / "run")
        options = {**options, "out": str(scratch / "run"), "overwrite": False}
    run_dir, options, resuming = prepare_run_dir(options, command)
    _check_train_options(options, options)
    check_data_name(options["data"])
    started = time.time()
    if options["data"] not in DATA_NAMES and not resuming:  # a path: keep it absolute
        options["data"] = str(pathlib.Path(options["data"]).expanduser().resolve())
    if options["seed"] is None:
        options["seed"] = int.from_bytes(os.urandom(3), "little")
    seed = int(options["seed"])

    state = _read_state(run_dir) if resuming else {}
    if resuming and state.get("status") == "finished":
        _say(f"keras-vae: {run_dir} already finished ({state.get('epochs_done')} epochs); "
             "nothing to resume")
        return {"run_dir": run_dir, "already_finished": True}
    if resuming and state.get("status") == "running" and _process_alive(state):
        raise CLIError(f"{run_dir} is in use: process {state.get('pid')} is training it now",
                       EXIT_RUN_FOLDER)

    _import_tf()
    import keras
    import tensorflow as tf

    import keras_vae
    from keras_vae import objectives

    keras.utils.set_random_seed(seed)
    ds, x_train, x_val, y_val, binarization = load_run_data(options)
    if len(x_train) < options["batch_size"]:
        raise UsageError(f"the training set has {len(x_train)} examples, fewer than "
                         f"--batch-size {options['batch_size']}")

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resuming:
        config = {
            RUN_MARKER: RUN_FORMAT,
            "command": command,
            "created": _now(),
            "keras_vae_version": _version(),
            "argv": sys.argv[1:],
            "train": {k: options[k] for k in TRAIN_DEFAULTS if k not in RUN_ONLY},
            "data": {**ds.protocol, "binarization_used": binarization,
                     "num_train_used": int(len(x_train)), "num_test_used": int(len(x_val))},
            "reproduce": f"keras-vae train --config {run_dir / 'config.json'} --out NEW_DIR",
        }
        _write_json(run_dir / "config.json", config)
    _write_state(run_dir, status="running", epochs_done=len(read_history_rows(run_dir)),
                 epochs=options["epochs"], pid=os.getpid(), host=_host())

    keras.mixed_precision.set_global_policy(options["precision"])
    strategy = _strategy(options["strategy"])
    with strategy.scope():
        try:
            objective = objectives.get(options["objective"], **_objective_kwargs(options))
            model = keras_vae.VAE(
                latent_dim=options["latent_dim"], event_shape=x_train.shape[1:],
                encoder=options["preset"], likelihood=options["likelihood"],
                prior=options["prior"], objective=objective, beta=options["kl_beta"],
                warmup_steps=options["warmup_steps"],
                gradient_estimator=options["gradient_estimator"], seed=seed)
        except (ValueError, TypeError) as error:
            raise UsageError(f"cannot build the model: {_first_line(error)}") from error
        if options["likelihood"] in ("bernoulli", "continuous_bernoulli", "gaussian",
                                     "gaussian_learned_scale"):
            try:
                model.initialize_output_bias(x_train)
            except ValueError:
                pass
        model.compile(optimizer=keras.optimizers.Adam(options["learning_rate"]),
                      jit_compile="auto" if options["jit"] is None else bool(options["jit"]),
                      steps_per_execution=int(options["steps_per_execution"]))
        start_epoch = _restore_point(model, run_dir / "backup") if resuming else 0

    epochs = int(options["epochs"])
    history_rows = {e: r for e, r in read_history_rows(run_dir).items() if e <= start_epoch} \
        if resuming else {}
    if resuming:
        _say(f"keras-vae: resuming {run_dir} at epoch {start_epoch + 1}/{epochs}")
    stream, steps = training_stream(x_train, options["batch_size"], seed, start_epoch, epochs,
                                    dynamic=binarization == "dynamic")
    val = tf.data.Dataset.from_tensor_slices(x_val.astype("float32")).batch(
        options["batch_size"])
    sigint = _SigintFlag()
    callbacks = _callbacks(keras, run_dir, options, history_rows, sigint, seed)
    _say(f"keras-vae: training {options['objective']} ({objective!r}) on {options['data']} "
         f"({len(x_train)} examples, {binarization} binarisation), {epochs} epochs of "
         f"{steps} steps -> {run_dir}")
    interrupted = None
    with sigint:
        sigint.training = True
        try:
            if start_epoch < epochs:
                model.fit(stream, epochs=epochs, steps_per_epoch=steps, validation_data=val,
                          callbacks=callbacks, verbose=options["verbose"], shuffle=False)
        except TrainingInterrupted as stop:
            interrupted = stop.args[0]
        except OSError as error:
            if "backup" in str(error) or "weights" in str(error):
                raise CLIError(f"corrupt checkpoint in {run_dir / 'backup'}: "
                               f"{_first_line(error)}", EXIT_CORRUPT) from error
            raise
        finally:
            sigint.training = False

    epochs_done = len(history_rows)
    model_path = run_dir / "model.keras"
    model.save(model_path)
    if interrupted is not None:
        _write_state(run_dir, status="interrupted", epochs_done=epochs_done, epochs=epochs)
        raise CLIError(f"interrupted during epoch {interrupted + 1}: checkpoint saved in "
                       f"{run_dir / 'backup'}; continue with: keras-vae train --out {run_dir} "
                       "--resume", EXIT_INTERRUPTED)
    nonfinite = int(model.nonfinite_steps.numpy())
    stopped_early = epochs_done < epochs
    pictures = {}
    if options.get("pictures", True) and chief:
        pictures = write_pictures(model, x_val, y_val, read_history(run_dir),
                                  run_dir / "pictures", seed)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    status = "finished" if not nonfinite else "stopped_nonfinite"
    _write_state(run_dir, status=status, epochs_done=epochs_done, epochs=epochs,
                 stopped_early=stopped_early, nonfinite_steps=nonfinite,
                 train_seconds=round(time.time() - started, 1))
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    last = history_rows.get(max(history_rows)) if history_rows else {}
    summary = ""
    if last:
        summary = (f"; final loss {last.get('loss'):.3f}, "
                   f"val_loss {last.get('val_loss', float('nan')):.3f}")
    _say(f"keras-vae: trained {epochs_done}/{epochs} epochs in {time.time() - started:.0f} s"
         + summary)
    if nonfinite:
        raise CLIError(f"training stopped at a non-finite loss (weights of the last finite step "
                       f"saved in {model_path}); lower --learning-rate or check the data")
    return {"run_dir": run_dir, "model": model, "model_path": model_path, "pictures": pictures,
            "history": last, "x_val": x_val, "y_val": y_val, "options": options}


def read_history(run_dir):
    try:
        return json.loads((pathlib.Path(run_dir) / "history.json").read_text())
    except (OSError, ValueError):
        return {}


def write_pictures(model, x, y, history, out_dir, seed):
    """The run's PNGs: samples, reconstructions, interpolations, latent scatter, curves."""
    import numpy as np

    from keras_vae import plotting

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    samples = {t: np.asarray(model.sample(10, temperature=t, seed=seed), "float32")
               for t in SAMPLE_TEMPERATURES}
    paths["samples"] = out_dir / "samples.png"
    plotting.samples_figure(samples, path=paths["samples"])
    n = min(20, len(x))
    recon = np.asarray(model.reconstruct(x[:n]), "float32")
    paths["reconstructions"] = out_dir / "reconstructions.png"
    plotting.reconstructions_figure(x[:n], recon, ncols=10, path=paths["reconstructions"])
    if len(x) >= 2:
        rng = np.random.default_rng(seed)
        pairs = min(4, len(x) // 2)
        idx = rng.choice(len(x), size=2 * pairs, replace=False)
        strips = np.asarray(model.interpolate(x[idx[:pairs]], x[idx[pairs:]], steps=10),
                            "float32")
        paths["interpolations"] = out_dir / "interpolations.png"
        plotting.interpolation_figure(strips, path=paths["interpolations"], method="linear")
    m = min(1000, len(x))
    z = np.concatenate([np.asarray(model.encode(x[i:i + 500]).mean(), "float32")
                        for i in range(0, m, 500)])
    paths["latent"] = out_dir / "latent.png"
    plotting.latent_scatter(z, None if y is None else np.asarray(y)[:m], path=paths["latent"])
    if history and len(history.get("epoch", [])):
        paths["curves"] = out_dir / "curves.png"
        plotting.training_curves(history, path=paths["curves"])
    return paths


def cmd_train(args, options):
    result = train(options, "train")
    if result.get("already_finished"):
        return EXIT_OK
    run_dir = result["run_dir"]
    _say(f"keras-vae: run folder {run_dir}: config.json, history.json/.csv, model.keras, "
         f"checkpoints/, logs/ (tensorboard --logdir {run_dir / 'logs'}), pictures/")
    return EXIT_OK


# =============================================================================== evaluate


def _eval_data(config, examples):
    options = {**TRAIN_DEFAULTS, **(config.get("train") or {})}
    options["test_examples"] = None
    _, _, x_val, y_val, _ = load_run_data(options)
    if examples:
        x_val = x_val[:examples]
        y_val = None if y_val is None else y_val[:examples]
    return x_val, y_val


def evaluate_run(run_dir, k=1000, examples=None, batch_size=20, snr_estimates=32, seed=0,
                 out=None, model=None, config=None):
    from keras_vae import evaluation

    if model is None:
        model, config = load_run_model(run_dir)
    x, _ = _eval_data(config, examples)
    out = pathlib.Path(out) if out else pathlib.Path(run_dir) / "metrics.json"
    _say(f"keras-vae: evaluating {run_dir} on {len(x)} test examples with k={k}")
    report = evaluation.evaluate_model(
        model, x, k=k, seed=seed, batch_size=batch_size, snr_estimates=snr_estimates,
        report_path=out, protocol=config.get("data"), verbose=1)
    return report, out


def metrics_table(report):
    """The evaluation report as rows (name, value) for the printed table."""
    rows = []
    ll = report.get("log_likelihood") or {}
    if ll:
        rows.append((f"log p(x), k={ll.get('k')}",
                     f"{ll.get('mean'):.3f} +- {ll.get('standard_error', float('nan')):.3f} nats"))
        rows.append(("NLL", f"{ll.get('nll'):.3f} nats"))
    bounds = report.get("bounds") or {}
    for key, value in bounds.items():
        if key in ("k", "num_examples") or key.endswith("_standard_error"):
            continue
        rows.append((key if key != "elbo" else "ELBO", f"{value:.3f} nats"))
    au = report.get("active_units") or {}
    if au:
        rows.append(("active units", f"{au.get('count')}/{au.get('latent_dim')} "
                                     f"(Var > {au.get('threshold')})"))
    ess = report.get("effective_sample_size") or {}
    if ess:
        rows.append(("ESS", f"{ess.get('mean'):.1f} of k={ess.get('k')} "
                            f"(min {ess.get('min'):.1f})"))
    snr = report.get("gradient_snr")
    if snr:
        rows.append(("gradient SNR", f"encoder {snr.get('encoder_mean'):.3g}, "
                                     f"decoder {snr.get('decoder_mean'):.3g}"))
    collapse = report.get("posterior_collapse")
    if isinstance(collapse, dict) and collapse.get("collapsed"):
        rows.append(("posterior collapse", "yes"))
    return rows


def print_table(rows, title=None):
    width = max((len(name) for name, _ in rows), default=10)
    if title:
        _say(title)
    for name, value in rows:
        _say(f"  {name:<{width}}  {value}")


def cmd_evaluate(args, options):
    run_dir = _require_run_dir(options)
    report, out = evaluate_run(run_dir, k=options.get("k") or 1000,
                               examples=options.get("examples"),
                               batch_size=options.get("batch_size") or 20,
                               snr_estimates=options.get("snr_estimates", 32),
                               seed=options.get("seed") or 0, out=options.get("out"))
    print_table(metrics_table(report), title=f"keras-vae: metrics of {run_dir} (-> {out})")
    return EXIT_OK


# =============================================================================== pictures


def cmd_sample(args, options):
    import numpy as np

    run_dir = _require_run_dir(options)
    model, _ = load_run_model(run_dir)
    from keras_vae import plotting

    n = options.get("num") or 64
    t = options.get("temperature", 1.0)
    seed = options.get("seed") or 0
    images = np.asarray(model.sample(n, temperature=t, seed=seed), "float32")
    out = pathlib.Path(options.get("out") or run_dir / "pictures" / f"sample_T{t:g}_seed{seed}.png")
    image = plotting.image_grid(images, ncols=options.get("ncols"),
                                scale=options.get("scale") or 2, path=out)
    if options.get("npy"):
        np.save(options["npy"], images)
    _say(f"keras-vae: {n} samples at temperature {t:g} (seed {seed}) -> {out} "
         f"({image.size[0]}x{image.size[1]})")
    return EXIT_OK


def cmd_interpolate(args, options):
    import numpy as np

    run_dir = _require_run_dir(options)
    if options.get("indices") is not None and options.get("pairs") is not None:
        raise UsageError("--indices and --pairs conflict: give two test indices or a number "
                         "of random pairs")
    steps = options.get("steps") or 10
    if steps < 2:
        raise UsageError(f"--steps must be >= 2, got {steps}")
    model, config = load_run_model(run_dir)
    from keras_vae import plotting

    x, _ = _eval_data(config, None)
    method = options.get("method") or "linear"
    seed = options.get("seed") or 0
    if options.get("indices") is not None:
        a, b = options["indices"]
        if max(a, b) >= len(x):
            raise UsageError(f"--indices must be < {len(x)} (the test set's size)")
        ia, ib = np.asarray([a]), np.asarray([b])
    else:
        pairs = options.get("pairs") or 4
        if 2 * pairs > len(x):
            raise UsageError(f"--pairs {pairs} needs {2 * pairs} test examples; there are "
                             f"{len(x)}")
        idx = np.random.default_rng(seed).choice(len(x), size=2 * pairs, replace=False)
        ia, ib = idx[:pairs], idx[pairs:]
    strips = np.asarray(model.interpolate(x[ia], x[ib], steps=steps, method=method), "float32")
    out = pathlib.Path(options.get("out") or
                       run_dir / "pictures" / f"interpolate_{method}_seed{seed}.png")
    image = plotting.interpolation_figure(strips, path=out, method=method)
    _say(f"keras-vae: {len(strips)} {method} interpolation(s) of {steps} steps -> {out} "
         f"({image.size[0]}x{image.size[1]})")
    return EXIT_OK


# =============================================================================== export


def export_run(run_dir, formats=("all",), out=None, name="vae", version=1, overwrite=False):
    try:
        from keras_vae import export as export_lib

        export_all = export_lib.export_all
    except (ImportError, AttributeError) as error:
        raise CLIError(f"keras_vae.export is not available: {_first_line(error)} (install "
                       "the extra: pip install 'keras-vae[export]')") from error
    run_config(run_dir)
    model_path = pathlib.Path(run_dir) / "model.keras"
    if not model_path.is_file():
        load_run_model(run_dir)  # raises the explanatory error
    formats = list(formats or ["all"])
    if "all" in formats:
        if len(formats) > 1:
            raise UsageError("--format all conflicts with naming formats")
        formats = ["savedmodel", "onnx", "tflite"]
    out = pathlib.Path(out) if out else pathlib.Path(run_dir) / "export"
    _say(f"keras-vae: exporting {model_path} as {', '.join(formats)} -> {out}")
    try:
        manifest = export_all(str(model_path), str(out), name=name, version=version,
                              overwrite=overwrite, formats=tuple(formats))
    except FileExistsError as error:
        raise CLIError(f"{_first_line(error)} (use --overwrite to replace it)",
                       EXIT_RUN_FOLDER) from error
    return manifest, out


def _manifest_lines(manifest, out):
    """One line per exported artefact: its path, size and the export's own parity figure."""
    lines = []
    artefacts = (manifest or {}).get("artefacts") or {}
    parity = (manifest or {}).get("parity") or {}
    for key, info in artefacts.items():
        size = info.get("size_bytes")
        size = f"{size / 1e6:.1f} MB" if isinstance(size, (int, float)) else ""
        diff = (parity.get(key) or {}).get("decode_max_abs_diff")
        check = ""
        if isinstance(diff, dict) and diff:
            check = f"decode max |diff| {max(diff.values()):.1e}"
        elif (parity.get(key) or {}).get("decode_error_vs_keras") is not None:
            check = "int8, error within tolerance"
        elif parity.get(key):
            check = "checked"
        lines.append(f"  {key:<18} {pathlib.Path(out) / info.get('path', '')}  {size}  {check}"
                     .rstrip())
    return lines or [f"  {out}"]


def verify_exports(model, export_dir, manifest=None, atol=1e-4):
    """Reloads every exported artefact with its own runtime and decodes the same z.

    SavedModel (tf.saved_model.load, 'decode'), ONNX decoder (onnxruntime),
    TFLite (ai-edge-litert or tf.lite, 'decode' signature), and the ONNX samplers
    (right shape, values in [0, 1]). Returns {artefact: max |diff| or a note};
    raises CLIError if a decoder disagrees with the Keras model by more than atol.
    """
    import numpy as np

    export_dir = pathlib.Path(export_dir)
    if manifest is None:
        try:
            manifest = json.loads((export_dir / "manifest.json").read_text())
        except (OSError, ValueError) as error:
            raise CLIError(f"no readable manifest.json in {export_dir}: {_first_line(error)}",
                           EXIT_CORRUPT) from error
    artefacts = manifest.get("artefacts") or {}
    z = np.random.default_rng(0).standard_normal((8, model.latent_dim)).astype("float32")
    want = np.asarray(model.decoder_parameters(z)["mean"], "float32")
    results = {}

    def compare(key, got):
        got = np.asarray(got, "float32")
        if got.shape != want.shape:
            raise CLIError(f"export check failed: {key} gives shape {got.shape}, the Keras "
                           f"model {want.shape}", EXIT_CORRUPT)
        diff = float(np.max(np.abs(got - want)))
        if not diff <= atol:
            raise CLIError(f"export check failed: {key} decodes with max |diff| {diff:.3g} > "
                           f"{atol:g} from the Keras model", EXIT_CORRUPT)
        results[key] = diff

    for key, info in artefacts.items():
        path = export_dir / info["path"]
        try:
            if key == "savedmodel":
                import tensorflow as tf

                loaded = tf.saved_model.load(str(path))
                compare(key, loaded.signatures["decode"](z=tf.constant(z))["mean"])
            elif key == "onnx_decoder":
                import onnxruntime as ort

                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                compare(key, session.run(["mean"], {"z": z})[0])
            elif key.startswith("onnx_sampler"):
                import onnxruntime as ort

                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                images = session.run(["images"], {"num_samples": np.asarray(8, "int64"),
                                                  "temperature": np.asarray(1.0, "float32")})[0]
                ok = images.shape == want.shape and np.all((images >= 0) & (images <= 1))
                if not ok:
                    raise CLIError(f"export check failed: {key} gives images of shape "
                                   f"{images.shape} outside [0, 1]", EXIT_CORRUPT)
                results[key] = "samples ok"
            elif key == "tflite":
                try:
                    from ai_edge_litert.interpreter import Interpreter
                except ImportError:
                    import tensorflow as tf

                    Interpreter = tf.lite.Interpreter
                runner = Interpreter(model_path=str(path)).get_signature_runner("decode")
                compare(key, runner(z=z)["mean"])
        except CLIError:
            raise
        except Exception as error:  # noqa: BLE001
            raise CLIError(f"export check failed: cannot run {path}: {_first_line(error)}",
                           EXIT_CORRUPT) from error
    return results


def _verify_lines(results):
    return [f"  {key:<18} " + (f"max |diff| {value:.1e} vs Keras" if isinstance(value, float)
                                else str(value)) for key, value in results.items()]


def cmd_export(args, options):
    run_dir = _require_run_dir(options)
    manifest, out = export_run(run_dir, options.get("format") or ["all"], options.get("out"),
                               options.get("name") or "vae", options.get("model_version") or 1,
                               bool(options.get("overwrite")))
    _say(f"keras-vae: exported -> {out}")
    for line in _manifest_lines(manifest, out):
        _say(line)
    model, _ = load_run_model(run_dir)
    _say("keras-vae: verifying: each artefact reloaded by its own runtime, decoding the same z")
    for line in _verify_lines(verify_exports(model, out, manifest)):
        _say(line)
    return EXIT_OK


def cmd_verify(args, options):
    run_dir = _require_run_dir(options)
    model, _ = load_run_model(run_dir)
    out = pathlib.Path(options.get("out") or run_dir / "export")
    if not out.is_dir():
        raise CLIError(f"no export folder {out}: run 'keras-vae export {run_dir}' first",
                       EXIT_RUN_FOLDER)
    results = verify_exports(model, out)
    _say(f"keras-vae: {out}: every artefact agrees with {run_dir / 'model.keras'}")
    for line in _verify_lines(results):
        _say(line)
    return EXIT_OK


# =============================================================================== compare


def cmd_compare(args, options):
    from keras_vae import comparison

    runs = [pathlib.Path(r) for r in options.get("run_dirs") or []]
    if len(runs) < 1:
        raise UsageError("compare needs at least one RUN_DIR")
    names = [r.name or str(r) for r in runs]
    if len(set(names)) != len(names):
        names = [str(r) for r in runs]
    models, first = {}, None
    for name, run in zip(names, runs):
        model, config = load_run_model(run)
        if first is None:
            first = config
        elif (config.get("data") or {}).get("data") != (first.get("data") or {}).get("data"):
            raise UsageError(f"{run} was trained on {config['data'].get('data')}, the first run "
                             f"on {first['data'].get('data')}: compare runs on the same data")
        models[name] = model
    x, _ = _eval_data(first, options.get("examples") or 500)
    out = pathlib.Path(options.get("out") or pathlib.Path("runs") / "compare")
    report = comparison.compare(models, x, str(out), seed=options.get("seed") or 0,
                                k=options.get("k") or 100)
    _say(f"keras-vae: compared {len(models)} run(s) on {len(x)} test examples -> {out}")
    for name, entry in report["metrics"].items():
        ll = entry.get("test_log_likelihood")
        ll = f"log p(x) {ll:.2f} (k={entry.get('log_likelihood_k')})" if ll is not None else ""
        _say(f"  {name:<24} {ll}  reconstruction MSE {entry['reconstruction_mse']:.4f}")
    for name, path in report.get("files", {}).items():
        _say(f"  {name:<24} {path}")
    return EXIT_OK


# =============================================================================== serve


def cmd_serve(args, options):
    try:
        from keras_vae.serving.__main__ import main as serving_main
    except ImportError as error:
        raise CLIError(f"keras_vae.serving is not available: {_first_line(error)}") from error
    rest = list(getattr(args, "args", []) or [])
    code = serving_main(["serve", *rest])
    return int(code or 0)


# =============================================================================== demo


def cmd_demo(args, options):
    started = time.time()
    export = options.pop("export", True)
    eval_k = options.pop("eval_k", None) or DEMO_EVAL_K
    options = {**DEMO_TRAIN, **options}
    run_dir = pathlib.Path(options.get("out") or _default_out("demo"))
    if (run_dir / "config.json").is_file() and not options.get("overwrite"):
        run_config(run_dir)  # a foreign folder is refused, a keras-vae run is replaced
        _say(f"keras-vae: replacing the previous demo run in {run_dir}")
        options["overwrite"] = True
    _say("keras-vae demo [1/5] training on the embedded MNIST digits (no network needed)")
    result = train(options, "demo")
    run_dir = result["run_dir"]
    t_train = time.time() - started

    _say(f"keras-vae demo [2/5] evaluating (k={eval_k}, {DEMO_EVAL_EXAMPLES} test digits)")
    report, metrics_path = evaluate_run(run_dir, k=eval_k, examples=DEMO_EVAL_EXAMPLES,
                                        batch_size=50, snr_estimates=0, seed=0,
                                        model=result["model"],
                                        config=run_config(run_dir))
    print_table(metrics_table(report))

    _say("keras-vae demo [3/5] pictures")
    for name, path in result["pictures"].items():
        _say(f"  {name:<16} {path}")

    manifest = None
    export_dir = run_dir / "export"
    if export:
        _say("keras-vae demo [4/5] exporting to SavedModel, ONNX and TFLite, each checked "
             "against the Keras model")
        manifest, export_dir = export_run(run_dir, ["all"], export_dir, overwrite=True)
        for line in _manifest_lines(manifest, export_dir):
            _say(line)
        _say("keras-vae demo [5/5] verifying: each artefact reloaded by its own runtime, "
             "decoding the same z as the Keras model")
        for line in _verify_lines(verify_exports(result["model"], export_dir, manifest)):
            _say(line)
    else:
        _say("keras-vae demo [4/5] export skipped (--no-export)")

    ll = report.get("log_likelihood") or {}
    _say("")
    _say(f"keras-vae demo: done in {time.time() - started:.0f} s (training {t_train:.0f} s)")
    _say(f"  run folder     {run_dir}")
    _say(f"  model          {run_dir / 'model.keras'}")
    _say(f"  test NLL       {ll.get('nll', float('nan')):.2f} nats (k={eval_k}) -> {metrics_path}")
    _say(f"  pictures       {run_dir / 'pictures'}")
    if export:
        _say(f"  exports        {export_dir}")
    _say(f"  TensorBoard    tensorboard --logdir {run_dir / 'logs'}")
    _say(f"  next           keras-vae sample {run_dir} -n 64 --temperature 0.8 --out grid.png")
    return EXIT_OK


# =============================================================================== main


def main(argv=None):
    """The `keras-vae` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        args, options, _ = parse(argv)
        debug = debug or bool(options.get("debug"))
        options.pop("debug", None)
        options.pop("config", None)
        return int(args.func(args, options) or 0)
    except CLIError as error:
        if debug:
            traceback.print_exc()
        message = str(error)
        prefix = "" if message.startswith(PROG) else f"{PROG}: "
        kind = "interrupted" if error.code == EXIT_INTERRUPTED else "error"
        if message.startswith(PROG):
            print(message if ": error:" in message else f"{PROG}: {kind}: {message}",
                  file=sys.stderr, flush=True)
        else:
            print(f"{prefix}{kind}: {message}", file=sys.stderr, flush=True)
        return error.code
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except SystemExit as error:  # --help, --version
        return error.code if isinstance(error.code, int) else 0
    except Exception as error:  # noqa: BLE001
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {type(error).__name__}: {_first_line(error)} "
              "(run again with --debug for the traceback)", file=sys.stderr, flush=True)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
