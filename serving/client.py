"""Clients for a VAE served by TF Serving (or the development server): REST and gRPC.

```python
from keras_vae.serving.client import RestClient, GrpcClient

client = RestClient("http://localhost:8501", model="vae")     # or GrpcClient("localhost:8500")
images = client.sample(16, temperature=0.8, seed=1)             # numpy [16, 28, 28, 1]
threes = client.sample(16, seed=1, labels=3)                    # a class-conditional model
means = client.decode(z)                                        # numpy [N, 28, 28, 1]
params = client.decode(z, outputs=None)                         # {"mean", "probs", "logits"}
client.status(); client.metadata()                             # model status, signatures
```

Both clients pick TF Serving's row format ("instances") for signatures whose
inputs share a batch dimension (every signature of export contract 2) and the
column format ("inputs") for signatures with scalar inputs (contract 1's sample),
from the model's own metadata; `sample` sends per-row seeds (row i: seed + i) or
contract 1's scalars, whichever the signature takes. A class-conditional model's
labels are checked by the SavedModel's graph (its INVALID_ARGUMENT message names
the range) after the client's own check that they are integers >= 0. They retry connection failures (not server answers) with backoff,
apply a timeout to every call, and raise `ServingError` carrying the server's
``{"error": ...}`` message and status code.

The REST client talks HTTP/1.1 keep-alive through `http.client`; the gRPC client needs
``grpcio`` and ``tensorflow-serving-api``.
"""

import http.client
import json
import secrets
import threading
import time
import urllib.parse

import numpy as np

from keras_vae.export import contract
from keras_vae.serving import wire
from keras_vae.serving.errors import ServingConnectionError, ServingError, error_for

__all__ = ["ServingError", "ServingConnectionError", "RestClient", "GrpcClient"]


class _BaseClient:
    """What both clients share: signature lookup, format choice, sample/decode."""

    def __init__(self, model, version, label, timeout, retries, backoff):
        if version is not None and label is not None:
            raise ValueError("give a version or a label, not both")
        self.model = model
        self.version = None if version is None else int(version)
        self.label = label
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self._signatures = None
        self._lock = threading.Lock()

    # --- to implement: _predict_arrays(signature_name, inputs, row) -> {name: ndarray}
    #                   _signature_def_json() -> {name: signature JSON}

    def signatures(self, refresh=False):
        """{signature name: {"inputs": {...}, "outputs": {...}, "method_name": ...}}.

        Each tensor is {"dtype": "DT_FLOAT", "shape": [-1, 16], "name": ...}. Internal
        signatures (``__saved_model_init_op``) are left out. Cached after the first call.
        """
        with self._lock:
            if self._signatures is None or refresh:
                raw = self._signature_def_json()
                self._signatures = {name: wire.signature_summary(sig)
                                    for name, sig in raw.items() if not name.startswith("__")}
            return self._signatures

    def _signature(self, name):
        signatures = self.signatures()
        if name not in signatures:
            raise ServingError(f"model {self.model!r} has no signature {name!r} "
                               f"(it has {sorted(signatures)})")
        return signatures[name]

    def predict(self, inputs, signature_name=contract.SERVING_DEFAULT, format="auto"):  # noqa: A002
        """Runs a signature: `inputs` {name: array-like} -> {output name: numpy array}.

        format: "row" ("instances"), "column" ("inputs") or "auto" (row when the
        signature's inputs all share a batch dimension, else column). Inputs are
        cast to the signature's dtypes.
        """
        sig = self._signature(signature_name)
        arrays = {}
        for key, value in inputs.items():
            info = sig["inputs"].get(key)
            dtype = wire.DTYPES.get(info["dtype"]) if info else None
            arrays[key] = np.asarray(value, dtype=dtype)
        if format == "auto":
            row = wire.is_row_compatible(sig) and all(a.ndim >= 1 for a in arrays.values())
        elif format in ("row", "column"):
            row = format == "row"
        else:
            raise ValueError(f"format must be 'auto', 'row' or 'column', got {format!r}")
        outputs = self._predict_arrays(signature_name, arrays, row)
        for key, value in outputs.items():
            info = sig["outputs"].get(key)
            if info and info["dtype"] in wire.DTYPES:
                outputs[key] = value.astype(wire.DTYPES[info["dtype"]], copy=False)
        return outputs

    def _condition(self, signature_name, labels, n):
        return wire.condition_inputs(self._signature(signature_name), signature_name, labels, n)

    def decode(self, z, outputs="mean", signature_name=contract.DECODE, labels=None):
        """p(x|z[, y])'s parameters for latents z [N, d] (labels [N] or one label, if conditional).

        outputs: one output name (default "mean": a numpy array [N, *image_shape]),
        or None for the dict of all outputs (e.g. mean, probs, logits).
        """
        z = np.asarray(z, dtype=np.float32)
        if z.ndim == 1:
            z = z[None]
        (z_name,) = contract.INPUTS[contract.DECODE]
        inputs = {z_name: z, **self._condition(signature_name, labels, len(z))}
        result = self.predict(inputs, signature_name=signature_name)
        return result if outputs is None else result[outputs]

    def sample(self, n, temperature=1.0, seed=None, return_latents=False,
               signature_name=contract.SAMPLE, labels=None):
        """n images drawn from the prior at a temperature: numpy [n, *image_shape].

        seed: an int for reproducible draws (row i draws with seed + i, the same image
        as in every runtime for that seed); None draws a fresh random seed. labels: the
        class of every row or one per row (conditional models). return_latents=True
        returns (images, z).
        """
        if seed is None:
            seed = secrets.randbits(62)
        images, z = contract.OUTPUTS[contract.SAMPLE]
        if contract.NUM_SAMPLES in self._signature(signature_name)["inputs"]:  # contract 1
            n_name, t_name, seed_name = contract.LEGACY_INPUTS[contract.SAMPLE]
            inputs = {n_name: int(n), t_name: float(temperature), seed_name: int(seed)}
        else:
            seed_name, t_name = contract.INPUTS[contract.SAMPLE]
            inputs = {seed_name: int(seed) + np.arange(int(n), dtype=np.int64),
                      t_name: np.full(int(n), float(temperature), np.float32),
                      **self._condition(signature_name, labels, int(n))}
        result = self.predict(inputs, signature_name=signature_name)
        return (result[images], result[z]) if return_latents else result[images]

    def _with_retries(self, call, what):
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return call()
            except _Retryable as err:
                if attempt == self.retries:
                    raise ServingConnectionError(
                        f"{what}: could not reach the server after {self.retries + 1} "
                        f"attempts: {err.__cause__ or err}") from err.__cause__
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")


