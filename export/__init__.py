"""keras_vae.export: the decoder as a SavedModel (TF Serving layout), ONNX and TFLite."""
