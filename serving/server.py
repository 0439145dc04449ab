"""A development server that speaks TF Serving's REST and gRPC protocols.

**Production is TF Serving** (the official `tensorflow/serving` image, see
`keras_vae/serving/tf_serving/`). This server exists so that the exported
SavedModel, the clients and their tests can run where no `tensorflow_model_server`
binary is available (it is in no pip/npm/apt registry). It loads the SavedModel
with plain `tf.saved_model.load` (no TensorFlow Probability, no Keras) and mirrors
TF Serving's contract:

REST (default port 8501)::

    GET  /v1/models/NAME                         model status
    GET  /v1/models/NAME/versions/N              status of one version
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata     signatures
    POST /v1/models/NAME[/versions/N|/labels/L]:predict
         {"signature_name": "decode", "instances": [{"z": [...]}, ...]}   row format
         {"signature_name": "sample", "inputs": {"num_samples": 4, ...}}  column format
    -> {"predictions": [...]} / {"outputs": {...}}; errors: 4xx/5xx {"error": "..."}

gRPC (default port 8500): `tensorflow.serving.PredictionService` (Predict,
GetModelMetadata) and `tensorflow.serving.ModelService` (GetModelStatus).

Guards a public service needs: a request body limit, a batch-size limit and a
`num_samples` limit (any input named ``num_samples`` must lie in
``[1, max_num_samples]``). Every malformed request gets a 4xx with a message and
the server keeps serving; it is thread-safe and serves requests concurrently.

Run it::

    python -m keras_vae.serving serve --model_base_path out/savedmodel/vae --model_name vae
    keras-vae serve ...            # the same, from the package's CLI
"""

import argparse
import concurrent.futures
import json
import logging
import os
import pathlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from keras_vae.serving._tensors import HTTP_STATUS, to_json_value

log = logging.getLogger("keras_vae.serving")

DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = 8500
DEFAULT_MAX_NUM_SAMPLES = 1024
DEFAULT_MAX_BATCH_SIZE = 4096
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request the server refuses: a gRPC status code name and a message.

    The REST front end turns it into ``HTTP_STATUS[code]`` with ``{"error": message}``,
    the gRPC one into the status code itself.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        return HTTP_STATUS.get(self.code, 500)


# ---------------------------------------------------------------------------------- models


class ModelVersion:
    """One loaded SavedModel version: its callable signatures and SignatureDefs."""

    def __init__(self, name, version, path):
        import tensorflow as tf
        from tensorflow.core.protobuf import saved_model_pb2

        self.name = name
        self.version = int(version)
        self.path = pathlib.Path(path)
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((self.path / "saved_model.pb").read_bytes())
        meta = next((m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags),
                    proto.meta_graphs[0])
        #: name -> tensorflow.SignatureDef proto (what GetModelMetadata returns).
        self.signature_defs = dict(meta.signature_def)
        self._loaded = tf.saved_model.load(str(self.path))
        self.functions = dict(self._loaded.signatures)
        self.specs = {}
        for sig_name, fn in self.functions.items():
            _, kwargs = fn.structured_input_signature
            self.specs[sig_name] = {key: (spec.shape, spec.dtype.as_numpy_dtype)
                                    for key, spec in kwargs.items()}

    def run(self, signature_name, inputs):
        """Calls a signature on numpy inputs; returns {output name: numpy array}."""
        import tensorflow as tf

        fn = self.functions[signature_name]
        try:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
                ValueError, TypeError) as err:
            message = getattr(err, "message", None) or str(err)
            raise ServingError("INVALID_ARGUMENT", message.strip().splitlines()[0]) from None
        except tf.errors.ResourceExhaustedError as err:
            raise ServingError("RESOURCE_EXHAUSTED", str(err.message)) from None
        return {k: v.numpy() for k, v in outputs.items()}


def _version_dirs(base_path):
    base = pathlib.Path(base_path)
    return sorted(int(p.name) for p in base.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file())


