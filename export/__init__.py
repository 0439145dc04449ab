r"""keras_vae.export: a trained VAE as a SavedModel (TF Serving), ONNX and TFLite, each checked.

```python
from keras_vae import export
manifest = export.export_all(model, "runs/demo/export")        # or a .keras path
path = export.export_savedmodel(model, "serving/models", name="vae", version=2)
paths = export.export_onnx(model, "out/onnx")                   # decoder, sampler, sampler_int8
tflite = export.export_tflite(path, "out/tflite")
manifest = export.load_manifest("runs/demo/export")             # the reader (no TensorFlow)
```

Command line: `python -m keras_vae.export MODEL.keras --out DIR [--format all]`
(also `keras_vae.export.main(argv)`).

Every export checks what it wrote before moving it into place (decode parity
with the Keras model, sampling in distribution, the SavedModel reloaded in a
fresh process without keras_vae or TFP, onnx.checker and onnxruntime, the TFLite
interpreter) and raises `ExportCheckError` otherwise, leaving nothing behind.
See `api`, `savedmodel`, `onnx_export`, `tflite_export`, `manifest`, `verify`;
`contract` names every file, signature and tensor.

The names below are imported on first use, so `keras_vae.export.manifest` and
`keras_vae.export.contract` can be read without loading the exporters.
"""

import importlib

_LAZY = {
    "FORMATS": ("contract", "FORMATS"),
    "ExportCheckError": ("verify", "ExportCheckError"),
    "export_all": ("api", "export_all"),
    "main": ("api", "main"),
    "export_onnx": ("onnx_export", "export_onnx"),
    "export_savedmodel": ("savedmodel", "export_savedmodel"),
    "export_tflite": ("tflite_export", "export_tflite"),
    "load_manifest": ("manifest", "load"),
    "verify_export_dir": ("verify", "verify_export_dir"),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
