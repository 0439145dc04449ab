r"""The run folder of `keras-vae train`: its files, its states, the callbacks that keep it whole.

```none
RUN/
  config.json          {RUN_MARKER: RUN_FORMAT, command, created, keras_vae_version, argv,
                        train: the settings, data: data.load's protocol + what was used, reproduce}
  state.json           {status, epochs_done, epochs, pid, host, updated, ...}
  history.json, .csv   one value per epoch and metric (a resumed run appends)
  model.keras          the trained model (after Ctrl-C: the weights so far)
  checkpoints/best.keras   the best val_loss so far
  backup/              the training state after each epoch (`keras_vae.backup`: atomic, the
                       previous good state kept); removed once the run is complete
  logs/                TensorBoard (when the tensorboard package is installed)
  pictures/            plotting.run_pictures

status:  running --(fit ends)--> finished | stopped_nonfinite
         running --(Ctrl-C: backup saved)--> interrupted --(resume)--> running
         running --(killed: the process is gone)--> running --(resume)--> running
```

Every file is written atomically (temp file, fsync, rename: `_util.atomic_write_*`,
`backup.save_keras`), so a killed run leaves the old version of a file or the new
one. Batches, binarisation and noise are functions of (seed, epoch), so a resumed
run ends where an uninterrupted one would have. state.json records the training
process (pid, host, boot id, its start time), so a pid reused by another process
(after a container restart) does not lock the run. An existing run is replaced
only by `replace`, which the CLI calls once the new run's data and model are ready.
"""

import csv
import datetime
import importlib.util
import io
import json
import os
import pathlib
import shutil
import time
import warnings

import numpy as np

from keras_vae import _util, backup, process
from keras_vae import early_stopping as early_stopping_lib
from keras_vae._backend import keras

RUN_MARKER = "keras_vae_run"
RUN_FORMAT = 1
BACKUP = "backup"
BEST_MODEL = "checkpoints/best.keras"  # (backup.BestModel's, read by early stopping)


class RunFolderError(Exception):
    """The run folder is missing, foreign, already holds a run, or is being trained now."""


class CorruptRunError(Exception):
    """A file of the run (config, checkpoint, model) cannot be read."""


class TrainingInterrupted(Exception):
    """Raised by the interrupt callback once it saved a checkpoint; `epoch` is 0-based."""

    def __init__(self, epoch):
        super().__init__(f"interrupted during epoch {epoch + 1}")
        self.epoch = epoch


def now():
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------ the files


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return {}


def is_run(run_dir):
    """True if `run_dir` holds a config.json written by keras-vae train."""
    config = _read_json(pathlib.Path(run_dir) / "config.json")
    return isinstance(config, dict) and config.get(RUN_MARKER) == RUN_FORMAT


def read_config(run_dir):
    """The config.json of a run folder.

    Raises:
      RunFolderError: the folder is missing or is not a keras-vae run.
      CorruptRunError: its config.json does not parse.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.exists():
        raise RunFolderError(f"run folder not found: {run_dir}")
    if not run_dir.is_dir():
        raise RunFolderError(f"not a folder: {run_dir}")
    path = run_dir / "config.json"
    if not path.is_file():
        raise RunFolderError(f"{run_dir} is not a keras-vae run folder (no config.json); "
                             "make one with 'keras-vae train --out DIR'")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CorruptRunError(f"{path} is corrupt: {_util.first_line(error)}") from error
    if not isinstance(config, dict) or config.get(RUN_MARKER) != RUN_FORMAT:
        raise RunFolderError(f"{run_dir} is not a keras-vae run folder (its config.json was "
                             "not written by keras-vae train)")
    return config


def write_config(run_dir, command, train, protocol, argv):
    """Writes a new run's config.json: `train` (the settings) and `protocol` (the data's)."""
    run_dir = pathlib.Path(run_dir)
    config = {
        RUN_MARKER: RUN_FORMAT, "command": command, "created": now(),
        "keras_vae_version": _util.versions(("keras-vae",))["keras-vae"] or "unknown",
        "argv": list(argv), "train": dict(train), "data": dict(protocol),
        "reproduce": f"keras-vae train --config {run_dir / 'config.json'} --out NEW_DIR",
    }
    _util.atomic_write_json(run_dir / "config.json", config)
    return config


def read_state(run_dir):
    """state.json as a dict ({} when missing or unreadable)."""
    return _read_json(pathlib.Path(run_dir) / "state.json")


def write_state(run_dir, **state):
    """Replaces state.json with `state` and the time."""
    _util.atomic_write_json(pathlib.Path(run_dir) / "state.json", {**state, "updated": now()})


def read_history(run_dir):
    """history.json as {metric: [value per epoch]} ({} when missing or unreadable)."""
    return _read_json(pathlib.Path(run_dir) / "history.json")


def history_rows(run_dir):
    """The history as {epoch: {metric: value}} (1-based epochs)."""
    history = read_history(run_dir)
    return {int(epoch): {k: v[i] for k, v in history.items() if i < len(v)}
            for i, epoch in enumerate(history.get("epoch", []))}


def write_history(run_dir, rows):
    """rows {epoch: {metric: value}} -> history.json (a list per metric) and history.csv."""
    run_dir = pathlib.Path(run_dir)
    epochs = sorted(rows)
    keys = ["epoch"] + sorted({k for e in epochs for k in rows[e] if k != "epoch"})
    history = {k: [rows[e].get(k) for e in epochs] for k in keys}
    _util.atomic_write_json(run_dir / "history.json", history)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(keys)
    writer.writerows([rows[e].get(k, "") for k in keys] for e in epochs)
    _util.atomic_write_text(run_dir / "history.csv", text.getvalue())
    return history


def save_model(model, path):
    """`model.save(path)` through a temporary file beside it, fsynced and renamed into place."""
    backup.save_keras(model, path)


# ------------------------------------------------------------------- the states


process_identity, process_alive = process.identity, process.alive


def mark_running(run_dir, epochs):
    """state.json: running, with this process's identity (what `process_alive` reads)."""
    write_state(run_dir, status="running", epochs_done=len(history_rows(run_dir)),
                epochs=epochs, **process_identity())