def resolve_base_path(path, model_name="vae"):
    """Finds the TF Serving base path (a folder of numbered versions) from what a user gives.

    Accepts the base path itself (``out/savedmodel/vae``), an export folder
    (``out``, holding ``savedmodel/NAME/VERSION``) or one SavedModel folder
    (holding ``saved_model.pb``; served as its parent base path if that is numbered).
    Returns (base_path, versions or None); versions None means "use the policy".
    """
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        if path.name.isdigit():
            return path.parent, [int(path.name)]
        raise ServingError("FAILED_PRECONDITION",
                           f"{path} is a SavedModel but not inside a numbered version folder "
                           "(TF Serving's layout is BASE/NAME/VERSION/saved_model.pb)")
    manifest = path / "manifest.json"
    if manifest.is_file():  # an export folder: the manifest says where the SavedModel is
        try:
            entry = json.loads(manifest.read_text())["artefacts"]["savedmodel"]
            path = path / entry["base_path"] / entry["model_name"]
        except (ValueError, KeyError, TypeError):
            pass
    if (path / "savedmodel" / model_name).is_dir():
        path = path / "savedmodel" / model_name
    if not path.is_dir() or not _version_dirs(path):
        raise ServingError("NOT_FOUND",
                           f"no SavedModel versions under {path} (expected {path}/1/saved_model.pb)")
    return path, None


class Model:
    """A named model: its loaded versions and version labels (TF Serving's semantics)."""

    def __init__(self, name, base_path, version_policy=("latest", 1), labels=None):
        self.name = name
        base_path, chosen = resolve_base_path(base_path, name)
        self.base_path = base_path
        available = _version_dirs(base_path)
        if chosen is None:
            kind, arg = version_policy
            if kind == "latest":
                chosen = available[-int(arg or 1):]
            elif kind == "all":
                chosen = available
            elif kind == "specific":
                missing = sorted(set(arg) - set(available))
                if missing:
                    raise ServingError("NOT_FOUND",
                                       f"model {name}: versions {missing} not under {base_path}")
                chosen = sorted(arg)
            else:
                raise ValueError(f"unknown version policy {kind!r}")
        self.versions = {v: ModelVersion(name, v, base_path / str(v)) for v in chosen}
        # Like TF Serving with --allow_version_labels_for_unavailable_models: a label may
        # name a version that is not (yet) loaded; requests through it get NOT_FOUND.
        self.labels = {str(k): int(v) for k, v in (labels or {}).items()}
        for label, version in self.labels.items():
            if version not in self.versions:
                log.warning("model %s: label %r names version %d, which is not loaded",
                            name, label, version)

    def get(self, version=None, label=None):
        if label is not None:
            if label not in self.labels:
                raise ServingError("INVALID_ARGUMENT",
                                   f"Unrecognized servable version label: {label}")
            version = self.labels[label]
            if version not in self.versions:
                raise ServingError("NOT_FOUND",
                                   f"Servable not found for request: Specific({self.name}, "
                                   f"{version}) (label {label})")
        if version is None:
            return self.versions[max(self.versions)]
        if int(version) not in self.versions:
            raise ServingError("NOT_FOUND",
                               f"Servable not found for request: Specific({self.name}, {version})")
        return self.versions[int(version)]


