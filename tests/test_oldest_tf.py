"""The oldest TF Serving that loads our exports: its TensorFlow loads and runs every signature.

TF Serving X.Y is built on TensorFlow X.Y, so a SavedModel that TensorFlow 2.12 loads and
runs is served by ``tensorflow/serving:2.12.0`` and newer. 2.12 is the oldest TensorFlow
with a Python 3.11 wheel on PyPI (``tensorflow-cpu`` starts at 2.12.0rc0 for cp311);
2.12.0, 2.13.1, 2.14.1, 2.15.1 and 2.16.2 were all checked by hand on 2026-12-01 and gave
the same outputs as 2.21. tests/install.sh makes the throwaway venv (tensorflow-cpu
2.12.0, about 1.5 min and 1.7 GB); this test never reaches the internet and fails, not
skips, without it. It runs each signature of the export in that venv on fixed inputs
and compares every output with TensorFlow 2.21 in this process (about 10 s).
"""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from serving_support import COMPAT_EXPORT, REPO

OLDEST_TF = "2.12.0"
#: The venv tests/install.sh creates (override: $KERAS_VAE_OLDEST_TF_PYTHON).
OLDEST_TF_VENV = REPO / ".venv-oldest-tf"

#: Runs in the old TensorFlow: fixed inputs for every signature, outputs into an npz.
CHECK = r"""
import json, sys
import numpy as np
import tensorflow as tf

path, out = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(path)
arrays, inputs_seen = {}, {}
for name, fn in loaded.signatures.items():
    _, kwargs = fn.structured_input_signature
    inputs = {}
    for key, spec in sorted(kwargs.items()):
        shape = [3 if d is None else d for d in spec.shape.as_list()]
        dtype = spec.dtype.as_numpy_dtype
        count = int(np.prod(shape))
        if spec.dtype.is_floating:
            value = np.linspace(0.3, 0.9, count).astype(dtype).reshape(shape)
        elif key in ("num_samples", "label"):
            value = np.full(shape, 3 if key == "num_samples" else 1, dtype)
        else:
            value = (np.arange(count) + 11).astype(dtype).reshape(shape)
        inputs[key] = value
        arrays[f"in/{name}/{key}"] = value
    for key, value in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items():
        arrays[f"out/{name}/{key}"] = value.numpy()
np.savez(out, **arrays)
print(json.dumps({"tf": tf.__version__, "signatures": sorted(loaded.signatures)}))
"""


def _python():
    python = os.environ.get("KERAS_VAE_OLDEST_TF_PYTHON") or str(OLDEST_TF_VENV / "bin" /
                                                                  "python")
    if not os.access(python, os.X_OK):
        pytest.fail(f"no TensorFlow {OLDEST_TF} venv at {python}: run tests/install.sh (it "
                    f"creates {OLDEST_TF_VENV} with tensorflow-cpu=={OLDEST_TF} from PyPI) or "
                    "set KERAS_VAE_OLDEST_TF_PYTHON", pytrace=False)
    return python


def _run_in_oldest_tf(savedmodel, tmp_path):
    out = tmp_path / f"{savedmodel.parent.parent.parent.name}.npz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([_python(), "-c", CHECK, str(savedmodel), str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, (f"TensorFlow {OLDEST_TF} could not load or run "
                                  f"{savedmodel}:\n{proc.stderr[-4000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["tf"] == OLDEST_TF, report
    return report, dict(np.load(out))


def _compare_with_this_tf(savedmodel, arrays):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(savedmodel))
    for name, fn in loaded.signatures.items():
        prefix = f"in/{name}/"
        inputs = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        for key, value in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items():
            old = arrays[f"out/{name}/{key}"]
            assert old.shape == tuple(value.shape), (name, key)
            np.testing.assert_allclose(old, value.numpy(), rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}/{key}: TF {OLDEST_TF} vs "
                                               f"{tf.__version__}")


@pytest.mark.parametrize("which", ["current", "before_contract_2"])
def test_oldest_tf_loads_and_runs_every_signature(which, exported_vae, tmp_path):
    root = exported_vae if which == "current" else COMPAT_EXPORT
    manifest = json.loads((pathlib.Path(root) / "manifest.json").read_text())
    savedmodel = root / manifest["artefacts"]["savedmodel"]["path"]
    report, arrays = _run_in_oldest_tf(savedmodel, tmp_path)
    assert {"decode", "encode", "sample", "serving_default"} <= set(report["signatures"])
    _compare_with_this_tf(savedmodel, arrays)


def test_deployment_pins_a_server_at_least_as_new():
    compose = (REPO / "serving" / "tf_serving" / "docker-compose.yml").read_text()
    tags = {line.split(":", 2)[-1].strip() for line in compose.splitlines()
            if "image: tensorflow/serving:" in line}
    assert len(tags) == 1, tags
    (tag,) = tags
    as_tuple = tuple(int(p) for p in tag.split("."))
    assert as_tuple >= tuple(int(p) for p in OLDEST_TF.split(".")), tag
    readme = (REPO / "README.md").read_text()
    assert f"tensorflow/serving:{tag}" in readme and f"TensorFlow {OLDEST_TF}" in readme
