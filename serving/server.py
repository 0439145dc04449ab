"""The development server's public names, where they have always been importable.

The server itself lives in `keras_vae.serving.devserver` (repository, core, REST and
gRPC modules); ``keras-vae serve`` calls `main` here.
"""

from keras_vae.serving.devserver import ModelServer, build_parser, main, read_model_config, serve

__all__ = ["ModelServer", "read_model_config", "serve", "main", "build_parser"]
