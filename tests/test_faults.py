"""Nothing lost: training and export killed at every file write, and commands that fail.

- training: one `keras-vae train` child records, before each rename into its run folder
  (every file arrives by temp + fsync + rename), a copy of the folder: what a SIGKILL
  at that instant leaves (tests/support/faults.py). Each copy is resumed (or, before
  config.json exists, trained again) and must end with the weights and history of the
  uninterrupted run, to the bit. One more child is really SIGKILLed while it commits a
  backup, and resumed.
- export: the journaled swap of `_staging` is SIGKILLed at every rename (a child that
  imports only `_staging` and `_util`, so each kill costs a fraction of a second);
  `recover` then gives exactly the old export or exactly the new one, the manifest
  never disagrees with the files, and the next export succeeds. A real
  `export --overwrite` of a SavedModel is snapshotted at every rename and recovered.
- failing commands: `train --overwrite` with bad data, `demo` on an existing run,
  `export --overwrite` whose check fails, `evaluate` on a full disk: the old files
  stay as they were.

Tiny: 100 embedded digits, 2 epochs of 2 steps, latent 2, no pictures, no XLA.
"""

import errno
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_vae import cli, runs
from keras_vae.cli import export
from keras_vae._backend import keras

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAULTS = ROOT / "tests" / "support" / "faults.py"
COMPAT_RUN = ROOT / "tests" / "support" / "compat" / "run"
TINY = ["--preset", "iwae", "--batch-size", "50", "--epochs", "2", "--seed", "3", "--no-jit",
        "--verbose", "0", "--no-pictures", "--latent-dim", "2"]
TIMEOUT = 600


def _images(path, n=110):
    """n random 4x4 images in [0, 1] (the last 10% are the test set): a tiny, fast run."""
    np.save(path, np.random.default_rng(0).random((n, 4, 4, 1)).astype("float32"))
    return ["--data", str(path)]


def _child(argv, env, check=True):
    proc = subprocess.run([sys.executable, str(FAULTS), *map(str, argv)], capture_output=True,
                          text=True, timeout=TIMEOUT, env={**os.environ, **env}, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def _weights(run):
    model = keras.models.load_model(run / "model.keras", compile=False)
    return [np.asarray(v) for v in model.weights]


def _files(root):
    """{relative path: sha256} of every file under root (TensorBoard's logs left out)."""
    root = pathlib.Path(root)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "logs" not in p.parts}


# ============================================================================ training


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """An uninterrupted run and the folder as a kill before each of its renames leaves it."""
    base = tmp_path_factory.mktemp("faults")
    run, snapshots, data = base / "run", base / "snapshots", _images(base / "images.npy")
    _child(["train", "--out", run, *data, *TINY],
           {"FAULT_WATCH": str(run), "FAULT_SNAPSHOTS": str(snapshots)})
    return run, sorted(snapshots.iterdir()), data


def _continue(folder, data):
    """What a user does after the kill: --resume, or the same command again."""
    if runs.is_run(folder):
        return cli.main(["train", "--out", str(folder), "--resume", "--verbose", "0"])
    return cli.main(["train", "--out", str(folder), *data, *TINY])


def test_every_write_of_training_is_a_rename_and_each_kill_point_resumes(recorded, tmp_path):
    run, snapshots, data = recorded
    written = set()
    for snapshot in snapshots:  # the file each rename was about to put in place
        written |= {p.name for p in snapshot.rglob(".*") if p.is_file()}
    kinds = {"config.json", "state.json", "history.json", "history.csv", "best-",
             "training_metadata.json", ".weights.h5", "model-"}
    assert all(any(kind in name for name in written) for kind in kinds), written
    assert len(snapshots) == 14  # config, state, 2 x (history x2, best, weights, metadata),
    #                              model, state: each a kill point
    want, history = _weights(run), json.loads((run / "history.json").read_text())
    for snapshot in snapshots:
        folder = tmp_path / snapshot.name
        shutil.copytree(snapshot, folder)
        assert _continue(folder, data) == 0, snapshot.name
        for got, expected in zip(_weights(folder), want):
            np.testing.assert_array_equal(got, expected, err_msg=snapshot.name)
        assert json.loads((folder / "history.json").read_text()) == history, snapshot.name
        assert runs.read_state(folder)["status"] == "finished"
        assert not [p for p in folder.rglob(".*") if p.is_file()], snapshot.name  # no leftovers
        shutil.rmtree(folder)


