r"""The options of the `keras-vae` commands, each declared once, and `TrainConfig`.

A command lists its options as `Option` rows. The same row adds the flag to
argparse (`add_options`) and reads the value of a `--config` file
(`_config.read_config_file`), so a flag and its config key agree in name, type
and choices. Choices that name a registered family (`--likelihood`, `--prior`,
`--objective`, `--preset`, `--gradient-estimator`) are read from
`keras_vae.names` when the parser is built: a likelihood that user code
registers before `cli.main([...])` is offered.

`TrainConfig` (`_train_config`, re-exported here) is what `keras-vae train`
runs from; its flags are the `TRAIN_OPTIONS` rows.
"""

import argparse
import dataclasses
import math

from keras_vae import names
from keras_vae.cli._train_config import TrainConfig

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
BINARIZATIONS = ("auto", "dynamic", "static", "none")


def _number(kind, check, expected):
    """An argparse type: `kind(text)`, refused unless `check(value)` ('must be EXPECTED')."""

    def convert(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    convert.__name__ = expected
    convert.kind = kind  # what a config file must give: an int, or a number (_config)
    return convert


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonnegative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
nonnegative_float = _number(float, lambda v: v >= 0 and math.isfinite(v), "a number >= 0")
number = _number(float, math.isfinite, "a number")
integer = _number(int, lambda v: True, "an integer")


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a command: its flag for argparse and its key in a config file.

    Attributes:
      dest: the attribute of the parsed namespace (and a config key).
      flags: e.g. ('-n', '--num'); empty for a positional argument.
      type: converts one command-line word (an argparse type).
      default: the value when neither the command line nor a config file gives one.
      choices: the allowed values, or a callable returning them (read when used).
      help: the help text, or a callable returning it; '(default: X)' is added.
      default_help: what the help says of a None default (e.g. "the preset's").
      metavar, nargs: as in argparse.
      action: 'store', 'store_true', 'store_false' (dest holds the positive meaning)
        or 'switch' (--x / --no-x).
      group: the help section.
      hidden: left out of --help (testing aids).
    """

    dest: str
    flags: tuple = ()
    type: object = None
    default: object = None
    choices: object = None
    help: object = ""
    metavar: object = None
    nargs: object = None
    action: str = "store"
    group: str = None
    hidden: bool = False
    default_help: str = None

    def choice_values(self):
        """The allowed values now (a registry's names at the time of the call), or None."""
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def help_text(self):
        text = self.help() if callable(self.help) else self.help
        if self.action in ("store", "switch") and self.default not in (None, False):
            text = f"{text} (default: {self.default})"
        elif self.default is None and self.default_help:
            text = f"{text} (default: {self.default_help})"
        return argparse.SUPPRESS if self.hidden else text

    def config_keys(self):
        """The keys that name this option in a config file: dest and the long flag's name."""
        keys = {self.dest}
        if self.action != "store_false":
            keys.update(f[2:].replace("-", "_") for f in self.flags if f.startswith("--"))
        return keys

    def add_to(self, parser):
        """Adds the argument; its argparse default is None, so given values can be told apart."""
        if not self.flags:
            parser.add_argument(self.dest, nargs=self.nargs, metavar=self.metavar,
                                help=self.help_text(), default=None)
            return
        kwargs = {"dest": self.dest, "default": None, "help": self.help_text()}
        if self.action == "switch":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif self.action != "store":
            kwargs["action"] = self.action
        else:
            kwargs.update({k: v for k, v in (("type", self.type), ("metavar", self.metavar),
                                              ("nargs", self.nargs),
                                              ("choices", self.choice_values()))
                           if v is not None})
        parser.add_argument(*self.flags, **kwargs)


def add_options(parser, options):
    """Adds every row of `options` to `parser`, in help sections by `Option.group`."""
    groups = {}
    for option in options:
        target = parser
        if option.group:
            if option.group not in groups:
                groups[option.group] = parser.add_argument_group(option.group)
            target = groups[option.group]
        option.add_to(target)


def add_command(subparsers, name, options, run, **parser_kwargs):
    """Adds command `name`: its parser with `options`, calling `run(args)` (`_app.main`)."""
    parser = subparsers.add_parser(name, **parser_kwargs)
    add_options(parser, options)
    parser.set_defaults(run=run, option_table=options)
    return parser


COMMON = (
    Option("config", ("--config",), metavar="FILE",
           help="read options from a YAML or JSON file (command-line flags win)"),
    Option("debug", ("--debug",), action="store_true", default=False,
           help="show the traceback of an error and TensorFlow's start-up log"),
)


def run_dir_option(help_text="a run folder made by 'keras-vae train'"):
    """The RUN_DIR positional argument of the commands that read a run."""
    return Option("run_dir", nargs="?", metavar="RUN_DIR", help=help_text)


def _presets():
    return "encoder/decoder networks: " + "; ".join(
        f"{entry.name}: {entry.description}" for entry in names.PRESETS)


def _datasets():
    return (f"a data set ({', '.join(names.DATASETS.names())}: 'embedded' is shipped in the "
            "package, offline), or a .npy/.npz file or an image folder (without a test part, "
            "its last 10%% are the test set)")


_TRAIN = TrainConfig()


def _setting(dest, *flags, **kwargs):
    """A row of a TrainConfig setting: its default is the dataclass's."""
    return Option(dest, flags, default=getattr(_TRAIN, dest), **kwargs)


TRAIN_OPTIONS = (
    _setting("data", "--data", metavar="NAME|PATH", help=_datasets, group="data"),
    _setting("binarization", "--binarization", choices=BINARIZATIONS, group="data",
             help="auto: dynamic for a likelihood on [0, 1] (a fresh Bernoulli draw each "
                  "epoch), else none; the test set is binarised once with a fixed seed"),
    _setting("train_examples", "--train-examples", type=positive_int, metavar="N",
             group="data", help="use only the first N training examples"),
    _setting("test_examples", "--test-examples", type=positive_int, metavar="N",
             group="data", help="test examples used for validation and pictures"),
    _setting("preset", "--preset", choices=names.PRESETS.names, help=_presets, group="model"),
    _setting("latent_dim", "--latent-dim", type=positive_int, metavar="D", group="model",
             help="size of z", default_help="the preset's"),
    _setting("likelihood", "--likelihood", choices=names.LIKELIHOODS.names, help="p(x|z)",
             group="model"),
    _setting("prior", "--prior", choices=names.PRIORS.names, help="p(z)", group="model"),
    _setting("posterior", "--posterior", choices=names.POSTERIORS.names,
             help="q(z|x): diagonal_gaussian, or a flow (iaf, planar)", group="model"),
    _setting("conditional", "--conditional", action="switch", group="model",
             help="a conditional VAE on the data's labels: q(z|x,y), p(x|z,y) "
                  "(--prior class_conditional adds a learned p(z|y))"),
    _setting("objective", "--objective", choices=names.OBJECTIVES.names,
             help="the training bound", group="objective"),
    _setting("k", "--k", type=positive_int, metavar="K", group="objective",
             help="importance samples per example (iwae, ciwae; elbo: Monte-Carlo samples) "
                  "or per group (miwae, piwae)", default_help="the objective's"),
    _setting("num_groups", "--num-groups", type=positive_int, metavar="M", group="objective",
             help="groups M of miwae/piwae (M x K samples per example)"),
    _setting("ciwae_beta", "--ciwae-beta", type=number, metavar="B", group="objective",
             help="ciwae's mixing weight in [0, 1]: B*ELBO + (1-B)*IWAE"),
    _setting("kl_beta", "--kl-beta", type=nonnegative_float, metavar="B", group="objective",
             help="weight of the KL term (beta-VAE)"),
    _setting("warmup_steps", "--warmup-steps", type=nonnegative_int, metavar="N",
             group="objective", help="KL warm-up: the KL weight rises linearly over N steps"),
    _setting("free_bits", "--free-bits", type=nonnegative_float, metavar="NATS",
             group="objective", help="free bits per latent unit (elbo only)"),
    _setting("gradient_estimator", "--gradient-estimator", group="objective",
             choices=names.GRADIENT_ESTIMATORS.names,
             help=lambda: "; ".join(f"{e.name}: {e.factory}" for e in names.GRADIENT_ESTIMATORS)),
    _setting("epochs", "--epochs", type=positive_int, help="epochs", group="training"),
    _setting("batch_size", "--batch-size", type=positive_int, help="batch size",
             group="training"),
    _setting("learning_rate", "--learning-rate", type=positive_float, metavar="LR",
             help="Adam's learning rate", group="training"),
    _setting("seed", "--seed", type=nonnegative_int, group="training",
             help="seed of everything random",
             default_help="a random one, saved in config.json"),
    _setting("jit", "--jit", action="switch", group="training",
             help="XLA-compile the training step",
             default_help="the library's, compile_defaults.default_jit_compile: XLA wherever "
                          "Keras can use it, on a CPU too"),
    _setting("steps_per_execution", "--steps-per-execution", type=positive_int, metavar="N",
             help="training steps per compiled call", group="training",
             default_help="the library's, training.DEFAULT_STEPS_PER_EXECUTION"),
    _setting("precision", "--precision", choices=PRECISIONS, help="dtype policy",
             group="training"),
    _setting("strategy", "--strategy", choices=STRATEGIES, group="training",
             help="tf.distribute strategy (multiworker needs TF_CONFIG)"),
    _setting("early_stopping", "--early-stopping", type=positive_int, metavar="PATIENCE",
             group="training", help="stop when val_loss has not improved for PATIENCE epochs "
                                    "(the best weights are kept)"),
    _setting("pictures", "--pictures", action="switch", help="write the PNG pictures",
             group="run folder"),
)

#: Where and how a run runs, not what it learns: not saved, and a resumed run may change them.
RUN_OPTIONS = (
    Option("out", ("--out",), metavar="RUN_DIR", group="run folder",
           help="run folder", default_help="runs/run-YYYYmmdd-HHMMSS"),
    Option("resume", ("--resume",), action="store_true", default=False, group="run folder",
           help="continue the run in --out from its last checkpoint"),
    Option("overwrite", ("--overwrite",), action="store_true", default=False,
           group="run folder", help="replace an existing run in --out"),
    Option("verbose", ("--verbose",), type=int, choices=(0, 1, 2), default=1,
           group="run folder",
           help="Keras's progress output: 0 silent, 1 progress bar, 2 a line per epoch"),
    Option("epoch_delay", ("--epoch-delay",), type=nonnegative_float, default=0.0,
           hidden=True),  # a testing aid: keeps a tiny run alive long enough to kill it
)

#: Every option of `keras-vae train` with its default (what config.json and the flags fill).
TRAIN_DEFAULTS = {**_TRAIN.to_dict(), **{o.dest: o.default for o in RUN_OPTIONS}}

__all__ = [
    "PRECISIONS", "STRATEGIES", "BINARIZATIONS", "positive_int", "nonnegative_int",
    "positive_float", "nonnegative_float", "number", "integer", "Option", "add_options",
    "add_command", "COMMON", "run_dir_option", "TrainConfig", "TRAIN_OPTIONS", "RUN_OPTIONS",
    "TRAIN_DEFAULTS",
]