class _Retryable(Exception):
    """Internal: a connection-level failure worth retrying."""


# ---------------------------------------------------------------------------------- REST


class RestClient(_BaseClient):
    """TF Serving's REST API (``/v1/models/...``) over HTTP/1.1 keep-alive.

    Args:
      url: the server, e.g. "http://localhost:8501".
      model: the model name. version / label: pin a version number or label
        (else the latest version).
      timeout: seconds for each connect / read.
      retries: extra attempts on connection errors (refused, reset, timeout on
        connect); a server's error answer is never retried.
      backoff: seconds before the first retry, doubled after each.

    Thread-safe: each thread keeps its own connection.
    """

    def __init__(self, url="http://localhost:8501", model="vae", version=None, label=None,
                 timeout=30.0, retries=3, backoff=0.1):
        super().__init__(model, version, label, timeout, retries, backoff)
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"url must be http(s)://host:port, got {url!r}")
        self.url = f"{parsed.scheme}://{parsed.netloc}"
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        self._local = threading.local()

    @property
    def model_path(self):
        """The model's URL path: /v1/models/NAME[/versions/N | /labels/L]."""
        path = f"/v1/models/{urllib.parse.quote(self.model, safe='')}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label is not None:
            path += f"/labels/{urllib.parse.quote(self.label, safe='')}"
        return path

    def _connection(self, fresh=False):
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def close(self):
        """Closes this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method, path, body=None):
        """One HTTP call: returns the decoded JSON body, or raises ServingError.

        `body` is a JSON-ready object or already-encoded bytes.
        """
        if body is not None and not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}

        def once():
            # A kept-alive connection the server closed in between fails on first use:
            # that failure is retried on a fresh connection.
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                raw = response.read()
            except TimeoutError as err:
                self._connection(fresh=True)
                raise ServingConnectionError(
                    f"{method} {self.url}{path}: no answer within {self.timeout} s",
                    code="DEADLINE_EXCEEDED") from err
            except (ConnectionError, http.client.RemoteDisconnected,
                    http.client.CannotSendRequest, http.client.BadStatusLine,
                    OSError) as err:
                self._connection(fresh=True)
                raise _Retryable(str(err)) from err
            if response.getheader("Connection", "").lower() == "close":
                self._connection(fresh=True)
            return response.status, raw

        status, raw = self._with_retries(once, f"{method} {self.url}{path}")
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = None
        if status >= 400 or payload is None:
            message = (payload.get("error") if isinstance(payload, dict) else None) or \
                raw.decode("utf-8", "replace")[:500] or f"HTTP {status}"
            raise error_for(message, http_status=status, body=raw)   # 413: PayloadTooLargeError
        return payload

    def status(self):
        """``GET /v1/models/NAME[/versions/N]``: the list of version states."""
        return self.request("GET", self.model_path)["model_version_status"]

    def metadata(self):
        """``GET .../metadata``: TF Serving's metadata body (model_spec, signature_def)."""
        return self.request("GET", self.model_path + "/metadata")

    def _signature_def_json(self):
        return self.metadata()["metadata"]["signature_def"]["signature_def"]

    def predict_json(self, body):
        """POSTs a raw predict body ({"signature_name", "instances"|"inputs"}); returns JSON."""
        return self.request("POST", self.model_path + ":predict", body)

    def _predict_arrays(self, signature_name, arrays, row):
        body = (wire.row_request if row else wire.column_request)(signature_name, arrays)
        return wire.response_outputs(self.predict_json(body),
                                     self._signature(signature_name)["outputs"])


