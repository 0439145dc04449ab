r"""The run's backup: the training state after each epoch, written so that a kill never loses it.

```none
RUN/backup/
  epoch-00003.weights.h5    the state after epoch 3: weights, optimizer (its step count drives
                            the KL warm-up), the nonfinite counter, the seed generators
  epoch-00002.weights.h5    the previous good state, kept until the next one is written
  training_metadata.json    {"epoch": 3, "batch": 0, "weights": "epoch-00003.weights.h5",
                             "previous": {"epoch": 2, "weights": "epoch-00002.weights.h5"}}

save(E):  weights -> .tmp-PID.weights.h5, fsync, rename to epoch-E.weights.h5, fsync the folder
          -> training_metadata.json atomically (the commit) -> delete states older than E-1
restore:  the metadata's state, else its previous one; a metadata-less or torn state is skipped
```

Keras's `BackupAndRestore` writes `latest.weights.h5` in place (a kill mid-write
leaves a torn file) and falls back to `latest.weights.h5.bkp`, which
`load_weights` refuses for its extension. Here every file appears whole or not
at all, and the metadata (written last) only names states already on disk.
Batches, binarisation and the seed generators are functions of (seed, epoch)
(`runs.EpochSeeds`, `data.training_stream`), so resuming at a saved epoch ends
where an uninterrupted run would have. Backups written by the old code
(`latest.weights.h5` [+ `.bkp`] and `training_metadata.json` without "weights")
still restore.

Example:

```python
callback = backup.RunBackup("runs/a/backup")           # in model.fit(callbacks=[...])
start_epoch = backup.restore(model, "runs/a/backup")   # 0 when there is no backup
```
"""

import json
import os
import pathlib
import shutil
import tempfile

from keras_vae import _util
from keras_vae._backend import keras

METADATA = "training_metadata.json"
LEGACY_WEIGHTS = "latest.weights.h5"
_SUFFIX = ".weights.h5"


class CorruptBackupError(Exception):
    """Neither the latest state of a backup nor its previous one loads."""


def commit_file(tmp, path):
    """fsync `tmp`, rename it onto `path` (atomic on one file system), fsync the folder."""
    _util.fsync_path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's files are private; others' are not
    os.replace(tmp, path)
    _util.fsync_path(pathlib.Path(path).parent)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def weights_name(epoch):
    """The file of the state after `epoch` epochs."""
    return f"epoch-{int(epoch):05d}{_SUFFIX}"


def read_metadata(backup_dir):
    """training_metadata.json of a backup folder ({} when missing or unreadable)."""
    return read_metadata_file(pathlib.Path(backup_dir) / METADATA)


def read_metadata_file(path):
    """A metadata file as a dict ({} when missing or unreadable)."""
    try:
        value = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save(model, backup_dir, epoch, interrupted=False):
    """Saves the training state as the one a resumed run starts at `epoch` (0-based) from.

    Args:
      model: the model being trained (its optimizer is saved with it).
      backup_dir: the backup folder (created if needed).
      epoch: the number of finished epochs, or the epoch a Ctrl-C stopped in.
      interrupted: a mid-epoch state (Ctrl-C): its own file, so the clean state of
        the epoch before stays the previous one.
    """
    backup_dir = pathlib.Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(backup_dir)
    name = ("interrupted-" if interrupted else "") + weights_name(epoch)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=_SUFFIX, dir=backup_dir)
    os.close(fd)
    try:
        model.save_weights(tmp, overwrite=True)
        commit_file(tmp, backup_dir / name)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    latest = read_metadata(backup_dir)
    previous = latest.get("previous")
    if latest.get("weights") and latest["weights"] != name and (
            backup_dir / str(latest["weights"])).is_file():
        previous = {"epoch": int(latest.get("epoch", 0)), "weights": latest["weights"]}
    _util.atomic_write_json(backup_dir / METADATA, {
        "epoch": int(epoch), "batch": 0, "weights": name, "previous": previous})
    keep = {name, (previous or {}).get("weights"), METADATA}
    for path in backup_dir.iterdir():
        if path.name not in keep and not path.name.startswith("."):
            path.unlink(missing_ok=True)