def _check_not_in_use(run_dir):
    state = read_state(run_dir)
    if state.get("status") != "running" or not process_alive(state):
        return
    if state.get("started") is not None:
        raise RunFolderError(f"{run_dir} is in use: process {state.get('pid')} is training "
                             "it now")
    raise RunFolderError(f"{run_dir} is in use: process {state.get('pid')} may be training it "
                         f"now (its state.json, from an older keras-vae, has no process start "
                         f"time); if no keras-vae process trains it, delete "
                         f"{pathlib.Path(run_dir) / 'state.json'} and run the command again")


def prepare(run_dir, resume=False, overwrite=False):
    """Checks `run_dir` for a new run or a resumed one; returns the saved config when resuming.

    A new run needs a missing or empty folder, or a keras-vae run and `overwrite`
    (which `replace` removes later, once the new run is ready). Neither kind may
    take a run that a live process trains. Nothing is deleted here.

    Raises:
      RunFolderError: as above; CorruptRunError: an unreadable config.json.
    """
    run_dir = pathlib.Path(run_dir)
    if resume:
        config = read_config(run_dir)
        _check_not_in_use(run_dir)
        return config
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out {run_dir} is a file, not a folder")
    if run_dir.is_dir() and not _empty(run_dir):
        if not is_run(run_dir):
            raise RunFolderError(f"--out {run_dir} exists and is not a keras-vae run folder; "
                                 "choose another folder")
        if not overwrite:
            raise RunFolderError(f"{run_dir} already holds a run: continue it with --resume, "
                                 "or replace it with --overwrite")
        _check_not_in_use(run_dir)
    return None


def _empty(run_dir):  # no files but the temporary ones of a killed atomic write
    return all(backup.is_leftover(p.name) for p in pathlib.Path(run_dir).iterdir())


def replace(run_dir):
    """Removes the run in `run_dir` (if any) for a new one: renamed aside whole, then deleted.

    Call it only once the new run has loaded its data and built its model. A kill
    between the two steps leaves the old run in a hidden sibling folder
    (`.NAME.replaced-*`), removed by the next `replace` beside it.
    """
    run_dir = pathlib.Path(run_dir)
    for leftover in run_dir.parent.glob(f".{run_dir.name}.replaced-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if not run_dir.is_dir() or _empty(run_dir):
        backup.remove_leftovers(run_dir)
        return
    if not is_run(run_dir):
        raise RunFolderError(f"--out {run_dir} exists and is not a keras-vae run folder")
    aside = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}-{time.time_ns()}")
    os.rename(run_dir, aside)
    _util.fsync_path(run_dir.parent)
    shutil.rmtree(aside, ignore_errors=True)


def remove_leftovers(run_dir):
    """Removes the temporary files a killed run left (run folder, checkpoints/, backup/)."""
    run_dir = pathlib.Path(run_dir)
    for folder in (run_dir, run_dir / "checkpoints", run_dir / BACKUP):
        backup.remove_leftovers(folder)
    for folder in run_dir.glob(".pictures-*"):
        shutil.rmtree(folder, ignore_errors=True)


def restore(model, run_dir):
    """Loads the run's backup (`backup.restore`: the latest state, else the previous good one);
    returns the epoch a resumed run starts at (0: none). Raises CorruptRunError: neither loads.
    """
    try:
        return backup.restore(model, pathlib.Path(run_dir) / BACKUP)
    except backup.CorruptBackupError as error:
        raise CorruptRunError(str(error)) from error


