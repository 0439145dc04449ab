r"""keras_vae.export: a trained VAE as a SavedModel (TF Serving), ONNX and TFLite, each checked.

```python
from keras_vae import export
manifest = export.export_all(model, "runs/demo/export")        # or a .keras path
path = export.export_savedmodel(model, "serving/models", name="vae", version=2)
paths = export.export_onnx(model, "out/onnx")                   # decoder, sampler, sampler_int8
tflite = export.export_tflite(path, "out/tflite")
```

Command line: `python -m keras_vae.export MODEL.keras --out DIR [--format all]`
(also `keras_vae.export.main(argv)`).

Every export checks what it wrote before moving it into place (decode parity
with the Keras model, sampling in distribution, the SavedModel reloaded in a
fresh process without keras_vae or TFP, onnx.checker and onnxruntime, the TFLite
interpreter) and raises `ExportCheckError` otherwise, leaving nothing behind.
See `api`, `savedmodel`, `onnx_export`, `tflite_export`, `manifest`, `verify`.
"""

from keras_vae.export.api import FORMATS, export_all, main
from keras_vae.export.manifest import load as load_manifest
from keras_vae.export.onnx_export import export_onnx
from keras_vae.export.savedmodel import export_savedmodel
from keras_vae.export.tflite_export import export_tflite
from keras_vae.export.verify import ExportCheckError

__all__ = [
    "FORMATS", "ExportCheckError", "export_all", "export_onnx", "export_savedmodel",
    "export_tflite", "load_manifest", "main",
]