def test_sigkill_while_the_backup_is_committed_loses_nothing(recorded, tmp_path):
    """The issue's case: SIGKILL while the backup of epoch 2 is written; --resume then
    restores epoch 1 (the metadata names only whole files) and ends as the uninterrupted run."""
    run, snapshots, data = recorded
    at = next(i for i, s in enumerate(snapshots, 1)
              if (s / "backup" / "epoch-00001.weights.h5").exists()
              and list((s / "backup").glob(".tmp-*.weights.h5")))
    killed = tmp_path / "killed"
    proc = _child(["train", "--out", killed, *data, *TINY],
                  {"FAULT_WATCH": str(killed), "FAULT_KILL_AT": str(at)}, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert runs.read_state(killed)["status"] == "running"
    assert cli.main(["train", "--out", str(killed), "--resume", "--verbose", "0"]) == 0
    for got, expected in zip(_weights(killed), _weights(run)):
        np.testing.assert_array_equal(got, expected)


# ============================================================================== export

_FAKE_EXPORT = textwrap.dedent("""
    import os, pathlib, sys, types
    sys.path.insert(0, {tests!r})
    package = types.ModuleType("keras_vae")
    package.__path__ = [{package!r}]
    sys.modules["keras_vae"] = package          # _util and _staging only: no TensorFlow
    import importlib.util
    spec = importlib.util.spec_from_file_location("staging", {staging!r})
    staging = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(staging)
    from support import faults
    faults.install()
    out, tag = pathlib.Path(sys.argv[1]), sys.argv[2]
    targets = {{"savedmodel": out / "savedmodel" / "vae" / "1", "onnx": out / "onnx" / "d.onnx",
               "tflite": out / "tflite" / "vae.tflite", "manifest": out / "manifest.json"}}
    staging.recover(out / staging.JOURNAL)
    staging.remove_leftovers([out, out / "onnx", out / "tflite", out / "savedmodel" / "vae"])
    with staging.staged(targets, True, root=out.parent, journal=out / staging.JOURNAL) as stage:
        stage["savedmodel"].mkdir(parents=True)
        (stage["savedmodel"] / "saved_model.pb").write_text(tag)
        for key in ("onnx", "tflite", "manifest"):
            stage[key].write_text(tag)
""")


def _fake_export(out, tag, kill_at=0, kill_after=0):
    code = _FAKE_EXPORT.format(tests=str(ROOT / "tests"), package=str(ROOT / "keras_vae"),
                               staging=str(ROOT / "export" / "_staging.py"))
    return subprocess.run([sys.executable, "-c", code, str(out), tag], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "FAULT_WATCH": str(out),
                                                      "FAULT_KILL_AT": str(kill_at),
                                                      "FAULT_KILL_AFTER": str(kill_after)})


def _tags(out):
    """{file: content} of the export's artefacts (no hidden staging or journal)."""
    return {k: v.read_text() for k, v in (
        (p.relative_to(out).as_posix(), p) for p in out.rglob("*"))
        if v.is_file() and not any(part.startswith(".") for part in pathlib.Path(k).parts)}


def test_export_killed_at_every_rename_keeps_the_old_one_or_the_new_one(tmp_path):
    from keras_vae.export import _staging

    names = ["manifest.json", "onnx/d.onnx", "savedmodel/vae/1/saved_model.pb",
             "tflite/vae.tflite"]
    old, new = dict.fromkeys(names, "old"), dict.fromkeys(names, "new")
    outcomes, first = [], tmp_path / "old" / "export"
    assert _fake_export(first, "old").returncode == 0 and _tags(first) == old
    for kill_at, kill_after in [(n, 0) for n in range(1, 11)] + [(0, 9)]:
        out = tmp_path / f"k{kill_at}-{kill_after}" / "export"
        shutil.copytree(first, out)
        proc = _fake_export(out, "new", kill_at, kill_after)
        if kill_at == 10:  # the journal, 4 old files aside, 4 new ones in: 9 renames
            assert proc.returncode == 0 and _tags(out) == new
            continue
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        tags = _tags(out)
        if "manifest.json" in tags:  # a manifest always describes the files beside it
            assert set(tags.values()) == {tags["manifest.json"]}, (kill_at, tags)
        outcome = _staging.recover(out / _staging.JOURNAL)
        assert _tags(out) in (old, new), (kill_at, _tags(out))
        outcomes.append((outcome, _tags(out) == new))
        assert _fake_export(out, "new").returncode == 0  # never blocked
        assert _tags(out) == new and sorted(p.name for p in out.rglob(".*")) == []
    assert outcomes[0] == (None, False)  # killed before the journal: nothing had moved
    assert outcomes[1:-1] == [("rolled back", False)] * 8
    assert outcomes[-1] == ("committed", True)  # killed once the manifest was in