def remove_leftovers(folder):
    """Removes the temporary files that a killed writer left in `folder` (not this process's).

    They are `.tmp-PID-*` (this module's) and `.NAME.*.tmp` (`_util.atomic_write_*`).
    A run folder is written by one process at a time (`runs.prepare` checks).
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return
    mine = f".tmp-{os.getpid()}-"
    for path in folder.iterdir():
        if is_leftover(path.name) and not path.name.startswith(mine) and path.is_file():
            path.unlink(missing_ok=True)


def is_leftover(name):
    """True for the name of a temporary file of an atomic write (`remove_leftovers`)."""
    return name.startswith(".tmp-") or (name.startswith(".") and name.endswith(".tmp"))


def _candidates(backup_dir, metadata):
    """[(epoch, weights path)] to try in order: the latest state, then the previous one."""
    if metadata.get("weights"):
        found = [(metadata.get("epoch", 0), backup_dir / str(metadata["weights"]))]
        previous = metadata.get("previous") or {}
        if previous.get("weights"):
            found.append((previous.get("epoch", 0), backup_dir / str(previous["weights"])))
        return found
    if (backup_dir / LEGACY_WEIGHTS).exists():  # Keras's BackupAndRestore (the old code)
        found = [(metadata.get("epoch", 0), backup_dir / LEGACY_WEIGHTS)]
        legacy_previous = backup_dir / f"{LEGACY_WEIGHTS}.bkp"
        if legacy_previous.exists():
            older = read_metadata_file(backup_dir / f"{METADATA}.bkp")
            found.append((older.get("epoch", 0), legacy_previous))
        return found
    return []


def _load(model, path):
    """model.load_weights(path); a name Keras refuses (`.bkp`) is loaded through a copy."""
    if path.name.endswith(_SUFFIX):
        model.load_weights(path)
        return
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        copy = pathlib.Path(folder) / f"copy{_SUFFIX}"
        shutil.copyfile(path, copy)
        model.load_weights(copy)


def restore(model, backup_dir):
    """Loads the latest good state of `backup_dir` into `model`; returns its epoch (0: none).

    Raises:
      CorruptBackupError: a state exists but neither it nor the previous one loads.
    """
    backup_dir = pathlib.Path(backup_dir)
    candidates = _candidates(backup_dir, read_metadata(backup_dir)) if backup_dir.is_dir() else []
    if not candidates:
        return 0
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    errors = []
    for epoch, path in candidates:
        if not path.is_file():
            errors.append(f"{path.name}: missing")
            continue
        try:
            _load(model, path)
            return int(epoch)
        except Exception as error:  # noqa: BLE001 - any failure to load is a corrupt file
            errors.append(f"{path.name}: {_util.first_line(error)}")
    raise CorruptBackupError(f"corrupt checkpoint in {backup_dir}: {'; '.join(errors)}; delete "
                             "that folder to start the run again from scratch")


class RunBackup(keras.callbacks.Callback):
    """Saves the training state (`save`) after each epoch, for `restore` after a kill."""

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = pathlib.Path(backup_dir)

    def on_epoch_end(self, epoch, logs=None):
        save(self.model, self.backup_dir, epoch + 1)


class BestModel(keras.callbacks.Callback):
    """Saves the model as a .keras file, atomically, whenever `monitor` beats its best so far.

    Args:
      path: the .keras file (its folder is created).
      monitor: the log key, lower is better.
      best: the best value so far (a resumed run's), or None.
    """

    def __init__(self, path, monitor="val_loss", best=None):
        super().__init__()
        self.path, self.monitor = pathlib.Path(path), monitor
        self.best = float("inf") if best is None else float(best)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not float(value) < self.best:
            return
        self.best = float(value)
        save_keras(self.model, self.path)


def save_keras(model, path):
    """`model.save(path)` through a temporary file beside it, fsynced and renamed into place."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-{path.stem}-", suffix=path.suffix,
                               dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        commit_file(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


__all__ = [
    "METADATA", "LEGACY_WEIGHTS", "CorruptBackupError", "commit_file",
    "weights_name", "read_metadata", "read_metadata_file", "save", "remove_leftovers",
    "is_leftover",
    "restore", "RunBackup", "BestModel", "save_keras",
]
