"""keras_vae.serving: TF Serving clients, a development server, ONNX samplers for Node and the web."""
