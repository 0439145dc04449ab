r"""Pins Keras to the TensorFlow backend and starts TensorFlow once, quietly.

Every density here is a TFP distribution on TF. TensorFlow's C++ runtime writes
a few lines to file descriptor 2 while it loads, before it has read
TF_CPP_MIN_LOG_LEVEL, so no level hides them (TF 2.21):

```none
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796120321.573334   10347 port.cc:153] oneDNN custom operations are on. ...
I0000 00:00:1796120321.573823   10347 cudart_stub.cc:31] Could not find cuda drivers ...
E0000 00:00:1796120330.966127   10483 cuda_platform.cc:52] failed call to cuInit: ...
```

(the last one at the first device query). Unless the user set
TF_CPP_MIN_LOG_LEVEL (then TensorFlow writes what that level says), this module
imports TensorFlow and lists the devices with descriptor 2 sent to a temporary
file, then writes back every captured line that is not such a C++ log line:
Python warnings and real errors still show. The lines dropped are kept in
`startup_log()` (`keras-vae --debug` prints them). If the import fails, every
captured line is written back.
"""

import contextlib
import os
import re
import sys
import tempfile

#: A line of TensorFlow's C++ logging (absl's prefix), or absl's pre-initialisation notice.
CPP_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR)"
)

_USER_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_STARTUP_LOG = []


def startup_log():
    """The C++ log lines TensorFlow wrote while keras_vae started it (and that were hidden)."""
    return list(_STARTUP_LOG)


@contextlib.contextmanager
def _quiet_stderr():
    """Sends descriptor 2 to a temporary file; writes back all but the C++ log lines."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield
        return
    failed = True
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = []
            for line in lines:
                if failed or not CPP_LOG_LINE.match(line):
                    kept.append(line)
                else:
                    _STARTUP_LOG.append(line.rstrip("\n"))
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


with contextlib.nullcontext() if _USER_LOG_LEVEL else _quiet_stderr():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            "keras_vae needs the TensorFlow backend of Keras (its densities are "
            "tensorflow_probability distributions), but Keras was configured with "
            f"backend {keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow "
            "before importing keras."
        )

    import tensorflow as tf
    import tensorflow_probability as tfp

    tf.config.list_physical_devices()  # the first device query logs once, here

tfd = tfp.distributions


def in_xla_compilation():
    """Whether the function being traced will be compiled by XLA (`jit_compile=True`).

    TensorFlow's own test (`control_flow_util.GraphOrParentsInXlaContext`, as its
    TensorArray and `tf.function` use): the traced graph or one around it is in an
    XLA context. False if that internal module is not there.
    """
    try:
        from tensorflow.python.ops import control_flow_util  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a TensorFlow without that module
        return False
    return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


__all__ = ["keras", "tf", "tfp", "tfd", "startup_log", "CPP_LOG_LINE", "in_xla_compilation"]
