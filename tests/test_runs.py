"""keras_vae.runs: the run folder's files and states, restore, and the stream a resume relies on.

The end-to-end behaviour (a killed run resumed to the same loss, Ctrl-C, exit
codes) is in test_cli.py; here each piece on its own, with tiny models and no
training beyond a few steps.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_vae import VAE, data, runs
from keras_vae._backend import keras

COMPAT_RUN = pathlib.Path(__file__).parent / "support" / "compat" / "run"


def _tiny_model():
    model = VAE(latent_dim=2, event_shape=(4, 4, 1), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.build()
    model.optimizer.build(model.trainable_variables)
    return model


def _weights(model):
    return [np.asarray(v) for v in model.trainable_variables]


# ------------------------------------------------------------------------ the files


def test_the_run_folder_written_before_the_redesign_reads(tmp_path):
    assert runs.is_run(COMPAT_RUN)
    config = runs.read_config(COMPAT_RUN)
    assert config[runs.RUN_MARKER] == runs.RUN_FORMAT == 1
    assert runs.read_state(COMPAT_RUN)["status"] == "finished"
    rows = runs.history_rows(COMPAT_RUN)
    assert sorted(rows) == [1, 2] and np.isfinite(rows[2]["loss"])
    model, loaded = runs.load_run_model(COMPAT_RUN)
    assert loaded == config and model.latent_dim == config["train"]["latent_dim"]
    images = np.asarray(model.sample(3, seed=0))
    assert images.shape == (3, 4, 4, 1) and np.all((images >= 0) & (images <= 1))


def test_read_config_names_what_is_wrong(tmp_path):
    with pytest.raises(runs.RunFolderError, match="run folder not found"):
        runs.read_config(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(runs.RunFolderError, match="not a folder"):
        runs.read_config(tmp_path / "file")
    with pytest.raises(runs.RunFolderError, match="no config.json"):
        runs.read_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(runs.CorruptRunError, match="is corrupt"):
        runs.read_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"train": {}}))
    with pytest.raises(runs.RunFolderError, match="not written by keras-vae train"):
        runs.read_config(tmp_path)
    assert not runs.is_run(tmp_path)


def test_write_config_state_and_history_round_trip(tmp_path):
    config = runs.write_config(tmp_path, "train", {"epochs": 2}, {"data": "embedded"},
                               ["train", "--epochs", "2"])
    assert runs.read_config(tmp_path) == config and config["train"] == {"epochs": 2}
    assert "--config" in config["reproduce"]
    runs.mark_running(tmp_path, epochs=2)
    state = runs.read_state(tmp_path)
    assert state["status"] == "running" and state["pid"] == os.getpid()
    assert state["host"] == socket.gethostname() and state["epochs_done"] == 0 and state["updated"]
    rows = {1: {"epoch": 1, "loss": 3.0, "val_loss": 3.5}, 2: {"epoch": 2, "loss": 2.0}}
    history = runs.write_history(tmp_path, rows)
    assert history == {"epoch": [1, 2], "loss": [3.0, 2.0], "val_loss": [3.5, None]}
    assert runs.read_history(tmp_path) == history
    assert runs.history_rows(tmp_path)[2] == {"epoch": 2, "loss": 2.0, "val_loss": None}
    csv = (tmp_path / "history.csv").read_text().splitlines()
    assert csv == ["epoch,loss,val_loss", "1,3.0,3.5", "2,2.0,"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic writes


def test_save_model_replaces_the_file_atomically(tmp_path):
    model = _tiny_model()
    path = tmp_path / "model.keras"
    path.write_bytes(b"old")
    runs.save_model(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    assert keras.models.load_model(path, compile=False).latent_dim == 2


# ------------------------------------------------------------------- the states


def test_process_alive():
    assert not runs.process_alive({})
    assert not runs.process_alive({"pid": os.getpid(), "host": socket.gethostname()})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = {"pid": child.pid, "host": socket.gethostname()}
        assert runs.process_alive(state)
        assert not runs.process_alive({**state, "host": "another-host"})
    finally:
        child.kill()
    deadline = time.time() + 10
    while runs.process_alive(state) and time.time() < deadline:
        time.sleep(0.05)
    assert not runs.process_alive(state)  # killed, not yet reaped: a zombie is not alive
    child.wait()
    assert not runs.process_alive(state)


def test_prepare_a_new_run(tmp_path):
    assert runs.prepare(tmp_path / "new") is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert runs.prepare(empty) is None
    (tmp_path / "file").write_text("x")
    with pytest.raises(runs.RunFolderError, match="is a file"):
        runs.prepare(tmp_path / "file")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(runs.RunFolderError, match="not a keras-vae run folder"):
        runs.prepare(foreign, overwrite=True)
    assert (foreign / "notes.txt").exists()  # never deleted
    run = tmp_path / "run"
    runs.write_config(run, "train", {}, {}, [])
    with pytest.raises(runs.RunFolderError, match="--resume.*--overwrite"):
        runs.prepare(run)
    assert runs.prepare(run, overwrite=True) is None and not run.exists()


def test_prepare_a_resumed_run(tmp_path):
    with pytest.raises(runs.RunFolderError, match="run folder not found"):
        runs.prepare(tmp_path / "nothing", resume=True)
    config = runs.write_config(tmp_path, "train", {"epochs": 3}, {}, [])
    runs.write_state(tmp_path, status="running", pid=os.getpid(), host=socket.gethostname())
    assert runs.prepare(tmp_path, resume=True) == config  # this process: not "in use"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        runs.write_state(tmp_path, status="running", pid=child.pid, host=socket.gethostname())
        with pytest.raises(runs.RunFolderError, match=f"in use: process {child.pid}"):
            runs.prepare(tmp_path, resume=True)
    finally:
        child.kill()
        child.wait()
    assert runs.prepare(tmp_path, resume=True) == config  # the killed run can be resumed


# ------------------------------------------------------------------------ restore


def test_restore_loads_the_backup_or_its_previous_copy(tmp_path):
    backup = tmp_path / runs.BACKUP
    assert runs.restore(_tiny_model(), tmp_path) == 0  # no backup: start at epoch 0
    saved = _tiny_model()
    for v in saved.trainable_variables:
        v.assign(v + 1.0)
    backup.mkdir()
    saved.save_weights(backup / "previous.weights.h5")
    (backup / "previous.weights.h5").rename(backup / "latest.weights.h5.bkp")
    (backup / "training_metadata.json.bkp").write_text('{"epoch": 2, "batch": 0}')
    (backup / "latest.weights.h5").write_bytes(b"torn write" * 10)
    (backup / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    model = _tiny_model()
    assert runs.restore(model, tmp_path) == 2
    for got, want in zip(_weights(model), _weights(saved)):
        np.testing.assert_array_equal(got, want)
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    (backup / "latest.weights.h5").write_bytes(b"garbage")
    (backup / "latest.weights.h5.bkp").write_bytes(b"garbage")
    with pytest.raises(runs.CorruptRunError, match="corrupt checkpoint"):
        runs.restore(_tiny_model(), tmp_path)


def test_load_run_model_errors(tmp_path):
    runs.write_config(tmp_path, "train", {}, {}, [])
    runs.write_state(tmp_path, status="running")
    with pytest.raises(runs.RunFolderError, match="no model.keras yet.*running.*--resume"):
        runs.load_run_model(tmp_path)
    (tmp_path / "model.keras").write_bytes(b"garbage")
    with pytest.raises(runs.CorruptRunError, match="corrupt or not a keras-vae model"):
        runs.load_run_model(tmp_path)


def test_is_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert runs.is_chief()
    cluster = {"worker": ["localhost:1", "localhost:2"]}
    for task, chief in ((0, True), (1, False)):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                    "task": {"type": "worker", "index": task}}))
        assert runs.is_chief() is chief
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {**cluster, "chief": ["localhost:3"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert not runs.is_chief()


# ---------------------------------------------------------------------- callbacks


def test_callbacks_without_tensorboard_warn_and_skip_the_logs(tmp_path, monkeypatch):
    real = runs.importlib.util.find_spec
    monkeypatch.setattr(runs.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.warns(RuntimeWarning, match="tensorboard package is not installed"):
        found = runs.callbacks(tmp_path, {}, 0, flag=None)
    assert not any(isinstance(c, keras.callbacks.TensorBoard) for c in found)
    kinds = [type(c) for c in found]
    assert kinds[:3] == [runs.EpochSeeds, runs.InterruptCallback, runs.HistoryWriter]
    assert keras.callbacks.BackupAndRestore in kinds and runs.EpochDelay not in kinds
    found = runs.callbacks(tmp_path, {1: {"val_loss": 5.0}}, 0, None, epoch_delay=1.0,
                           early_stopping=2)
    assert type(found[-1]) is runs.EpochDelay  # last: after the epoch's files are written
    assert any(isinstance(c, keras.callbacks.EarlyStopping) for c in found)


def test_a_short_fit_writes_history_and_backup(tmp_path):
    """The run callbacks on a real fit: history per epoch, a backup, the best model."""

    class Flag:
        raised = False

    x = np.random.default_rng(0).random((40, 4, 4, 1)).astype("float32")
    model = _tiny_model()
    rows = {}
    stream, steps = data.training_stream(x, 10, seed=1, start_epoch=0, epochs=2, dynamic=True)
    model.fit(stream, epochs=2, steps_per_epoch=steps, validation_data=(x[:10],), verbose=0,
              callbacks=runs.callbacks(tmp_path, rows, 1, Flag()))
    assert sorted(rows) == [1, 2] and runs.read_history(tmp_path)["epoch"] == [1, 2]
    assert (tmp_path / runs.BACKUP / "latest.weights.h5").is_file()
    assert (tmp_path / "checkpoints" / "best.keras").is_file()


# --------------------------------------------------- data.training_stream (resumability)


def _batches(x, start, epochs, dynamic=True):
    stream, steps = data.training_stream(x, 8, seed=5, start_epoch=start, epochs=epochs,
                                         dynamic=dynamic)
    return [np.asarray(b) for b in stream], steps


def test_training_stream_resumes_with_the_same_batches():
    x = np.random.default_rng(0).random((30, 2, 2, 1)).astype("float32")
    full, steps = _batches(x, 0, 3)
    assert steps == 3 and len(full) == 9  # the partial batch of each epoch is dropped
    resumed, _ = _batches(x, 2, 3)
    for got, want in zip(resumed, full[6:]):
        np.testing.assert_array_equal(got, want)
    assert set(np.unique(np.concatenate(full))) <= {0.0, 1.0}
    assert not np.array_equal(full[0], full[3])  # each epoch draws and orders afresh
    grey, _ = _batches(x, 0, 1, dynamic=False)
    assert np.all(np.isin(grey[0], x))  # no binarisation: the images themselves


def test_training_stream_refuses_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        data.training_stream(np.zeros((4, 2, 2, 1)), 5, 0, 0, 1, dynamic=False)
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        data.training_stream(np.full((4, 2, 2, 1), 2.0), 2, 0, 0, 1, dynamic=True)


def test_bernoulli_draw_is_the_draw_of_dynamic_binarization():
    x = np.random.default_rng(1).random((6, 3, 3, 1)).astype("float32")
    seed = np.asarray([4, 9], "int64")
    first = np.asarray(data.bernoulli_draw(x, seed))
    np.testing.assert_array_equal(first, np.asarray(data.bernoulli_draw(x, seed)))
    assert set(np.unique(first)) <= {0.0, 1.0}
    means = np.mean([np.asarray(data.bernoulli_draw(np.full((200,), 0.3, "float32"),
                                                    np.asarray([i, 0], "int64")))
                     for i in range(20)])
    assert abs(means - 0.3) < 0.03