def test_leftover_staging_folders_never_block_an_export(tmp_path):
    from keras_vae.export import _staging

    out = tmp_path / "export"
    for folder in (out, out / "onnx", out / "savedmodel" / "vae"):
        (folder / ".tmp-999999-x-abc").mkdir(parents=True)  # a dead process's
        (folder / ".tmp-1-x-mine").mkdir()  # a live process's (pid 1): left alone
        (folder / ".tmp-manifest.json-old").mkdir()  # the old code's naming
    _staging.remove_leftovers([out, out / "onnx", out / "savedmodel" / "vae"])
    assert sorted(p.name for p in out.rglob(".tmp-*")) == [".tmp-1-x-mine"] * 3
    assert _fake_export(out, "new").returncode == 0 and _tags(out)["manifest.json"] == "new"


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(COMPAT_RUN, run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["data"] = str(run / "data.npz")
    (run / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    np.savez(run / "data.npz", x_train=rng.random((40, 4, 4, 1), "float32"),
             x_test=rng.random((10, 4, 4, 1), "float32"))
    return run


def test_a_real_export_overwrite_keeps_the_old_one_when_it_fails_or_is_killed(
        old_run, tmp_path, monkeypatch):
    """`export --overwrite` whose check fails leaves the old export as it was; one killed
    before any of its renames (the snapshots) recovers to the old export or the new one."""
    from keras_vae.export import _staging, savedmodel, verify

    assert cli.main(["export", str(old_run), "--format", "savedmodel"]) == 0
    out = old_run / "export"
    before = _files(out)

    def failing_check(*args, **kwargs):
        raise verify.ExportCheckError("savedmodel: decode differs (a test)")

    with monkeypatch.context() as patch:
        patch.setattr(savedmodel, "check", failing_check)
        assert cli.main(["export", str(old_run), "--format", "savedmodel", "--overwrite"]) != 0
    assert _files(out) == before and not [p for p in out.rglob(".*")]
    snapshots, real_rename = [], os.rename

    def rename(src, dst):
        if str(dst).startswith(str(out)):
            snapshots.append(tmp_path / f"s{len(snapshots)}")
            shutil.copytree(out, snapshots[-1], symlinks=True)
        return real_rename(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", rename)
        assert cli.main(["export", str(old_run), "--format", "savedmodel", "--overwrite"]) == 0
    after = _files(out)
    assert set(after) == set(before) and after != before and len(snapshots) == 4
    for snapshot in snapshots:  # manifest aside, version aside, version in, manifest in
        _staging.recover(snapshot / _staging.JOURNAL)
        assert _files(snapshot) in (before, after), snapshot.name
    assert _files(snapshots[0]) == before and _files(snapshots[-1]) == before


# ==================================================================== failing commands


@pytest.mark.parametrize("problem", ["missing file", "nan", "batch size"])
def test_train_overwrite_with_bad_data_keeps_the_run(old_run, tmp_path, problem, capsys):
    before = _files(old_run)
    data = tmp_path / "bad.npz"
    argv = ["train", "--out", str(old_run), "--overwrite", "--epochs", "1", "--verbose", "0"]
    if problem == "missing file":
        argv += ["--data", str(tmp_path / "missing.npz")]
    elif problem == "nan":
        np.savez(data, x_train=np.full((40, 4, 4, 1), np.nan, "float32"),
                 x_test=np.zeros((10, 4, 4, 1), "float32"))
        argv += ["--data", str(data), "--likelihood", "gaussian", "--batch-size", "10"]
    else:
        argv += ["--data", str(old_run / "data.npz"), "--batch-size", "1000"]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert _files(old_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bad.npz"] if problem == "nan"
                                                          else []) + ["run"]


def test_demo_never_deletes_an_existing_run(old_run, capsys):
    before = _files(old_run)
    code = cli.main(["demo", "--out", str(old_run), "--epochs", "1", "--no-export"])
    assert code == cli.EXIT_RUN_FOLDER and "--overwrite" in capsys.readouterr().err
    code = cli.main(["demo", "--out", str(old_run), "--overwrite", "--data",
                     str(old_run / "missing.npz")])
    assert code == cli.EXIT_USAGE and _files(old_run) == before


def test_a_corrupt_keras_file_to_export_is_the_corrupt_model_error(old_run, tmp_path, capsys):
    (old_run / "model.keras").write_bytes(b"PK\x03\x04 not a zip")
    assert cli.main(["export", str(old_run)]) == cli.EXIT_CORRUPT
    err = capsys.readouterr().err
    assert "corrupt" in err and "BadZipFile" not in err.split("(")[0]
    assert export.module_main([str(old_run / "model.keras"), "--out",
                               str(tmp_path / "e")]) == cli.EXIT_CORRUPT


def test_evaluate_on_a_full_disk_keeps_the_old_metrics(old_run, monkeypatch, capsys):
    metrics = old_run / "metrics.json"
    metrics.write_text('{"old": true}\n')
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        return FullDisk(f) if ".metrics.json." in os.readlink(f"/proc/self/fd/{fd}") else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    code = cli.main(["evaluate", str(old_run), "--k", "2", "--examples", "5",
                     "--snr-estimates", "0"])
    assert code != 0 and "No space left" in capsys.readouterr().err
    assert metrics.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in old_run.iterdir() if p.name.startswith(".")) == []