def read_model_config(path):
    """Parses TF Serving's ``models.config`` (a ModelServerConfig text proto).

    Returns a list of dicts: name, base_path, version_policy, labels. Relative
    base paths are resolved against the config file's folder.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    text = pathlib.Path(path).read_text()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ServingError("INVALID_ARGUMENT", f"{path}: {err}") from None
    out = []
    for mc in config.model_config_list.config:
        policy = mc.model_version_policy
        which = policy.WhichOneof("policy_choice")
        if which == "all":
            version_policy = ("all", None)
        elif which == "specific":
            version_policy = ("specific", list(policy.specific.versions))
        else:
            version_policy = ("latest", policy.latest.num_versions or 1)
        base = pathlib.Path(mc.base_path)
        if not base.is_absolute():
            base = pathlib.Path(path).parent / base
        out.append({"name": mc.name, "base_path": str(base), "version_policy": version_policy,
                    "labels": dict(mc.version_labels)})
    return out


# ---------------------------------------------------------------------------------- core


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
        self._http_thread = None
        self._grpc = None

    # ------------------------------------------------------------------ lookups

    def model(self, name, version=None, label=None):
        """The ModelVersion for a request, or ServingError NOT_FOUND / INVALID_ARGUMENT."""
        if name not in self.models:
            what = (f"Specific({name}, {version})" if version is not None else f"Latest({name})")
            raise ServingError("NOT_FOUND", f"Servable not found for request: {what}")
        return self.models[name].get(version, label)

    def status(self, name, version=None, label=None):
        """TF Serving's GetModelStatus as plain data (a list of version states)."""
        if name not in self.models:
            raise ServingError("NOT_FOUND",
                               f"Could not find any versions of model {name}")
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

        Returns (ModelVersion, {output: numpy array}).
        """
        mv = self.model(name, version, label)
        signature_name = signature_name or DEFAULT_SIGNATURE
        if signature_name not in mv.functions:
            raise ServingError("INVALID_ARGUMENT",
                               f"Serving signature name: \"{signature_name}\" not found in "
                               f"signature def (available: {sorted(mv.functions)})")
        specs = mv.specs[signature_name]
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise ServingError("INVALID_ARGUMENT",
                               f"signature \"{signature_name}\" takes inputs {sorted(specs)}; "
                               f"missing {missing}, unexpected {extra}")
        arrays = {key: self._check_input(signature_name, key, inputs[key], *specs[key])
                  for key in specs}
        return mv, mv.run(signature_name, arrays)

    def _check_input(self, signature_name, key, value, shape, dtype):
        where = f"input \"{key}\" of signature \"{signature_name}\""
        array = _as_array(value, dtype, where)
        if shape.rank is not None:
            if array.ndim != shape.rank:
                raise ServingError("INVALID_ARGUMENT",
                                   f"{where} must have rank {shape.rank} (shape "
                                   f"{_shape_str(shape)}), got shape {list(array.shape)}")
            for i, (want, got) in enumerate(zip(shape.as_list(), array.shape)):
                if want is not None and want != got:
                    raise ServingError("INVALID_ARGUMENT",
                                       f"{where} must have shape {_shape_str(shape)}, "
                                       f"got {list(array.shape)} (dimension {i})")
        if array.ndim >= 1 and array.shape[0] > self.max_batch_size:
            raise ServingError("INVALID_ARGUMENT",
                               f"{where}: batch size {array.shape[0]} is above this server's "
                               f"limit of {self.max_batch_size}")
        if array.ndim >= 1 and array.shape[0] == 0:
            raise ServingError("INVALID_ARGUMENT", f"{where} is empty")
        if key == "num_samples":
            values = array.reshape(-1)
            if values.size == 0 or values.min() <= 0 or values.max() > self.max_num_samples:
                raise ServingError("INVALID_ARGUMENT",
                                   f"num_samples must lie in [1, {self.max_num_samples}] "
                                   f"(this server's limit), got {values.tolist()}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise ServingError("INVALID_ARGUMENT", f"{where} holds NaN or infinite values")
        return array

    # ------------------------------------------------------------------ lifecycle

    def start(self, rest_port=DEFAULT_REST_PORT, grpc_port=DEFAULT_GRPC_PORT, host="127.0.0.1",
              grpc_workers=16):
        """Starts the REST and gRPC front ends in background threads; returns self.

        A port of 0 picks a free one; a negative port (or None) leaves that front end off.
        """
        self.host = host
        if rest_port is not None and rest_port >= 0:
            self._http = _RestServer((host, int(rest_port)), _RestHandler, self)
            self.rest_port = self._http.server_address[1]
            self._http_thread = threading.Thread(target=self._http.serve_forever,
                                                 name="kvae-rest", daemon=True)
            self._http_thread.start()
        if grpc_port is not None and grpc_port >= 0:
            self._grpc, self.grpc_port = _start_grpc(self, host, int(grpc_port), grpc_workers)
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
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape.as_list()) + "]"


def _as_array(value, dtype, where):
    """A JSON value (nested lists) or numpy array as an array of exactly `dtype`."""
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.array(value)
        except ValueError as err:
            raise ServingError("INVALID_ARGUMENT", f"{where} is not a rectangular array: "
                                                   f"{err}") from None
    if array.dtype == object:
        if array.size and all(isinstance(v, int) and not isinstance(v, bool)
                              for v in array.reshape(-1)):
            raise ServingError("INVALID_ARGUMENT",
                               f"{where} is out of range for {np.dtype(dtype).name}")
        raise ServingError("INVALID_ARGUMENT",
                           f"{where} is not a rectangular array of numbers (ragged or mixed)")
    kind = array.dtype.kind
    target = np.dtype(dtype)
    if target.kind in "iu":
        if kind == "f":
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise ServingError("INVALID_ARGUMENT",
                                   f"{where} must hold integers ({target.name}), got "
                                   f"non-integral numbers")
        elif kind not in "iu":
            raise ServingError("INVALID_ARGUMENT",
                               f"{where} must hold integers ({target.name}), got {array.dtype}")
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ServingError("INVALID_ARGUMENT",
                               f"{where} is out of range for {target.name}")
    elif target.kind == "f":
        if kind not in "iuf":
            raise ServingError("INVALID_ARGUMENT",
                               f"{where} must hold numbers ({target.name}), got {array.dtype}")
    elif target.kind == "b":
        if kind != "b":
            raise ServingError("INVALID_ARGUMENT", f"{where} must hold booleans")
    else:
        raise ServingError("UNIMPLEMENTED", f"{where}: dtype {target} is not supported here")
    return array.astype(target, copy=False)


# ---------------------------------------------------------------------------------- REST


class _RestServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024   # a burst of clients must queue, not get refused
    allow_reuse_address = True

    def __init__(self, address, handler, model_server):
        self.model_server = model_server
        super().__init__(address, handler)

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return                          # a client that hung up or idled out
        log.exception("error on a connection from %s", client_address)


_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:[A-Za-z]+)?/?$"
)


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, like TF Serving
    disable_nagle_algorithm = True      # headers and body go out in two writes
    timeout = 120                       # seconds an idle or slow connection may hold a thread
    server_version = "keras-vae-dev-server"

    def log_message(self, fmt, *args):  # quiet by default; -v shows requests
        log.debug("%s %s", self.address_string(), fmt % args)

    # --- plumbing
    def _send(self, status, payload):
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """Protocol-level errors (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"   # answer garbage with a status line too
        text = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"error": f"{text}{': ' + explain if explain else ''}"}).encode()
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _error(self, err):
        self._send(err.http_status, {"error": err.message})

    def _route(self, method):
        match = _PATH.match(self.path.split("?", 1)[0])
        if not match:
            raise ServingError("NOT_FOUND", f"Malformed request: {method} {self.path}")
        version = match["version"]
        if version is not None and not version.isdigit():
            raise ServingError("INVALID_ARGUMENT",
                               f"Malformed request: {method} {self.path} (version must be an "
                               "integer)")
        return match["name"], (int(version) if version else None), match["label"], match["rest"]

    def _guard(self, method, body):
        try:
            body()
        except ServingError as err:
            self._error(err)
        except ConnectionError:            # the client went away: nothing to answer
            self.close_connection = True
        except Exception as err:  # noqa: BLE001 - the server must keep serving
            log.exception("internal error on %s %s", method, self.path)
            self._error(ServingError("INTERNAL", f"{type(err).__name__}: {err}"))

    # --- GET: status and metadata
    def do_GET(self):  # noqa: N802
        self._guard("GET", self._get)

    def _get(self):
        server = self.server.model_server
        name, version, label, rest = self._route("GET")
        if rest is None:
            self._send(200, {"model_version_status": server.status(name, version, label)})
        elif rest == "/metadata":
            mv = server.model(name, version, label)
            self._send(200, metadata_json(mv))
        else:
            raise ServingError("NOT_FOUND", f"Malformed request: GET {self.path}")

    # --- POST: predict
    def do_POST(self):  # noqa: N802
        self._guard("POST", self._post)

    def _post(self):
        server = self.server.model_server
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True   # an unread body must not become the next request
            raise ServingError("INVALID_ARGUMENT", "a request body with Content-Length is needed")
        length = int(length)
        if length > server.max_body_bytes:
            self.close_connection = True
            raise ServingError("RESOURCE_EXHAUSTED",
                               f"request body of {length} bytes is above the limit of "
                               f"{server.max_body_bytes}")
        raw = self.rfile.read(length)
        name, version, label, rest = self._route("POST")
        if rest in (":classify", ":regress"):
            raise ServingError("UNIMPLEMENTED",
                               f"{rest[1:]} is not served by this model (use :predict)")
        if rest != ":predict":
            raise ServingError("NOT_FOUND", f"Malformed request: POST {self.path}")
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {err}") from None
        self._send(200, predict_json(server, name, version, label, request))

    def do_PUT(self):  # noqa: N802
        self._error(ServingError("NOT_FOUND", f"Malformed request: PUT {self.path}"))

    do_DELETE = do_PUT


