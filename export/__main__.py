"""`python -m keras_vae.export MODEL.keras --out DIR [--format savedmodel|onnx|tflite|all]`."""

import sys

from keras_vae.export.api import main

__all__ = []

sys.exit(main())