def load_run_model(run_dir):
    """(model, config) of a run folder; the model is loaded with compile=False.

    Raises:
      RunFolderError: not a run, or no model.keras yet; CorruptRunError: it does not load.
    """
    config = read_config(run_dir)
    path = pathlib.Path(run_dir) / "model.keras"
    if not path.is_file():
        status = read_state(run_dir).get("status", "unknown")
        raise RunFolderError(f"{run_dir} has no model.keras yet (training status: {status}); "
                             f"finish it with 'keras-vae train --out {run_dir} --resume'")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure to load is a corrupt file
        raise CorruptRunError(f"cannot load {path}: the file is corrupt or not a keras-vae "
                              f"model ({_util.first_line(error)})") from error
    return model, config


def is_chief():
    """True unless TF_CONFIG names this process a worker other than the chief."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    return kind == "chief" or (kind == "worker" and index == 0
                               and "chief" not in config.get("cluster", {}))


# ---------------------------------------------------------------------- callbacks


class EpochSeeds(keras.callbacks.Callback):
    """Sets every seed generator to a function of (seed, epoch) as each epoch begins.

    The generators' state is not in the saved weights; keyed by epoch, a resumed
    run draws the same noise as an uninterrupted one.
    """

    def __init__(self, seed):
        super().__init__()
        self.seed = int(seed)

    def on_epoch_begin(self, epoch, logs=None):
        states = [v for v in self.model.variables if v.path.endswith("seed_generator_state")]
        for i, variable in enumerate(states):
            mixed = (self.seed * 1_000_003 + epoch * 7_919 + i * 104_729 + 1) % (2**31 - 1)
            variable.assign(np.asarray([mixed, 0]).astype(variable.dtype))


class HistoryWriter(keras.callbacks.Callback):
    """Writes history.json and history.csv after every epoch (`rows` keeps earlier epochs)."""

    def __init__(self, run_dir, rows):
        super().__init__()
        self.run_dir, self.rows = run_dir, rows

    def on_epoch_end(self, epoch, logs=None):
        self.rows[epoch + 1] = {"epoch": epoch + 1,
                                **{k: float(v) for k, v in (logs or {}).items()}}
        write_history(self.run_dir, self.rows)


class InterruptCallback(keras.callbacks.Callback):
    """After a Ctrl-C: saves the backup (the epoch restarts on resume), then stops training."""

    def __init__(self, backup, flag):
        super().__init__()
        self.backup, self.flag, self.epoch = backup, flag, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.flag.raised:
            backup.save(self.model, self.backup, int(self.epoch), interrupted=True)
            raise TrainingInterrupted(int(self.epoch))


class EpochDelay(keras.callbacks.Callback):
    """Waits `seconds` after each epoch's files are written, or until a Ctrl-C (a testing aid)."""

    def __init__(self, seconds, flag):
        super().__init__()
        self.seconds, self.flag = float(seconds), flag

    def on_epoch_end(self, epoch, logs=None):
        until = time.time() + self.seconds
        while time.time() < until and not self.flag.raised:
            time.sleep(0.05)


def callbacks(run_dir, rows, seed, flag, epoch_delay=0.0, early_stopping=None):
    """The run's callbacks, in the order that keeps a killed run consistent.

    Args:
      run_dir: the run folder.
      rows: the history so far {epoch: {metric: value}}; updated in place.
      seed: the run's seed (for `EpochSeeds`).
      flag: the `InterruptFlag` of the Ctrl-C handler.
      epoch_delay: seconds to wait after each epoch (a testing aid).
      early_stopping: the patience in epochs of val_loss, or None.
    """
    run_dir = pathlib.Path(run_dir)
    best = [value for _, value in early_stopping_lib.finite_val_losses(rows)]
    found = [EpochSeeds(seed), InterruptCallback(run_dir / BACKUP, flag),
             HistoryWriter(run_dir, rows),  # then best.keras (the best so far), the backup last
             backup.BestModel(run_dir / BEST_MODEL, "val_loss", min(best) if best else None),
             backup.RunBackup(run_dir / BACKUP)]
    if importlib.util.find_spec("tensorboard") is not None:
        found.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False,
                                                 profile_batch=0))
    else:
        warnings.warn("the tensorboard package is not installed: no TensorBoard logs in "
                      f"{run_dir / 'logs'} (pip install tensorboard)", RuntimeWarning,
                      stacklevel=2)
    if early_stopping:
        found.append(early_stopping_lib.ResumableEarlyStopping(early_stopping, rows,
                                                               run_dir / BEST_MODEL))
    if epoch_delay:
        found.append(EpochDelay(epoch_delay, flag))
    return found


__all__ = [
    "RUN_MARKER", "RUN_FORMAT", "BACKUP", "RunFolderError", "CorruptRunError",
    "TrainingInterrupted", "now", "is_run", "read_config", "write_config", "read_state",
    "write_state", "read_history", "history_rows", "write_history", "save_model",
    "process_identity", "process_alive", "mark_running", "prepare", "replace",
    "remove_leftovers", "restore", "load_run_model", "is_chief", "EpochSeeds", "HistoryWriter",
    "InterruptCallback", "EpochDelay", "callbacks",
]
