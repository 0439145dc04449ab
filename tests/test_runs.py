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

from keras_vae import VAE, backup, data, process, runs
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


def _sleeper(*argv):
    """A child process that sleeps, once it runs Python (its /proc entry then says so)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
    cmdline = pathlib.Path(f"/proc/{child.pid}/cmdline")
    deadline = time.time() + 10
    while b"time.sleep" not in cmdline.read_bytes() and time.time() < deadline:
        time.sleep(0.01)
    return child


def _identity_of(child):
    return {"pid": child.pid, "host": socket.gethostname(), "boot_id": process._boot_id(),
            "started": process._proc_start(child.pid)}


def test_process_alive():
    assert not runs.process_alive({})
    assert not runs.process_alive(runs.process_identity())  # this process
    child = _sleeper()
    try:
        state = _identity_of(child)
        assert state["started"] is not None and runs.process_alive(state)
        assert not runs.process_alive({**state, "host": "another-host"})
        # The same pid with another start time, or another boot: a reused pid, not the trainer.
        assert not runs.process_alive({**state, "started": state["started"] - 1})
        assert not runs.process_alive({**state, "boot_id": "another-boot"})
        # A state from before the start time was recorded: a live pid counts only if it
        # is a keras-vae process.
        legacy = {"pid": child.pid, "host": socket.gethostname()}
        assert not runs.process_alive(legacy)
        other = _sleeper("keras_vae")
        try:
            assert runs.process_alive({"pid": other.pid, "host": socket.gethostname()})
        finally:
            other.kill()
            other.wait()
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
    with pytest.raises(runs.RunFolderError, match="not a keras-vae run folder"):
        runs.replace(foreign)
    assert (foreign / "notes.txt").exists()  # never deleted
    run = tmp_path / "run"
    runs.write_config(run, "train", {}, {}, [])
    with pytest.raises(runs.RunFolderError, match="--resume.*--overwrite"):
        runs.prepare(run)
    assert runs.prepare(run, overwrite=True) is None and runs.is_run(run)  # nothing deleted
    leftover = tmp_path / ".run.replaced-1-2"  # a replace killed between rename and delete
    leftover.mkdir()
    runs.replace(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "foreign"]


def test_a_run_in_use_is_neither_resumed_nor_replaced(tmp_path):
    config = runs.write_config(tmp_path, "train", {"epochs": 3}, {}, [])
    runs.mark_running(tmp_path, 3)
    assert runs.prepare(tmp_path, resume=True) == config  # this process: not "in use"
    child = _sleeper("keras_vae")
    try:
        runs.write_state(tmp_path, status="running", **_identity_of(child))
        for kwargs in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(runs.RunFolderError, match=f"in use: process {child.pid} is"):
                runs.prepare(tmp_path, **kwargs)
        # An older state.json (no start time) naming a live keras-vae process: refused,
        # with the file to delete named.
        runs.write_state(tmp_path, status="running", pid=child.pid, host=socket.gethostname())
        with pytest.raises(runs.RunFolderError, match="may be training.*delete .*state.json"):
            runs.prepare(tmp_path, resume=True)
    finally:
        child.kill()
        child.wait()
    assert runs.prepare(tmp_path, resume=True) == config  # the killed run can be resumed


def test_a_stale_state_after_a_restart_does_not_block_the_resume(tmp_path):
    """The pid of the state is now another process's (e.g. pid 1 after a container restart)."""
    config = runs.write_config(tmp_path, "train", {"epochs": 3}, {}, [])
    child = _sleeper("keras_vae")
    try:
        stale = {**_identity_of(child), "started": _identity_of(child)["started"] - 100}
        runs.write_state(tmp_path, status="running", **stale)
        assert runs.prepare(tmp_path, resume=True) == config
        runs.write_state(tmp_path, status="running", pid=child.pid, host=socket.gethostname(),
                         boot_id="the boot before the restart", started=5)
        assert runs.prepare(tmp_path, resume=True) == config
    finally:
        child.kill()
        child.wait()


