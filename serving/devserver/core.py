"""The development server's core: model lookups, status, input checks and predict.

`ModelServer` holds the models and answers requests given as plain Python; the REST
(`rest.py`) and gRPC (`grpc.py`) front ends only translate the wire formats.
"""

import logging
import threading
import time

import numpy as np

from keras_vae.export import contract
from keras_vae.serving.devserver.repository import Model, read_model_config
from keras_vae.serving.errors import ServingError
from keras_vae.serving.wire import as_array

__all__ = ["ModelServer", "DEFAULT_REST_PORT", "DEFAULT_GRPC_PORT", "DEFAULT_MAX_NUM_SAMPLES",
           "DEFAULT_MAX_BATCH_SIZE", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_SIGNATURE"]

log = logging.getLogger("keras_vae.serving")

DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = 8500
DEFAULT_MAX_NUM_SAMPLES = 1024
DEFAULT_MAX_BATCH_SIZE = 4096
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_SIGNATURE = contract.SERVING_DEFAULT
#: The input the num_samples limit applies to (the sample signature's).
NUM_SAMPLES = contract.NUM_SAMPLES  # contract 1 only; contract 2 batches rows (max_batch_size)


class ModelServer:
    """Holds the models and answers predict / metadata / status requests.

    Args:
      models: a list of dicts (name, base_path, version_policy, labels), as
        `read_model_config` returns; or use `model_base_path`/`model_name`.
      model_base_path: a TF Serving base path (``out/savedmodel/vae``), an export
        folder (``out``) or a numbered SavedModel folder.
      model_name: the name clients ask for (TF Serving's ``--model_name``).
      model_config_file: a ``models.config`` to read models from instead.
      max_num_samples: the largest value an input named ``num_samples`` may take.
      max_batch_size: the largest leading dimension of any input.
      max_body_bytes: the largest REST request body.

    Use `start()` (non-blocking; ports 0 pick free ones, read back `rest_port` and
    `grpc_port`), `stop()`, or the context manager.
    """

    def __init__(self, models=None, *, model_base_path=None, model_name="vae",
                 model_config_file=None, max_num_samples=DEFAULT_MAX_NUM_SAMPLES,
                 max_batch_size=DEFAULT_MAX_BATCH_SIZE, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
        if model_config_file is not None:
            models = read_model_config(model_config_file)
        if models is None:
            if model_base_path is None:
                raise ValueError("give model_base_path, model_config_file or models")
            models = [{"name": model_name, "base_path": model_base_path}]
        self.models = {}
        for spec in models:
            self.models[spec["name"]] = Model(spec["name"], spec["base_path"],
                                              spec.get("version_policy", ("latest", 1)),
                                              spec.get("labels"))
        self.max_num_samples = int(max_num_samples)
        self.max_batch_size = int(max_batch_size)
        self.max_body_bytes = int(max_body_bytes)
        self.host = None
        self.rest_port = None
        self.grpc_port = None
        self._http = None
        self._grpc = None

    # ------------------------------------------------------------------ lookups

    def model(self, name, version=None, label=None):
        """The ModelVersion for a request, or ServingError NOT_FOUND / INVALID_ARGUMENT."""
        if name not in self.models:
            what = (f"Specific({name}, {version})" if version is not None else f"Latest({name})")
            raise ServingError(f"Servable not found for request: {what}", "NOT_FOUND")
        return self.models[name].get(version, label)

    def status(self, name, version=None, label=None):
        """TF Serving's GetModelStatus as plain data (a list of version states)."""
        if name not in self.models:
            raise ServingError(f"Could not find any versions of model {name}", "NOT_FOUND")
        model = self.models[name]
        if version is None and label is None:
            versions = sorted(model.versions, reverse=True)
        else:
            versions = [model.get(version, label).version]
        return [{"version": str(v), "state": "AVAILABLE",
                 "status": {"error_code": "OK", "error_message": ""}} for v in versions]

    # ------------------------------------------------------------------ predict

    def predict(self, name, signature_name, inputs, version=None, label=None):
        """Validates numpy-convertible inputs against a signature and runs it.

        Args:
          name, version, label: the model version, as a request names it.
          signature_name: the signature (None: serving_default).
          inputs: {input name: numpy array or JSON value}.

        Returns:
          (ModelVersion, {output: numpy array}).

        Raises:
          ServingError: NOT_FOUND / INVALID_ARGUMENT naming what is wrong.
        """
        return self.run(self.model(name, version, label), signature_name, inputs)

    def run(self, mv, signature_name, inputs):
        """`predict` on a ModelVersion already looked up; returns (mv, outputs)."""
        signature_name = signature_name or DEFAULT_SIGNATURE
        specs = mv.signature(signature_name)
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise ServingError(f"signature \"{signature_name}\" takes inputs {sorted(specs)}; "
                               f"missing {missing}, unexpected {extra}", "INVALID_ARGUMENT")
        arrays = {key: self._check_input(f"input \"{key}\" of signature \"{signature_name}\"",
                                         key, inputs[key], *specs[key])
                  for key in specs}
        return mv, mv.run(signature_name, arrays)

    def _check_input(self, where, key, value, shape, dtype):
        array = as_array(value, dtype, where)
        if shape is not None:
            _check_shape(where, array, shape)
        if array.ndim >= 1 and array.shape[0] > self.max_batch_size:
            raise ServingError(f"{where}: batch size {array.shape[0]} is above this server's "
                               f"limit of {self.max_batch_size}", "INVALID_ARGUMENT")
        if array.ndim >= 1 and array.shape[0] == 0:
            raise ServingError(f"{where} is empty", "INVALID_ARGUMENT")
        if key == contract.SEED and array.ndim >= 1 and array.shape[0] > self.max_num_samples:
            # contract 2: `sample` draws one image per seed; the num_samples limit bounds the rows
            raise ServingError(f"sample asks for {array.shape[0]} images: num_samples must lie "
                               f"in [1, {self.max_num_samples}] (this server's limit)",
                               "INVALID_ARGUMENT")
        if key == NUM_SAMPLES:
            values = array.reshape(-1)
            if values.size == 0 or values.min() <= 0 or values.max() > self.max_num_samples:
                raise ServingError(f"num_samples must lie in [1, {self.max_num_samples}] "
                                   f"(this server's limit), got {values.tolist()}",
                                   "INVALID_ARGUMENT")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ServingError(f"{where} holds NaN or infinite values", "INVALID_ARGUMENT")
        return array

    # ------------------------------------------------------------------ lifecycle

    def start(self, rest_port=DEFAULT_REST_PORT, grpc_port=DEFAULT_GRPC_PORT, host="127.0.0.1",
              grpc_workers=16):
        """Starts the REST and gRPC front ends in background threads; returns self.

        A port of 0 picks a free one; a negative port (or None) leaves that front end off.
        """
        from keras_vae.serving.devserver import grpc as grpc_front, rest as rest_front

        self.host = host
        if rest_port is not None and rest_port >= 0:
            self._http = rest_front.make_server(self, host, int(rest_port))
            self.rest_port = self._http.server_address[1]
            threading.Thread(target=self._http.serve_forever, name="kvae-rest",
                             daemon=True).start()
        if grpc_port is not None and grpc_port >= 0:
            self._grpc, self.grpc_port = grpc_front.start(self, host, int(grpc_port),
                                                          grpc_workers)
        log.info("keras-vae development server: REST %s, gRPC %s, models %s",
                 self.rest_port, self.grpc_port,
                 {n: sorted(m.versions) for n, m in self.models.items()})
        return self

    def stop(self):
        """Stops both front ends (in-flight requests finish first)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=2).wait()
            self._grpc = None

    def wait(self):
        """Blocks until interrupted (Ctrl-C)."""
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

    def __enter__(self):
        if self._http is None and self._grpc is None:
            self.start(rest_port=0, grpc_port=0)
        return self

    def __exit__(self, *exc):
        self.stop()


def _shape_str(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_shape(where, array, shape):
    """`shape` is the SignatureDef's, -1 for a free dimension."""
    if array.ndim != len(shape):
        raise ServingError(f"{where} must have rank {len(shape)} (shape {_shape_str(shape)}), "
                           f"got shape {list(array.shape)}", "INVALID_ARGUMENT")
    for i, (want, got) in enumerate(zip(shape, array.shape)):
        if want >= 0 and want != got:
            raise ServingError(f"{where} must have shape {_shape_str(shape)}, got "
                               f"{list(array.shape)} (dimension {i})", "INVALID_ARGUMENT")
