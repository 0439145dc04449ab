"""The runtime loaders of exported artefacts, written once for the exporters and `verify`.

```none
savedmodel(path)          tf.saved_model.load                     (TF Serving's view)
onnx_session(path)        onnx.checker (full check) + onnxruntime CPU session
session_options()         the onnxruntime SessionOptions every session here uses
tflite_interpreter(path)  ai_edge_litert's Interpreter, else tf.lite.Interpreter
run_onnx(session, feeds)  {output name: array}
run_signature(interp, name, **inputs)  {output name: array} of one TFLite signature
```

Each imports its runtime when called; a file that does not load raises
`ExportCheckError` naming it.
"""

import pathlib

import numpy as np

from keras_vae.export import verify

#: onnxruntime CPU settings of every session (`session_options`), chosen by measuring
#: the batch-1 sampler of the default preset (bench/ part export) on an idle 2-core
#: machine: onnxruntime's own intra-op pool (0: one thread per physical core) gave a
#: p50 of 92-112 us against 178-194 us with one thread (the decoder's MatMuls split);
#: all graph optimisations fold the constant parts of the counter-based PRNG once at
#: load. On a machine whose cores are busy, `session_options(intra_op_num_threads=1)`
#: avoids waits for a descheduled pool thread (a p99 of ms).
SESSION_SETTINGS = {"graph_optimization_level": "ORT_ENABLE_ALL", "intra_op_num_threads": 0,
                    "inter_op_num_threads": 1, "execution_mode": "ORT_SEQUENTIAL"}


def session_options(**overrides):
    """`onnxruntime.SessionOptions` with `SESSION_SETTINGS` (and `overrides`, same keys).

    Example: ``onnxruntime.InferenceSession(path, session_options(), providers=[...])``;
    ``session_options(intra_op_num_threads=4)`` for large batches.
    """
    import onnxruntime

    settings = {**SESSION_SETTINGS, **overrides}
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel,
                                               settings["graph_optimization_level"])
    options.execution_mode = getattr(onnxruntime.ExecutionMode, settings["execution_mode"])
    options.intra_op_num_threads = int(settings["intra_op_num_threads"])
    options.inter_op_num_threads = int(settings["inter_op_num_threads"])
    return options


def savedmodel(path):
    """The SavedModel at `path`, loaded with `tf.saved_model.load`."""
    from keras_vae._backend import tf

    try:
        return tf.saved_model.load(str(path))
    except Exception as error:  # TF raises several types
        raise verify.ExportCheckError(
            f"SavedModel {str(path)!r}: tf.saved_model.load failed: {error}") from error


def onnx_session(path, providers=("CPUExecutionProvider",)):
    """An onnxruntime session of the file at `path`, after onnx.checker's full check."""
    import onnx
    import onnxruntime

    name = pathlib.Path(path).name
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # onnx raises several types
        raise verify.ExportCheckError(f"ONNX {name}: onnx.checker: {error}") from error
    try:
        return onnxruntime.InferenceSession(str(path), session_options(),
                                            providers=list(providers))
    except Exception as error:
        raise verify.ExportCheckError(
            f"ONNX {name}: onnxruntime cannot load it: {error}") from error


def run_onnx(session, feeds):
    """Runs an onnxruntime session on `feeds`; returns {output name: array}."""
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def tflite_interpreter(path_or_bytes):
    """An interpreter: `ai_edge_litert` if installed, else TF's own `tf.lite.Interpreter`."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - the export extra installs it
        from keras_vae._backend import tf

        Interpreter = tf.lite.Interpreter
    if isinstance(path_or_bytes, (bytes, bytearray)):
        return Interpreter(model_content=bytes(path_or_bytes))
    return Interpreter(model_path=str(path_or_bytes))


def run_signature(interp, name, **inputs):
    """Runs one signature of a TFLite interpreter; returns {output: array}."""
    runner = interp.get_signature_runner(name)
    return {k: np.asarray(v) for k, v in runner(**inputs).items()}


__all__ = ["SESSION_SETTINGS", "session_options", "savedmodel", "onnx_session", "run_onnx", "tflite_interpreter", "run_signature"]