# ------------------------------------------------------------------------ restore


def _shifted(delta):
    model = _tiny_model()
    for v in model.trainable_variables:
        v.assign(v + delta)
    model.optimizer.iterations.assign(int(10 * delta))
    return model


def _assert_same(model, want):
    for got, expected in zip(_weights(model), _weights(want)):
        np.testing.assert_array_equal(got, expected)
    assert int(model.optimizer.iterations.numpy()) == int(want.optimizer.iterations.numpy())


def test_restore_loads_the_latest_state_or_the_previous_good_one(tmp_path):
    folder = tmp_path / runs.BACKUP
    assert runs.restore(_tiny_model(), tmp_path) == 0  # no backup: start at epoch 0
    one, two, three = _shifted(1.0), _shifted(2.0), _shifted(3.0)
    for epoch, model in ((1, one), (2, two), (3, three)):
        backup.save(model, folder, epoch)
    assert sorted(p.name for p in folder.iterdir()) == [  # the latest two states only
        "epoch-00002.weights.h5", "epoch-00003.weights.h5", backup.METADATA]
    model = _tiny_model()
    assert runs.restore(model, tmp_path) == 3
    _assert_same(model, three)  # weights and the optimizer (its step drives the KL warm-up)
    (folder / "epoch-00003.weights.h5").write_bytes(b"torn")
    model = _tiny_model()
    assert runs.restore(model, tmp_path) == 2
    _assert_same(model, two)
    (folder / "epoch-00002.weights.h5").unlink()
    with pytest.raises(runs.CorruptRunError, match="corrupt checkpoint.*epoch-00002.*missing"):
        runs.restore(_tiny_model(), tmp_path)


def test_a_ctrl_c_state_keeps_the_clean_one_before_it(tmp_path):
    folder = tmp_path / runs.BACKUP
    backup.save(_shifted(1.0), folder, 1)
    backup.save(_shifted(1.5), folder, 1, interrupted=True)
    metadata = backup.read_metadata(folder)
    assert metadata["weights"] == "interrupted-epoch-00001.weights.h5"
    assert metadata["previous"] == {"epoch": 1, "weights": "epoch-00001.weights.h5"}
    (folder / ".tmp-999999-x.weights.h5").write_bytes(b"a killed writer's")
    backup.save(_shifted(2.0), folder, 2)
    assert backup.read_metadata(folder)["previous"]["epoch"] == 1
    assert not list(folder.glob(".tmp-*"))


def test_restore_reads_the_backup_of_keras_backup_and_restore(tmp_path):
    """The old code's backup: a torn latest.weights.h5 falls back to the .bkp copy, which
    Keras itself could never load (it refuses the extension)."""
    folder = tmp_path / runs.BACKUP
    saved = _shifted(1.0)
    folder.mkdir()
    saved.save_weights(folder / "previous.weights.h5")
    (folder / "previous.weights.h5").rename(folder / "latest.weights.h5.bkp")
    (folder / "training_metadata.json.bkp").write_text('{"epoch": 2, "batch": 0}')
    (folder / "latest.weights.h5").write_bytes(b"torn write" * 10)
    (folder / "training_metadata.json").write_text('{"epoch": 3, "batch": 0}')
    model = _tiny_model()
    assert runs.restore(model, tmp_path) == 2
    _assert_same(model, saved)
    (folder / "latest.weights.h5.bkp").write_bytes(b"garbage")
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
    assert kinds[:5] == [runs.EpochSeeds, runs.InterruptCallback, runs.HistoryWriter,
                         backup.BestModel, backup.RunBackup]  # the backup last: the commit
    assert keras.callbacks.BackupAndRestore not in kinds and runs.EpochDelay not in kinds
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
    assert backup.read_metadata(tmp_path / runs.BACKUP)["epoch"] == 2
    assert (tmp_path / runs.BACKUP / "epoch-00002.weights.h5").is_file()
    assert (tmp_path / "checkpoints" / "best.keras").is_file()
    assert not [p for p in tmp_path.rglob(".tmp-*")]


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
