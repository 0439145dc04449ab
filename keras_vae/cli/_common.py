"""What the `keras-vae` commands share: printing, the RUN_DIR argument, Ctrl-C, a run's data."""

import os
import pathlib
import signal
import sys

from keras_vae import _util, data, names
from keras_vae.cli._errors import PROG, CommandFailed, UsageError
from keras_vae.cli._options import TrainConfig


def say(*parts):
    """Prints a line on stdout at once (the commands' progress lines)."""
    print(*parts, flush=True)


def print_table(rows, title=None):
    """Prints (name, value) rows aligned, under an optional title."""
    width = max((len(name) for name, _ in rows), default=10)
    if title:
        say(title)
    for name, value in rows:
        say(f"  {name:<{width}}  {value}")


def require_run_dir(args):
    """args.run_dir as a path; UsageError when it was not given."""
    if not args.run_dir:
        raise UsageError("RUN_DIR is required (a folder made by 'keras-vae train')")
    return pathlib.Path(args.run_dir)


class InterruptFlag:
    """While entered, the first Ctrl-C during training sets `raised`; a second one quits.

    `runs.InterruptCallback` reads `raised`, saves a checkpoint and stops `fit`.
    """

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
        print(f"\n{PROG}: Ctrl-C: saving a checkpoint after this step (Ctrl-C again to "
              "quit at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# --------------------------------------------------------------------------- data


def check_data_name(name):
    """UsageError for an unknown data set name or a missing path, before anything loads."""
    if name in names.DATASETS or pathlib.Path(str(name)).expanduser().exists():
        return
    text = str(name)
    if os.sep in text or text.startswith(".") or pathlib.Path(text).suffix.lower() in (
            ".npy", ".npz"):
        raise UsageError(f"data file or folder not found: {name}")
    raise UsageError(f"unknown data set '{name}': use {', '.join(names.DATASETS.names())}, "
                     "or the path of a .npy/.npz file or a folder of images")


def binarization(train):
    """The binarisation a run uses: 'auto' is dynamic for a [0, 1] likelihood, else none."""
    if train["binarization"] != "auto":
        return train["binarization"]
    return "dynamic" if data.unit_interval_likelihood(train["likelihood"]) else "none"


def load_data(train, test_examples=None):
    """The data of a run's settings: (Dataset, x_train, x_test, y_test, binarisation).

    User data without a test part keep their last 10% as the test set.
    `test_examples` (default: `train['test_examples']`, else all) caps the test set.

    Raises:
      UsageError: the library refused the data or the settings (unknown name, a
        bad file, a binarisation the likelihood cannot take); CommandFailed: the
        data could not be read (e.g. no network for a download).
    """
    name = train["data"]
    check_data_name(name)
    used = binarization(train)
    try:
        ds = data.load(name, binarization=None if used == "none" else used,
                       seed=int(train["seed"] or 0), likelihood=train["likelihood"],
                       test_fraction=0.0 if name in names.DATASETS else 0.1)
    except (FileNotFoundError, ValueError, TypeError) as error:
        raise UsageError(f"cannot load data set {name}: {_util.first_line(error)}") from error
    except OSError as error:
        raise CommandFailed(f"cannot load data set {name}: {_util.first_line(error)}") \
            from error
    if len(ds.x_test) == 0:
        raise UsageError(f"{name} has no test examples (too few examples?)")
    n = test_examples or train.get("test_examples") or len(ds.x_test)
    y_test = None if ds.y_test is None else ds.y_test[:n]
    return ds, ds.x_train[: train.get("train_examples") or None], ds.x_test[:n], y_test, used


def eval_data(config, examples=None):
    """(x_test, y_test) of a run's config.json: its first `examples` test examples (or all)."""
    train = {**TrainConfig.from_dict(config.get("train") or {}).to_dict(), "test_examples": None}
    _, _, x, y, _ = load_data(train, examples)
    return x, y


__all__ = [
    "say", "print_table", "require_run_dir", "InterruptFlag", "check_data_name", "binarization",
    "load_data", "eval_data",
]
