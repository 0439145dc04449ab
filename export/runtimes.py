"""The runtime loaders of exported artefacts, written once for the exporters and `verify`.

```none
savedmodel(path)          tf.saved_model.load                     (TF Serving's view)
onnx_session(path)        onnx.checker (full check) + onnxruntime CPU session
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
        return onnxruntime.InferenceSession(str(path), providers=list(providers))
    except Exception as error:
        raise verify.ExportCheckError(f"ONNX {name}: onnxruntime cannot load it: {error}") from error


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


__all__ = ["savedmodel", "onnx_session", "run_onnx", "tflite_interpreter", "run_signature"]