def metadata_json(mv):
    """TF Serving's REST metadata body for one model version."""
    from google.protobuf import json_format
    from tensorflow_serving.apis import get_model_metadata_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in mv.signature_defs.items():
        sig_map.signature_def[key].CopyFrom(sig)
    return {
        "model_spec": {"name": mv.name, "signature_name": "", "version": str(mv.version)},
        "metadata": {"signature_def": json_format.MessageToDict(
            sig_map, preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True)},
    }


def predict_json(server, name, version, label, request):
    """Runs a REST predict body (row or column format); returns the response body."""
    if not isinstance(request, dict):
        raise ServingError("INVALID_ARGUMENT", "the request body must be a JSON object")
    unknown = set(request) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise ServingError("INVALID_ARGUMENT", f"unknown request keys {sorted(unknown)}")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise ServingError("INVALID_ARGUMENT", "signature_name must be a string")
    if ("instances" in request) == ("inputs" in request):
        raise ServingError("INVALID_ARGUMENT",
                           "Missing 'inputs' or 'instances' key" if "inputs" not in request
                           else "Not both 'inputs' and 'instances' may be given")
    mv = server.model(name, version, label)
    if signature_name not in mv.specs:
        raise ServingError("INVALID_ARGUMENT",
                           f"Serving signature name: \"{signature_name}\" not found in "
                           f"signature def (available: {sorted(mv.specs)})")
    input_names = sorted(mv.specs[signature_name])
    row = "instances" in request
    if row:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise ServingError("INVALID_ARGUMENT", "'instances' must be a non-empty list")
        if all(isinstance(item, dict) for item in instances):
            keys = set(instances[0])
            if any(set(item) != keys for item in instances):
                raise ServingError("INVALID_ARGUMENT",
                                   "every instance must name the same inputs")
            inputs = {k: [item[k] for item in instances] for k in keys}
        elif any(isinstance(item, dict) for item in instances):
            raise ServingError("INVALID_ARGUMENT", "instances mix named and unnamed values")
        elif len(input_names) == 1:
            inputs = {input_names[0]: instances}
        else:
            raise ServingError("INVALID_ARGUMENT",
                               f"signature \"{signature_name}\" has inputs {input_names}: "
                               "each instance must be an object naming them")
    else:
        columns = request["inputs"]
        if isinstance(columns, dict) and (len(input_names) != 1 or
                                          set(columns) <= set(input_names) and columns):
            inputs = columns
        elif len(input_names) == 1:
            inputs = {input_names[0]: columns}
        else:
            raise ServingError("INVALID_ARGUMENT",
                               f"signature \"{signature_name}\" has inputs {input_names}: "
                               "'inputs' must be an object naming them")
    _, outputs = server.predict(name, signature_name, inputs, version=mv.version)
    if row:
        sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise ServingError("INVALID_ARGUMENT",
                               f"outputs have different batch sizes {sizes}: use the column "
                               "format ('inputs') for this signature")
        if len(outputs) == 1:
            (only,) = outputs.values()
            return {"predictions": to_json_value(only)}
        batch = next(iter(sizes.values()))
        columns = {k: to_json_value(v) for k, v in outputs.items()}
        return {"predictions": [{k: columns[k][i] for k in columns} for i in range(batch)]}
    if len(outputs) == 1:
        (only,) = outputs.values()
        return {"outputs": to_json_value(only)}
    return {"outputs": {k: to_json_value(v) for k, v in outputs.items()}}


