"""The quiet start: `keras-vae` shows none of TensorFlow's C++ start-up lines, unless asked.

TF 2.21 writes `WARNING: All log messages before absl::InitializeLog() ...`,
`I0000 ... port.cc:153] oneDNN ...`, `I0000 ... cudart_stub.cc:31] ...` at import,
whatever TF_CPP_MIN_LOG_LEVEL says, and `E0000 ... cuda_platform.cc:52] failed
call to cuInit` at the first device query. keras_vae._backend captures
descriptor 2 around both and writes back every other line. `--debug` prints the
hidden lines; a TF_CPP_MIN_LOG_LEVEL set by the user leaves TensorFlow alone.
"""

import os
import pathlib
import subprocess
import sys

from keras_vae import _backend

TIMEOUT = 600


def _env(**extra):
    """This environment without TF_CPP_MIN_LOG_LEVEL (conftest sets it), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return {**env, **extra}


def _keras_vae(*args, env=None):
    script = pathlib.Path(sys.executable).with_name("keras-vae")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "keras_vae"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env or _env())


def cpp_lines(stderr):
    return [line for line in stderr.splitlines() if _backend.CPP_LOG_LINE.match(line)]


def test_help_is_quiet():
    proc = _keras_vae("--help")
    assert proc.returncode == 0 and "train" in proc.stdout
    assert cpp_lines(proc.stderr) == [], proc.stderr
    proc = _keras_vae("train", "--help")
    assert proc.returncode == 0 and "--kl-beta" in proc.stdout
    assert cpp_lines(proc.stderr) == [], proc.stderr


def test_a_tiny_training_run_is_quiet(tmp_path):
    proc = _keras_vae("train", "--out", tmp_path / "run", "--data", "embedded",
                      "--train-examples", 200, "--test-examples", 50, "--batch-size", 20,
                      "--epochs", 1, "--seed", 0, "--no-jit", "--no-pictures", "--verbose", 0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 1/1 epochs" in proc.stdout
    assert cpp_lines(proc.stderr) == [], proc.stderr


def test_debug_prints_the_hidden_lines_and_errors_still_show(tmp_path):
    proc = _keras_vae("evaluate", tmp_path / "nothing", "--debug")
    assert proc.returncode == 3
    assert cpp_lines(proc.stderr), proc.stderr  # replayed by --debug
    assert "Traceback" in proc.stderr
    assert f"keras-vae: error: run folder not found: {tmp_path / 'nothing'}" in proc.stderr


def test_a_log_level_set_by_the_user_lets_tensorflow_log():
    proc = _keras_vae("--help", env=_env(TF_CPP_MIN_LOG_LEVEL="0"))
    assert proc.returncode == 0
    assert cpp_lines(proc.stderr), proc.stderr  # TF 2.21 logs at import, as measured


def test_the_capture_drops_only_cpp_log_lines(capfd):
    before = len(_backend.startup_log())
    with _backend._quiet_stderr():
        os.write(2, b"I0000 00:00:1796120321.573334   10347 port.cc:153] oneDNN noise\n"
                    b"a real error line\n"
                    b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n"
                    b"E1201 10:18:52.123456   42 cuda_platform.cc:52] failed call to cuInit\n")
    err = capfd.readouterr().err
    assert err == "a real error line\n"
    hidden = _backend.startup_log()[before:]
    assert len(hidden) == 3 and "oneDNN noise" in hidden[0] and "cuInit" in hidden[2]


def test_a_failed_start_writes_everything_back(capfd):
    try:
        with _backend._quiet_stderr():
            os.write(2, b"I0000 00:00:1.5   1 loader.cc:9] what went before the failure\n")
            raise ImportError("no TensorFlow")
    except ImportError:
        pass
    assert "what went before the failure" in capfd.readouterr().err
