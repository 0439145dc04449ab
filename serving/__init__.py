"""keras_vae.serving: serve an exported VAE.

* Production: TF Serving (the official ``tensorflow/serving`` image, 2.21 or newer) with
  the files in ``keras_vae/serving/tf_serving/`` (models.config, batching parameters,
  docker-compose.yml, docker-run.sh).
* `ServingError` / `ServingConnectionError`: the one error family of the server and the
  clients (a gRPC status code name, an HTTP status, the message).
* `RestClient` / `GrpcClient`: clients for TF Serving's REST and gRPC APIs
  (``sample(n, temperature, seed)``, ``decode(z)``, ``status()``, ``metadata()``).
* `ModelServer` / `serve`: a development server speaking the same REST and gRPC
  protocol, for machines without TF Serving (``keras-vae serve``,
  ``python -m keras_vae.serving serve``). Not for production.
* ``node/sample.mjs`` and ``web/``: the exported ONNX sampler in Node.js and in a browser
  (``python -m keras_vae.serving web OUT``).
"""

from keras_vae.serving.client import GrpcClient, RestClient
from keras_vae.serving.devserver import ModelServer, serve
from keras_vae.serving.errors import ServingConnectionError, ServingError

__all__ = ["GrpcClient", "RestClient", "ServingError", "ServingConnectionError",
           "ModelServer", "serve"]
