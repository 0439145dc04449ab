"""The `keras-vae` command, end to end, on tiny settings.

- a subprocess chain train -> evaluate -> export -> sample -> interpolate, each
  output read back and checked (JSON, CSV, .keras, PNG sizes, exported files);
- resume: a run killed with SIGKILL after its first epoch's checkpoint, then
  `--resume`d, ends with the history and weights of the uninterrupted run with
  the same seed, bit for bit (batches, binarisation and noise are keyed by
  (seed, epoch); the default steps_per_execution);
- Ctrl-C (SIGINT) saves a checkpoint and exits 130;
- every bad invocation: one line on stderr naming the problem, its exit code,
  no traceback (unless --debug).

Tiny: 300 embedded training digits, batch 50, 3 epochs, no XLA (compiling costs
more than it saves on 18 steps).
"""

import json
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

from keras_vae import cli, plotting

TINY = ["--train-examples", "300", "--test-examples", "100", "--batch-size", "50",
        "--epochs", "3", "--seed", "7", "--no-jit", "--verbose", "2"]
TIMEOUT = 600


def keras_vae(*args, check=True, **kwargs):
    """Runs `python -m keras_vae ARGS` and returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", "keras_vae", *map(str, args)],
                          capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"keras-vae {' '.join(map(str, args))} exited "
                             f"{proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def error_lines(stderr):
    """The keras-vae lines of stderr (TensorFlow's C++ start-up chatter left out)."""
    return [line for line in stderr.splitlines() if line.startswith("keras-vae")]


def assert_png(path, size=None):
    """The file decodes as a PNG (of `size`, if given) whose content is not one flat colour."""
    path = pathlib.Path(path)
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        if size is not None:
            assert image.size == tuple(size), (path, image.size, size)
        array = np.asarray(image.convert("L"), "float32")
    assert array.std() > 5.0, f"{path} looks blank"
    return array


def assert_tiles_not_blank(path, rows, cols, labelled=False, scale=2, pad=2):
    """Every image tile of a grid PNG has some contrast (not all one value)."""
    array = assert_png(path, plotting.grid_size(rows, cols, scale=scale, pad=pad,
                                                labelled=labelled))
    left = plotting.LABEL_WIDTH if labelled else 0
    step = 28 * scale + pad
    spreads = []
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * step, left + pad + c * step
            spreads.append(np.ptp(array[y:y + 28 * scale, x:x + 28 * scale]))
    assert max(spreads) > 30, f"{path}: every tile is flat"


# =============================================================================== the chain


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    started = time.time()
    proc = keras_vae("train", "--out", run, *TINY)
    print(f"train: {time.time() - started:.1f} s")
    assert "trained 3/3 epochs" in proc.stdout
    return run


def test_train_writes_the_run_folder(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config[cli.RUN_MARKER] == cli.RUN_FORMAT
    train = config["train"]
    assert train["epochs"] == 3 and train["seed"] == 7 and train["data"] == "embedded"
    assert train["jit"] is False and train["objective"] == "elbo"
    assert config["data"]["num_train_used"] == 300 and config["data"]["num_test_used"] == 100

    history = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3]
    for key in ("loss", "elbo", "kl", "reconstruction", "val_loss"):
        assert len(history[key]) == 3 and all(np.isfinite(history[key])), key
    rows = (run_dir / "history.csv").read_text().strip().splitlines()
    assert rows[0].split(",")[0] == "epoch" and len(rows) == 4
    assert float(rows[-1].split(",")[rows[0].split(",").index("loss")]) == pytest.approx(
        history["loss"][-1])

    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "finished" and state["epochs_done"] == 3
    assert not (run_dir / "backup").exists()  # removed once the run is complete
    assert (run_dir / "checkpoints" / "best.keras").is_file()
    assert list((run_dir / "logs" / "train").iterdir())  # TensorBoard event files
    assert list((run_dir / "logs" / "validation").iterdir())

    import keras

    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    assert model.latent_dim == 16 and model.event_shape == (28, 28, 1)
    images = np.asarray(model.sample(4, seed=0))
    assert images.shape == (4, 28, 28, 1) and np.all((images >= 0) & (images <= 1))


def test_train_pictures(run_dir):
    pictures = run_dir / "pictures"
    n_t = len(cli.SAMPLE_TEMPERATURES)
    assert_tiles_not_blank(pictures / "samples.png", n_t, 10, labelled=True)
    assert_tiles_not_blank(pictures / "reconstructions.png", 4, 10, labelled=True)
    assert_tiles_not_blank(pictures / "interpolations.png", 4, 10, labelled=True)
    assert_png(pictures / "latent.png", (520, 440))
    assert_png(pictures / "curves.png")
    with Image.open(pictures / "curves.png") as image:  # panels of 330 x 240, three a row
        assert image.size[0] == 3 * 330 and image.size[1] % 240 == 0


def test_evaluate(run_dir):
    proc = keras_vae("evaluate", run_dir, "--k", 10, "--examples", 50, "--snr-estimates", 0)
    report = json.loads((run_dir / "metrics.json").read_text())
    ll = report["log_likelihood"]
    assert ll["k"] == 10 and ll["num_examples"] == 50
    assert np.isfinite(ll["nll"]) and 50 < ll["nll"] < 400
    assert report["bounds"]["elbo"] <= ll["mean"] + 1.0  # log p(x) estimate >= ELBO (noisy)
    assert 0 <= report["active_units"]["count"] <= 16
    assert 1.0 <= report["effective_sample_size"]["mean"] <= 10.0
    assert "NLL" in proc.stdout and "active units" in proc.stdout and "ESS" in proc.stdout


def test_export_and_verify(run_dir, capsys):
    proc = keras_vae("export", run_dir, "--format", "all")
    export = run_dir / "export"
    manifest = json.loads((export / "manifest.json").read_text())
    assert set(manifest["artefacts"]) >= {"savedmodel", "onnx_decoder", "onnx_sampler",
                                          "tflite"}
    for info in manifest["artefacts"].values():
        assert (export / info["path"]).exists()
    assert (export / "savedmodel" / "vae" / "1" / "saved_model.pb").is_file()
    assert "verifying" in proc.stdout and "onnx_decoder" in proc.stdout
    # The exports decode z as the Keras model does (read back here, independently).
    import keras
    import onnxruntime as ort

    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    z = np.random.default_rng(1).standard_normal((5, 16)).astype("float32")
    session = ort.InferenceSession(str(export / "onnx" / "decoder.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(["mean"], {"z": z})[0]
    np.testing.assert_allclose(got, np.asarray(model.decoder_parameters(z)["mean"]), atol=1e-5)
    # `keras-vae verify` reloads each artefact with its runtime and compares with model.keras.
    code, out, _ = run_main(capsys, "verify", run_dir)
    assert code == 0 and "every artefact agrees" in out and "tflite" in out
    # Exporting again without --overwrite is refused, with one line and exit code 3.
    again = keras_vae("export", run_dir, "--format", "onnx", check=False)
    assert again.returncode == cli.EXIT_RUN_FOLDER
    assert "--overwrite" in error_lines(again.stderr)[-1]


def test_sample(run_dir, tmp_path):
    grid, raw = tmp_path / "grid.png", tmp_path / "grid.npy"
    proc = keras_vae("sample", run_dir, "-n", 12, "--temperature", 0.7, "--seed", 3,
                     "--ncols", 4, "--out", grid, "--npy", raw)
    assert str(grid) in proc.stdout
    assert_tiles_not_blank(grid, 3, 4)
    images = np.load(raw)
    assert images.shape == (12, 28, 28, 1) and np.all((images >= 0) & (images <= 1))
    import keras

    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    np.testing.assert_allclose(images, np.asarray(model.sample(12, temperature=0.7, seed=3)),
                               atol=1e-6)  # --seed is the model's seed


def test_interpolate(run_dir, tmp_path):
    out = tmp_path / "path.png"
    keras_vae("interpolate", run_dir, "--pairs", 2, "--steps", 6, "--method", "slerp",
              "--out", out)
    assert_tiles_not_blank(out, 2, 6, labelled=True)


def test_compare(run_dir, tmp_path, capsys):
    out = tmp_path / "compare"
    code, stdout, err = run_main(capsys, "compare", run_dir, "--examples", 20, "--k", 5,
                                 "--out", out)
    assert code == 0, err
    report = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(report["metrics"]["run"]["test_log_likelihood"])
    assert_png(out / "samples.png")


# =============================================================================== resume


def _wait_for_checkpoint(run, proc, timeout=TIMEOUT):
    metadata = run / "backup" / "training_metadata.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training ended before it could be stopped:\n{out}\n{err}")
        try:
            if json.loads(metadata.read_text())["epoch"] >= 1:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def _start(run, *extra):
    return subprocess.Popen([sys.executable, "-m", "keras_vae", "train", "--out", str(run),
                             *TINY, *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_same_loss(run_dir, tmp_path):
    run = tmp_path / "killed"
    # --epoch-delay (a hidden testing aid) sleeps after each epoch, so the kill lands mid-run.
    proc = _start(run, "--epoch-delay", 20)
    try:
        _wait_for_checkpoint(run, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "model.keras").exists()
    assert json.loads((run / "state.json").read_text())["status"] == "running"

    resumed = keras_vae("train", "--out", run, "--resume", "--verbose", 0)
    assert "resuming" in resumed.stdout and "trained 3/3 epochs" in resumed.stdout
    history = json.loads((run / "history.json").read_text())
    reference = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3]
    # Exact, with the default steps_per_execution: batches, draws and noise are
    # functions of (seed, epoch), and each epoch is its own executions.
    assert history == reference
    resumed_model = keras.models.load_model(run / "model.keras", compile=False)
    reference_model = keras.models.load_model(run_dir / "model.keras", compile=False)
    for got, want in zip(resumed_model.weights, reference_model.weights):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=got.path)
    assert json.loads((run / "state.json").read_text())["status"] == "finished"
    # Resuming a finished run does nothing, successfully.
    again = keras_vae("train", "--out", run, "--resume")
    assert "already finished" in again.stdout


def test_ctrl_c_saves_a_checkpoint(tmp_path, capsys):
    run = tmp_path / "interrupted"
    proc = _start(run, "--epoch-delay", 20)
    try:
        _wait_for_checkpoint(run, proc)
        # While it trains, the run cannot be resumed by another process.
        code, _, err = run_main(capsys, "train", "--out", run, "--resume")
        assert code == cli.EXIT_RUN_FOLDER and "is in use" in error_lines(err)[0]
        proc.send_signal(signal.SIGINT)  # lands in the delay after epoch 1
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == cli.EXIT_INTERRUPTED, err[-2000:]
    line = error_lines(err)[-1]
    assert "checkpoint saved" in line and "--resume" in line and "Traceback" not in err
    metadata = json.loads((run / "backup" / "training_metadata.json").read_text())
    assert metadata["epoch"] in (1, 2)
    assert (run / "backup" / metadata["weights"]).stat().st_size > 0
    assert json.loads((run / "state.json").read_text())["status"] == "interrupted"
    assert (run / "model.keras").is_file()  # the weights so far, usable by sample/evaluate


# =============================================================================== bad invocations


def run_main(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def foreign(tmp_path):
    folder = tmp_path / "foreign"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a run")
    return folder


@pytest.mark.parametrize("argv_template, code, message", [
    (["train", "--data", "nosuch", "--out", "{tmp}/a"], 2, "unknown data set 'nosuch'"),
    (["train", "--data", "{tmp}/missing.npz", "--out", "{tmp}/a"], 2,
     "data file or folder not found"),
    (["train", "--objective", "iwae", "--free-bits", "0.5", "--out", "{tmp}/a"], 2,
     "--free-bits applies to --objective elbo"),
    (["train", "--num-groups", "4", "--out", "{tmp}/a"], 2, "--num-groups applies to miwae"),
    (["train", "--ciwae-beta", "0.5", "--objective", "iwae", "--out", "{tmp}/a"], 2,
     "--ciwae-beta applies to --objective ciwae"),
    (["train", "--resume", "--overwrite", "--out", "{tmp}/a"], 2, "--resume and --overwrite"),
    (["train", "--objective", "nope"], 2, "invalid choice: 'nope'"),
    (["train", "--epochs", "0"], 2, "must be a positive integer"),
    (["train", "--likelihood", "gaussian", "--binarization", "dynamic", "--out", "{tmp}/a"], 2,
     "needs a Bernoulli likelihood"),
    (["train", "--strategy", "multiworker", "--out", "{tmp}/a"], 2, "TF_CONFIG"),
    (["train", "--out", "{foreign}"], 3, "is not a keras-vae run folder"),
    (["train", "--resume", "--out", "{tmp}/nothing"], 3, "run folder not found"),
    (["evaluate", "{tmp}/nothing"], 3, "run folder not found"),
    (["evaluate", "{foreign}"], 3, "not a keras-vae run folder"),
    (["sample", "{foreign}"], 3, "not a keras-vae run folder"),
    (["export", "{tmp}/nothing"], 3, "run folder not found"),
    (["evaluate"], 2, "RUN_DIR is required"),
    (["train", "--config", "{tmp}/none.yaml"], 2, "config file not found"),
    ([], 2, "no command given"),
])
def test_bad_invocation(capsys, tmp_path, foreign, argv_template, code, message,
                        monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    argv = [a.format(tmp=tmp_path, foreign=foreign) for a in argv_template]
    got, _, err = run_main(capsys, *argv)
    lines = error_lines(err)
    assert got == code, err
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_bad_config_files(capsys, tmp_path):
    bad_key = tmp_path / "bad_key.yaml"
    bad_key.write_text("epochs: 2\nlearning-rat: 0.1\n")
    code, _, err = run_main(capsys, "train", "--config", bad_key)
    assert code == 2 and "unknown option 'learning-rat'" in error_lines(err)[0]
    bad_choice = tmp_path / "bad_choice.json"
    bad_choice.write_text(json.dumps({"objective": "nope"}))
    code, _, err = run_main(capsys, "train", "--config", bad_choice)
    assert code == 2 and "invalid choice 'nope'" in error_lines(err)[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text("epochs: [1, 2\n")
    code, _, err = run_main(capsys, "train", "--config", broken)
    assert code == 2 and "cannot read config file" in error_lines(err)[0]


def test_config_file_sets_every_flag_and_the_command_line_wins(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("objective: miwae\nk: 4\nnum-groups: 2\nlearning_rate: 0.003\n"
                      "jit: false\nepochs: 5\nprecision: mixed_bfloat16\n")
    _, options, _ = cli.parse(["train", "--config", str(config), "--epochs", "7"])
    assert options["objective"] == "miwae" and options["k"] == 4 and options["num_groups"] == 2
    assert options["learning_rate"] == 0.003 and options["jit"] is False
    assert options["precision"] == "mixed_bfloat16"
    assert options["epochs"] == 7  # the command line wins
    sections = tmp_path / "s.json"
    sections.write_text(json.dumps({"train": {"epochs": 2}, "sample": {"num": 9,
                                                                       "temperature": 0.5}}))
    _, options, _ = cli.parse(["sample", "RUN", "--config", str(sections)])
    assert options["num"] == 9 and options["temperature"] == 0.5 and options["run_dir"] == "RUN"


def test_run_config_reproduces_the_run(run_dir):
    """A run's config.json is itself a config file: `train --config RUN/config.json`."""
    saved = json.loads((run_dir / "config.json").read_text())["train"]
    _, options, _ = cli.parse(["train", "--config", str(run_dir / "config.json")])
    for key, value in saved.items():
        assert options.get(key, cli.TRAIN_DEFAULTS.get(key)) == value, key


def test_existing_run_and_resume_conflicts(capsys, run_dir):
    code, _, err = run_main(capsys, "train", "--out", run_dir)
    assert code == 3 and "--resume" in error_lines(err)[0] and "--overwrite" in error_lines(err)[0]
    code, _, err = run_main(capsys, "train", "--out", run_dir, "--resume", "--epochs", 9)
    assert code == 2 and "--epochs 9 conflicts with the run's saved epochs=3" in \
        error_lines(err)[0]


def test_corrupt_checkpoint_and_model(capsys, run_dir, tmp_path):
    run = tmp_path / "corrupt"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("export", "logs"))
    (run / "state.json").write_text(json.dumps({"status": "running"}))
    (run / "backup").mkdir()
    (run / "backup" / "latest.weights.h5").write_bytes(b"not an HDF5 file" * 10)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    code, _, err = run_main(capsys, "train", "--out", run, "--resume", "--verbose", 0)
    assert code == cli.EXIT_CORRUPT and "corrupt checkpoint" in error_lines(err)[0], err
    (run / "model.keras").write_bytes(b"garbage")
    code, _, err = run_main(capsys, "sample", run, "--out", tmp_path / "x.png")
    assert code == cli.EXIT_CORRUPT and "corrupt" in error_lines(err)[0], err
    assert "Traceback" not in err


def test_errors_in_a_real_process(tmp_path):
    """From the shell: one keras-vae line on stderr, the exit code, no traceback; --debug
    shows it."""
    proc = keras_vae("evaluate", tmp_path / "nothing", check=False)
    assert proc.returncode == 3
    assert error_lines(proc.stderr) == [f"keras-vae: error: run folder not found: "
                                        f"{tmp_path / 'nothing'}"]
    assert "Traceback" not in proc.stderr
    proc = keras_vae("train", "--data", "nosuch", "--debug", check=False)
    assert proc.returncode == 2 and "Traceback" in proc.stderr
    assert "unknown data set 'nosuch'" in error_lines(proc.stderr)[-1]


def test_help_lists_every_command():
    proc = keras_vae("--help")
    for command in ("train", "evaluate", "sample", "interpolate", "export", "verify", "serve",
                    "demo"):
        assert command in proc.stdout
    script = pathlib.Path(sys.executable).with_name("keras-vae")
    if script.exists():  # the console script declared in pyproject.toml
        proc = subprocess.run([str(script), "train", "--help"], capture_output=True, text=True,
                              timeout=TIMEOUT)
        assert proc.returncode == 0 and "--kl-beta" in proc.stdout and "--resume" in proc.stdout


# =============================================================================== plotting


def test_plotting_sizes_and_content(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((7, 28, 28, 1)).astype("float32")
    grid = plotting.image_grid(images, ncols=3, path=tmp_path / "g.png")
    assert grid.size == plotting.grid_size(3, 3)
    assert not plotting.is_blank(tmp_path / "g.png")
    rows = plotting.samples_figure({0.5: images[:4], 1.0: images[3:]})
    assert rows.size == plotting.grid_size(2, 4, labelled=True)
    for d in (1, 2, 5):
        z = rng.standard_normal((50, d))
        image = plotting.latent_scatter(z, labels=rng.integers(0, 3, 50))
        assert image.size == (520, 440) and not plotting.is_blank(image)
    curves = plotting.training_curves({"epoch": [1], "loss": [3.0], "val_loss": [float("nan")]})
    assert not plotting.is_blank(curves)
    with pytest.raises(ValueError):
        plotting.training_curves({"epoch": [1, 2]})
    assert plotting.is_blank(plotting.image_grid(np.zeros((1, 4, 4, 1)), pad=0))


def test_steps_per_execution_is_exact_for_fits_batches():
    """The library's default (1 under a strategy), capped at an epoch; a divisor of it there."""
    import types

    import tensorflow as tf

    from keras_vae import training
    from keras_vae.cli import train

    def spe(strategy, flag, num_train=1000, batch_size=10):
        config = types.SimpleNamespace(strategy=strategy, steps_per_execution=flag,
                                       batch_size=batch_size)
        return train._steps_per_execution(config, num_train)

    assert spe("default", None) == min(training.DEFAULT_STEPS_PER_EXECUTION, 100)
    assert spe("default", None, num_train=300, batch_size=50) == 6  # one epoch's steps
    assert spe("default", 7) == 7
    assert spe("default", 500) == 100
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        assert spe("mirrored", None) == 1  # training.compile_defaults' rule
        assert spe("mirrored", 30) == 25  # the largest divisor of 100 steps <= 30
        assert spe("mirrored", 7, num_train=70) == 7