# ---------------------------------------------------------------------------------- gRPC


def _start_grpc(model_server, host, port, workers):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    grpc_server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                              thread_name_prefix="kvae-grpc"),
        options=[("grpc.max_receive_message_length", model_server.max_body_bytes),
                 ("grpc.max_send_message_length", 256 * 1024 * 1024),
                 ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(model_server), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        _ModelService(model_server), grpc_server)
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind gRPC to {host}:{port}")
    grpc_server.start()
    return grpc_server, bound


def _spec_args(spec):
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label or None
    return spec.name, version, label


def _abort(context, err):
    import grpc

    context.abort(getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN), err.message)


def _grpc_guard(method):
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as err:
            _abort(context, err)
        except Exception as err:  # noqa: BLE001 - the server must keep serving
            log.exception("internal error in gRPC %s", method.__name__)
            _abort(context, ServingError("INTERNAL", f"{type(err).__name__}: {err}"))
    wrapper.__name__ = method.__name__
    return wrapper


class _PredictionService:
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

    def __init__(self, model_server):
        self.server = model_server

    @_grpc_guard
    def Predict(self, request, context):  # noqa: N802
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        name, version, label = _spec_args(request.model_spec)
        inputs = {}
        for key, proto in request.inputs.items():
            try:
                inputs[key] = tf.make_ndarray(proto)
            except Exception as err:  # noqa: BLE001
                raise ServingError("INVALID_ARGUMENT",
                                   f"input \"{key}\" is not a valid TensorProto: {err}") from None
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        mv, outputs = self.server.predict(name, signature_name, inputs, version, label)
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            raise ServingError("INVALID_ARGUMENT",
                               f"output_filter names unknown outputs {unknown} "
                               f"(available: {sorted(outputs)})")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = mv.name
        response.model_spec.version.value = mv.version
        response.model_spec.signature_name = signature_name
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    @_grpc_guard
    def GetModelMetadata(self, request, context):  # noqa: N802
        from tensorflow_serving.apis import get_model_metadata_pb2

        fields = list(request.metadata_field)
        if not fields:
            raise ServingError("INVALID_ARGUMENT",
                               "GetModelMetadataRequest must specify at least one metadata_field")
        for field in fields:
            if field != "signature_def":
                raise ServingError("INVALID_ARGUMENT",
                                   f"Metadata field {field} is not supported")
        mv = self.server.model(*_spec_args(request.model_spec))
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in mv.signature_defs.items():
            sig_map.signature_def[key].CopyFrom(sig)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = mv.name
        response.model_spec.version.value = mv.version
        response.metadata["signature_def"].Pack(sig_map)
        return response

    @_grpc_guard
    def Classify(self, request, context):  # noqa: N802
        raise ServingError("UNIMPLEMENTED", "Classify is not served by this model (use Predict)")

    Regress = Classify
    MultiInference = Classify


