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


def _run(signature, **inputs):
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def main(argv):
    path, inputs_path, outputs_path = argv
    inputs = dict(np.load(inputs_path))
    loaded = tf.saved_model.load(path)
    signatures = loaded.signatures
    out = {}

    def put(prefix, results):
        for key, value in results.items():
            out[f"{prefix}.{key}"] = value

    put("decode", _run(signatures["decode"], z=inputs["z"]))
    put("serving_default", _run(signatures["serving_default"], z=inputs["z"]))
    put("encode", _run(signatures["encode"], x=inputs["x"]))
    sample = dict(num_samples=np.int32(inputs["num_samples"]),
                  temperature=np.float32(inputs["temperature"]))
    put("sample_a", _run(signatures["sample"], seed=np.int64(inputs["seed"]), **sample))
    put("sample_b", _run(signatures["sample"], seed=np.int64(inputs["seed"]), **sample))
    put("sample_c", _run(signatures["sample"], seed=np.int64(inputs["seed"] + 1), **sample))
    put("draws", _run(signatures["sample"], num_samples=np.int32(inputs["draws"]),
                      temperature=np.float32(inputs["temperature"]),
                      seed=np.int64(inputs["draws_seed"])))
    forbidden = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    report = {"signatures": sorted(signatures.keys()), "forbidden_modules": forbidden,
              "tensorflow": tf.__version__}
    out["report"] = np.array(json.dumps(report))
    np.savez(outputs_path, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
