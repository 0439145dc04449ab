"""Loads an exported SavedModel in a fresh process and runs its signatures: no keras_vae, no TFP.

Run by `keras_vae.export` as a script (never imported), so that the check sees
what TF Serving sees: the SavedModel alone.

    python _savedmodel_check.py SAVEDMODEL_DIR INPUTS.npz OUTPUTS.npz

INPUTS.npz holds z [N, d], x [M, *event], num_samples, temperature, seed,
draws, draws_seed. OUTPUTS.npz gets '<signature>.<output>' arrays for decode,
serving_default and encode on z and x; sample_a and sample_b (the same seed
twice), sample_c (seed + 1), draws (many samples), and 'report' (JSON): the
signatures found and any forbidden module (keras_vae, tensorflow_probability)
found in sys.modules.
"""

import importlib.util
import json
import os
import sys

# The script's own folder (the export package) must not shadow installed packages.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

FORBIDDEN = ("keras_vae", "tensorflow_probability")
__all__ = ["FORBIDDEN", "main"]


def _load_contract():
    """export/contract.py by its path, under a name outside keras_vae (it imports only pathlib)."""
    spec = importlib.util.spec_from_file_location("_export_contract",
                                                  os.path.join(_HERE, "contract.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


C = _load_contract()


def _run(signature, **inputs):
    outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def _sample(signatures, num_samples, temperature, seed):
    return _run(signatures[C.SAMPLE], **{C.NUM_SAMPLES: np.int32(num_samples),
                                         C.TEMPERATURE: np.float32(temperature),
                                         C.SEED: np.int64(seed)})


def main(argv):
    path, inputs_path, outputs_path = argv
    inputs = dict(np.load(inputs_path))
    signatures = tf.saved_model.load(path).signatures
    out = {}

    def put(prefix, results):
        for key, value in results.items():
            out[f"{prefix}.{key}"] = value

    for name in (C.DECODE, C.SERVING_DEFAULT):
        put(name, _run(signatures[name], **{C.Z: inputs[C.Z]}))
    put(C.ENCODE, _run(signatures[C.ENCODE], **{C.X: inputs[C.X]}))
    n, t, seed = inputs[C.NUM_SAMPLES], inputs[C.TEMPERATURE], inputs[C.SEED]
    put("sample_a", _sample(signatures, n, t, seed))
    put("sample_b", _sample(signatures, n, t, seed))
    put("sample_c", _sample(signatures, n, t, seed + 1))
    put("draws", _sample(signatures, inputs["draws"], t, inputs["draws_seed"]))
    forbidden = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    report = {"signatures": sorted(signatures.keys()), "forbidden_modules": forbidden,
              "tensorflow": tf.__version__}
    out["report"] = np.array(json.dumps(report))
    np.savez(outputs_path, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