class _ModelService:
    """tensorflow.serving.ModelService: GetModelStatus."""

    def __init__(self, model_server):
        self.server = model_server

    @_grpc_guard
    def GetModelStatus(self, request, context):  # noqa: N802
        from tensorflow_serving.apis import get_model_status_pb2

        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in self.server.status(*_spec_args(request.model_spec)):
            status = response.model_version_status.add()
            status.version = int(entry["version"])
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            status.status.error_code = 0
        return response

    @_grpc_guard
    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        raise ServingError("UNIMPLEMENTED",
                           "the development server does not reload its config; restart it")


# ---------------------------------------------------------------------------------- CLI


def build_parser(parser=None):
    """The `serve` command's flags, named as tensorflow_model_server names them."""
    parser = parser or argparse.ArgumentParser(
        prog="keras-vae serve",
        description="Development server speaking TF Serving's REST and gRPC APIs for an "
                    "exported keras-vae SavedModel. Production is TF Serving: see "
                    "keras_vae/serving/tf_serving/.")
    parser.add_argument("path", nargs="?", default=None,
                        help="export folder, TF Serving base path or numbered SavedModel "
                             "(same as --model_base_path)")
    parser.add_argument("--model_base_path", default=None,
                        help="folder of numbered SavedModel versions (e.g. out/savedmodel/vae)")
    parser.add_argument("--model_name", default="vae", help="model name in URLs (default vae)")
    parser.add_argument("--model_config_file", default=None,
                        help="TF Serving models.config (text proto) instead of a base path")
    parser.add_argument("--port", type=int, default=DEFAULT_GRPC_PORT,
                        help="gRPC port (default 8500; -1 turns gRPC off)")
    parser.add_argument("--rest_api_port", type=int, default=DEFAULT_REST_PORT,
                        help="REST port (default 8501; -1 turns REST off)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--max_num_samples", type=int, default=DEFAULT_MAX_NUM_SAMPLES,
                        help="largest num_samples a request may ask for (default 1024)")
    parser.add_argument("--max_batch_size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                        help="largest batch an input may have (default 4096)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def serve(model_base_path=None, model_name="vae", *, model_config_file=None,
          rest_port=DEFAULT_REST_PORT, grpc_port=DEFAULT_GRPC_PORT, host="127.0.0.1",
          max_num_samples=DEFAULT_MAX_NUM_SAMPLES, max_batch_size=DEFAULT_MAX_BATCH_SIZE,
          block=True):
    """Starts the development server; blocks until Ctrl-C unless block=False.

    Returns the started `ModelServer` (call `.stop()` when block=False).
    """
    server = ModelServer(model_base_path=model_base_path, model_name=model_name,
                         model_config_file=model_config_file, max_num_samples=max_num_samples,
                         max_batch_size=max_batch_size)
    server.start(rest_port=rest_port, grpc_port=grpc_port, host=host)
    print(f"keras-vae development server (production is TF Serving): "
          f"REST http://{host}:{server.rest_port}/v1/models/"
          f"{','.join(server.models)}  gRPC {host}:{server.grpc_port}", flush=True)
    if block:
        try:
            server.wait()
        finally:
            server.stop()
    return server


def main(argv=None):
    """Entry point of `keras-vae serve` and `python -m keras_vae.serving serve`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    base = args.model_base_path or args.path
    if base is None and args.model_config_file is None:
        build_parser().error("give an export folder, --model_base_path or --model_config_file")
    try:
        serve(base, args.model_name, model_config_file=args.model_config_file,
              rest_port=args.rest_api_port, grpc_port=args.port, host=args.host,
              max_num_samples=args.max_num_samples, max_batch_size=args.max_batch_size)
    except ServingError as err:
        raise SystemExit(f"keras-vae serve: {err.message}") from None
    return 0
