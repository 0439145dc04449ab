"""Loads an exported SavedModel in a fresh process and runs its signatures: no keras_vae, no TFP.

Run by `keras_vae.export` as a script (never imported), so that the check sees
what TF Serving sees: the SavedModel alone.

    python _savedmodel_check.py SAVEDMODEL_DIR INPUTS.npz OUTPUTS.npz

INPUTS.npz holds the calls to make as 'ID|SIGNATURE|INPUT' arrays; OUTPUTS.npz
gets 'ID.OUTPUT' arrays, the outputs of every warmup request replayed
('warmup<i>.OUTPUT'), and 'report' (JSON): the signatures found, each signature's
input ranks, the warmup records replayed, and any forbidden module (keras_vae,
tensorflow_probability) found in sys.modules.
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


def _load(name):
    """export/NAME.py by its path, under a name outside keras_vae (it imports no keras_vae)."""
    spec = importlib.util.spec_from_file_location(f"_export_{name}",
                                                  os.path.join(_HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W = _load("warmup")


def _run(signature, inputs):
    outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def _calls(inputs):
    calls = {}
    for key, value in inputs.items():
        call_id, signature, name = key.split("|")
        calls.setdefault((call_id, signature), {})[name] = value
    return calls


def main(argv):
    path, inputs_path, outputs_path = argv
    signatures = tf.saved_model.load(path).signatures
    out = {}
    for (call_id, signature), inputs in _calls(dict(np.load(inputs_path))).items():
        for key, value in _run(signatures[signature], inputs).items():
            out[f"{call_id}.{key}"] = value
    replayed = []
    warmup = W.path_in(path)
    if warmup.is_file():
        for i, (_, signature, inputs) in enumerate(W.read(warmup)):
            for key, value in _run(signatures[signature], inputs).items():
                out[f"warmup{i}.{key}"] = value
            replayed.append({"signature": signature, "inputs": sorted(inputs)})
    ranks = {name: {k: (None if s.shape.rank is None else s.shape.rank)
                    for k, s in fn.structured_input_signature[1].items()}
             for name, fn in signatures.items()}
    forbidden = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    report = {"signatures": sorted(signatures.keys()), "forbidden_modules": forbidden,
              "input_ranks": ranks, "warmup": replayed, "tensorflow": tf.__version__}
    out["report"] = np.array(json.dumps(report))
    np.savez(outputs_path, **out)


if __name__ == "__main__":
    main(sys.argv[1:])