# ---------------------------------------------------------------------------------- gRPC


class GrpcClient(_BaseClient):
    """TF Serving's gRPC API: PredictionService (Predict, GetModelMetadata), ModelService.

    Args:
      target: "host:port", e.g. "localhost:8500".
      model, version, label, timeout, retries, backoff: as for `RestClient`
        (retries apply to UNAVAILABLE, i.e. connection failures).
      max_message_bytes: the largest message sent or received.

    Thread-safe (one channel, shared).
    """

    def __init__(self, target="localhost:8500", model="vae", version=None, label=None,
                 timeout=30.0, retries=3, backoff=0.1, max_message_bytes=256 * 1024 * 1024):
        super().__init__(model, version, label, timeout, retries, backoff)
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.target = target
        self._grpc = grpc
        self._channel = grpc.insecure_channel(
            target, options=[("grpc.max_receive_message_length", max_message_bytes),
                             ("grpc.max_send_message_length", max_message_bytes)])
        self._predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model_stub = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        """Closes the channel."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spec(self, spec, signature_name=None):
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature_name is not None:
            spec.signature_name = signature_name

    def _call(self, method, request, what):
        grpc = self._grpc

        def once():
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNAVAILABLE:
                    raise _Retryable(err.details()) from err
                raise error_for(err.details() or str(err.code()),
                                code=err.code().name) from None

        return self._with_retries(once, f"{what} {self.target}")

    def status(self):
        """ModelService.GetModelStatus as [{"version", "state", "status"}] like REST."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        response = self._call(self._model_stub.GetModelStatus, request, "GetModelStatus")
        states = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": str(s.version), "state": states.Name(s.state),
                 "status": {"error_code": "OK" if s.status.error_code == 0
                            else str(s.status.error_code),
                            "error_message": s.status.error_message}}
                for s in response.model_version_status]

    def metadata(self):
        """PredictionService.GetModelMetadata: the SignatureDefMap proto."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest()
        self._spec(request.model_spec)
        request.metadata_field.append("signature_def")
        response = self._call(self._predict_stub.GetModelMetadata, request, "GetModelMetadata")
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sig_map)
        return sig_map

    def _signature_def_json(self):
        from google.protobuf import json_format

        return json_format.MessageToDict(self.metadata(), preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True
                                         )["signature_def"]

    def predict_proto(self, signature_name, arrays, output_filter=()):
        """PredictionService.Predict on {name: numpy array}; returns the PredictResponse."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature_name)
        for key, value in arrays.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter)
        return self._call(self._predict_stub.Predict, request, "Predict")

    def _predict_arrays(self, signature_name, arrays, row):
        # gRPC carries typed tensors: there is no row/column distinction on the wire.
        import tensorflow as tf

        response = self.predict_proto(signature_name, arrays)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
