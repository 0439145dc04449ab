"""The development server's core: model lookups, status, input checks and predict.

`ModelServer` holds the models and answers requests given as plain Python; the REST
(`rest.py`) and gRPC (`grpc.py`) front ends only translate the wire formats.
"""

import contextlib
import logging
import threading
import time

import numpy as np

from keras_vae.export import contract
from keras_vae.serving.devserver.batching import Batcher, read_batching_parameters
from keras_vae.serving.devserver.limits import Limits, check_response_size
from keras_vae.serving.devserver.repository import Model, read_model_config
from keras_vae.serving.errors import ServingError
from keras_vae.serving.wire import as_array

__all__ = ["ModelServer", "DEFAULT_REST_PORT", "DEFAULT_GRPC_PORT", "DEFAULT_MAX_NUM_SAMPLES",
           "DEFAULT_MAX_BATCH_SIZE", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_SIGNATURE"]

log = logging.getLogger("keras_vae.serving")

DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = 8500
DEFAULT_MAX_NUM_SAMPLES = Limits.max_num_samples
DEFAULT_MAX_BATCH_SIZE = Limits.max_batch_size
DEFAULT_MAX_BODY_BYTES = Limits.max_request_bytes
DEFAULT_SIGNATURE = contract.SERVING_DEFAULT
#: The scalar input of export folders before contract 2 whose value is the rows asked for.
NUM_SAMPLES = "num_samples"
#: Answers built (serialised) at once: bounds the memory that large answers take.
ANSWER_SLOTS = 4


class ModelServer:
    """Holds the models and answers predict / metadata / status requests.

    Args:
      models: a list of dicts (name, base_path, version_policy, labels), as
        `read_model_config` returns; or use `model_base_path`/`model_name`.
      model_base_path: a TF Serving base path (``out/savedmodel/vae``), an export
        folder (``out``) or a numbered SavedModel folder.
      model_name: the name clients ask for (TF Serving's ``--model_name``).
      model_config_file: a ``models.config`` to read models from instead.
      max_num_samples: the most rows one request may ask for, any signature (the
        leading dimension of its inputs, or a scalar ``num_samples``).
      max_batch_size: the largest leading dimension of any input.
      max_body_bytes: the largest REST body / gRPC message (`Limits.max_request_bytes`).
      limits: a `keras_vae.serving.devserver.limits.Limits` with every other limit
        (its own rows / batch / body values are replaced by the three above when given).
      batching_parameters_file: TF Serving's BatchingParameters text proto; with it,
        every signature is batched as ``--enable_batching`` does (see `batching`).
      monitoring: serve Prometheus metrics at ``/monitoring/prometheus/metrics``.

    Use `start()` (non-blocking; ports 0 pick free ones, read back `rest_port` and
    `grpc_port`), `stop()`, or the context manager.
    """

    def __init__(self, models=None, *, model_base_path=None, model_name="vae",
                 model_config_file=None, max_num_samples=None, max_batch_size=None,
                 max_body_bytes=None, limits=None, batching_parameters_file=None,
                 monitoring=False):
        if model_config_file is not None:
            models = read_model_config(model_config_file)
        if models is None:
            if model_base_path is None:
                raise ValueError("give model_base_path, model_config_file or models")
            models = [{"name": model_name, "base_path": model_base_path}]
        self.limits = _limits(limits, max_num_samples, max_batch_size, max_body_bytes)
        self.batcher = None
        if batching_parameters_file is not None:
            self.batcher = Batcher(read_batching_parameters(batching_parameters_file))
        self.models = {}
        for spec in models:
            self.models[spec["name"]] = Model(spec["name"], spec["base_path"],
                                              spec.get("version_policy", ("latest", 1)),
                                              spec.get("labels"))
        self.metrics = None
        if monitoring:
            from keras_vae.serving.devserver.metrics import Metrics

            self.metrics = Metrics()
        self._answer_slots = threading.BoundedSemaphore(ANSWER_SLOTS)
        self.host = None
        self.rest_port = None
        self.grpc_port = None
        self._http = None
        self._grpc = None

    @property
    def max_num_samples(self):
        return self.limits.max_num_samples

    @property
    def max_batch_size(self):
        return self.limits.max_batch_size

    @property
    def max_body_bytes(self):
        return self.limits.max_request_bytes

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

    def predict(self, name, signature_name, inputs, version=None, label=None, **kwargs):
        """Validates numpy-convertible inputs against a signature and runs it.

        Args:
          name, version, label: the model version, as a request names it.
          signature_name: the signature (None: serving_default).
          inputs: {input name: numpy array or JSON value}.
          **kwargs: `run`'s bytes_per_value and outputs.

        Returns:
          (ModelVersion, {output: numpy array}).

        Raises:
          ServingError: NOT_FOUND / INVALID_ARGUMENT naming what is wrong;
            PayloadTooLargeError when the answer would be above the response limit.
        """
        return self.run(self.model(name, version, label), signature_name, inputs, **kwargs)

    def run(self, mv, signature_name, inputs, bytes_per_value=None, outputs=None):
        """`predict` on a ModelVersion already looked up; returns (mv, outputs).

        Args:
          bytes_per_value: the bytes one answered value takes (None: its dtype's size).
          outputs: the outputs that will be answered (None: all), for the size check.
        """
        signature_name = signature_name or DEFAULT_SIGNATURE
        specs = mv.signature(signature_name)
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise ServingError(f"signature \"{signature_name}\" takes inputs {sorted(specs)}; "
                               f"missing {missing}, unexpected {extra}", "INVALID_ARGUMENT")
        arrays = {key: self._check_input(f"input \"{key}\" of signature \"{signature_name}\"",
                                         inputs[key], *specs[key])
                  for key in specs}
        rows = self._rows(signature_name, arrays)
        answered = {k: v for k, v in mv.output_specs.get(signature_name, {}).items()
                    if outputs is None or k in outputs}
        check_response_size(answered, rows, self.limits.max_response_bytes, bytes_per_value,
                            signature_name)
        start = time.perf_counter()
        if self.batcher is None:
            result = mv.run(signature_name, arrays)
        else:
            key = (mv.name, mv.version, signature_name)
            result = self.batcher.run(key, lambda merged: mv.run(signature_name, merged),
                                      arrays)
        if self.metrics is not None:
            self.metrics.observe(signature_name, time.perf_counter() - start)
        return mv, result

    @contextlib.contextmanager
    def answer_slot(self):
        """Held while a front end builds an answer (at most ANSWER_SLOTS at once)."""
        with self._answer_slots:
            yield

    def _check_input(self, where, value, shape, dtype):
        array = as_array(value, dtype, where)
        if shape is not None:
            _check_shape(where, array, shape)
        if array.ndim >= 1 and array.shape[0] > self.limits.max_batch_size:
            raise ServingError(f"{where}: batch size {array.shape[0]} is above this server's "
                               f"limit of {self.limits.max_batch_size}", "INVALID_ARGUMENT")
        if array.ndim >= 1 and array.shape[0] == 0:
            raise ServingError(f"{where} is empty", "INVALID_ARGUMENT")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ServingError(f"{where} holds NaN or infinite values", "INVALID_ARGUMENT")
        return array

    def _rows(self, signature_name, arrays):
        """The rows a request asks for: a scalar num_samples, else the leading dimension."""
        limit = self.limits.max_num_samples
        counted = arrays.get(NUM_SAMPLES)
        if counted is not None and counted.ndim == 0:
            value = int(counted)
            if value <= 0 or value > limit:
                raise ServingError(f"num_samples must lie in [1, {limit}] (this server's "
                                   f"limit), got {value}", "INVALID_ARGUMENT")
            return value
        rows = max((a.shape[0] for a in arrays.values() if a.ndim >= 1), default=1)
        if rows > limit:
            raise ServingError(f"signature \"{signature_name}\" asks for {rows} rows; this "
                               f"server answers [1, {limit}] rows per request (its limit, "
                               "--max_num_samples)", "INVALID_ARGUMENT")
        return rows

    # ------------------------------------------------------------------ lifecycle

    def start(self, rest_port=DEFAULT_REST_PORT, grpc_port=DEFAULT_GRPC_PORT, host="127.0.0.1",
              grpc_workers=None):
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
            self._grpc, self.grpc_port = grpc_front.start(
                self, host, int(grpc_port), grpc_workers or self.limits.grpc_max_threads)
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
        """Blocks until Ctrl-C or SIGTERM (either stops the server, as TF Serving's do)."""
        with _stop_signals():
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


@contextlib.contextmanager
def _stop_signals():
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread while the server waits.

    A process started in the background by a non-interactive shell inherits SIGINT
    ignored, and Python then installs no Ctrl-C handler: without this the server
    would not stop on SIGINT (seen in CI), nor ever on SIGTERM (`docker stop`).
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _limits(limits, max_num_samples, max_batch_size, max_body_bytes):
    import dataclasses

    given = {"max_num_samples": max_num_samples, "max_batch_size": max_batch_size,
             "max_request_bytes": max_body_bytes}
    return dataclasses.replace(limits or Limits(),
                               **{k: int(v) for k, v in given.items() if v is not None})


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
