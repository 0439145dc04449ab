"""The development server's REST front end: TF Serving's ``/v1/models`` paths over HTTP/1.1.

```none
GET  /v1/models/NAME[/versions/N]                          model status
GET  /v1/models/NAME[/versions/N|/labels/L]/metadata       signatures
POST /v1/models/NAME[/versions/N|/labels/L]:predict        row or column format (wire.py)
errors: 4xx/5xx {"error": "..."}
```
"""

import json
import logging
import re
from http.server import BaseHTTPRequestHandler

from keras_vae.serving import _http
from keras_vae.serving.devserver.core import DEFAULT_SIGNATURE
from keras_vae.serving.devserver.limits import JSON_BYTES_PER_VALUE, check_json_depth
from keras_vae.serving.errors import PayloadTooLargeError, ServingError
from keras_vae.serving.wire import REQUEST_KEYS, is_row_request, request_inputs, response_body

__all__ = ["make_server", "metadata_json", "predict_json", "METRICS_PATH"]

log = logging.getLogger("keras_vae.serving")

#: Where --monitoring serves Prometheus metrics (TF Serving's path on the REST port).
METRICS_PATH = "/monitoring/prometheus/metrics"
_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:[A-Za-z]+)?/?$"
)


def make_server(model_server, host, port):
    """The REST front end of `model_server` on (host, port), not started."""
    http = _http.QuietHTTPServer((host, port), _RestHandler)
    http.max_connections = model_server.limits.rest_api_num_threads
    http.model_server = model_server
    return http


def metadata_json(mv):
    """TF Serving's REST metadata body for one model version."""
    from google.protobuf import json_format

    return {
        "model_spec": {"name": mv.name, "signature_name": "", "version": str(mv.version)},
        "metadata": {"signature_def": json_format.MessageToDict(
            mv.signature_defs, preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True)},
    }


def predict_json(server, name, version, label, request):
    """Runs a REST predict body (row or column format); returns the response body.

    Raises:
      ServingError: for a malformed body, an unknown model or signature, bad inputs;
        PayloadTooLargeError when the answer would be above the response limit.
    """
    if not isinstance(request, dict):
        raise ServingError("the request body must be a JSON object", "INVALID_ARGUMENT")
    unknown = set(request) - set(REQUEST_KEYS)
    if unknown:
        raise ServingError(f"unknown request keys {sorted(unknown)[:10]}", "INVALID_ARGUMENT")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise ServingError("signature_name must be a string", "INVALID_ARGUMENT")
    is_row_request(request)            # the body's form first, then the model
    mv = server.model(name, version, label)
    inputs, row = request_inputs(request, signature_name, sorted(mv.signature(signature_name)))
    _, outputs = server.run(mv, signature_name, inputs, bytes_per_value=JSON_BYTES_PER_VALUE)
    return response_body(outputs, row)


def encode_answer(payload, limit):
    """A JSON answer as bytes, refused when above `limit` (a check after the estimate)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    if len(body) > limit:
        raise PayloadTooLargeError(f"response too large: {len(body)} bytes, above this "
                                   f"server's limit of {limit} bytes; ask for fewer rows")
    return body


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, like TF Serving
    disable_nagle_algorithm = True      # headers and body go out in two writes
    timeout = 5                         # seconds an idle keep-alive connection holds a slot
    server_version = "keras-vae-dev-server"

    def log_message(self, fmt, *args):  # quiet by default; -v shows requests
        log.debug("%s %s", self.address_string(), fmt % args)

    def parse_request(self):
        if not self.raw_requestline.strip():
            self.command, self.request_version, self.requestline = None, "HTTP/1.0", ""
            self.send_error(400, "Bad request: an empty request line")
            return False
        return super().parse_request()

    def finish(self):
        if getattr(self, "_unread_body", False):
            _http.lingering_close(self)
        super().finish()

    # --- plumbing
    def _head(self, status, body, reason=None, close=False, content_type="application/json"):
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close or self.close_connection:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        metrics = self.server.model_server.metrics
        if metrics is not None:
            metrics.count_rest(self.command, status)

    def send_error(self, code, message=None, explain=None):
        """Protocol-level errors (bad request line, unsupported method) as JSON, and 4xx.

        http.server's 501 (unknown method) becomes 405 and its 505 (HTTP version) 400:
        both are the client's mistake, not the server's failure.
        """
        code = {501: 405, 505: 400}.get(code, code)
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"   # answer garbage with a status line too
        if not hasattr(self, "command"):
            self.command = None
        text = message or self.responses.get(code, ("error",))[0]
        body = json.dumps({"error": f"{text}{': ' + explain if explain else ''}"}).encode()
        reason = (message or "").encode("latin-1", "replace").decode("latin-1")
        self._head(code, body, reason=reason.splitlines()[0] if reason else None, close=True)
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _answer(self, status, payload):
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._head(status, body)
        self.wfile.write(body)

    def _answer_bytes(self, body, content_type="application/json"):
        self._head(200, body, content_type=content_type)
        self.wfile.write(body)

    def _error(self, err):
        self._answer(err.http_status or 500, {"error": err.message})

    def _route(self, method):
        match = _PATH.match(self.path.split("?", 1)[0])
        if not match:
            raise ServingError(f"Malformed request: {method} {self.path[:200]}", "NOT_FOUND")
        version = match["version"]
        if version is not None and not (version.isascii() and version.isdigit()
                                        and len(version) < 19):
            raise ServingError(f"Malformed request: {method} {self.path[:200]} (version must "
                               "be an integer)", "INVALID_ARGUMENT")
        return match["name"], (int(version) if version else None), match["label"], match["rest"]

    def _guard(self, method, body):
        try:
            body()
        except ServingError as err:
            self._error(err)
        except (ConnectionError, TimeoutError):   # the client went away: nothing to answer
            self.close_connection = True
        except Exception as err:  # noqa: BLE001 - the server must keep serving
            log.exception("internal error on %s %s", method, self.path[:200])
            self._error(ServingError(f"{type(err).__name__}: {err}", "INTERNAL"))

    # --- GET: status and metadata
    def do_GET(self):  # noqa: N802
        self._guard("GET", self._get)

    def _get(self):
        _http.discard_body(self)        # a body on a GET is read and dropped, never parsed
        server = self.server.model_server
        if self.path.split("?", 1)[0] == METRICS_PATH and server.metrics is not None:
            self._answer_bytes(server.metrics.prometheus_text(self.server).encode(),
                               "text/plain; version=0.0.4")
            return
        name, version, label, rest = self._route("GET")
        if rest is None:
            self._answer(200, {"model_version_status": server.status(name, version, label)})
        elif rest == "/metadata":
            self._answer(200, metadata_json(server.model(name, version, label)))
        else:
            raise ServingError(f"Malformed request: GET {self.path[:200]}", "NOT_FOUND")

    # --- POST: predict
    def do_POST(self):  # noqa: N802
        self._guard("POST", self._post)

    def _read_body(self):
        limits = self.server.model_server.limits
        try:
            length = _http.content_length(self.headers)
            if length is None:
                raise ServingError("a request body with Content-Length is needed",
                                   "INVALID_ARGUMENT", http_status=411)
            return _http.read_body(self.rfile, self.connection, length,
                                   limits.max_request_bytes, limits.request_timeout_s)
        except ServingError:
            self.close_connection = True   # an unread body must not become the next request
            self._unread_body = True
            raise

    def _post(self):
        raw = self._read_body()
        name, version, label, rest = self._route("POST")
        if rest in (":classify", ":regress"):
            raise ServingError(f"{rest[1:]} is not served by this model: its signatures "
                               "are predict signatures (use :predict)", "INVALID_ARGUMENT")
        if rest != ":predict":
            raise ServingError(f"Malformed request: POST {self.path[:200]}", "NOT_FOUND")
        server = self.server.model_server
        check_json_depth(raw, server.limits.max_json_depth)
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise ServingError(f"JSON Parse error: {str(err)[:200]}",
                               "INVALID_ARGUMENT") from None
        del raw
        with server.answer_slot():
            payload = predict_json(server, name, version, label, request)
            del request
            body = encode_answer(payload, server.limits.max_response_bytes)
            del payload
            self._answer_bytes(body)

    def _refuse_method(self):
        _http.discard_body(self)        # a body is read and dropped, never parsed
        raise ServingError(f"Malformed request: {self.command} {self.path[:200]}", "NOT_FOUND")

    def do_PUT(self):  # noqa: N802
        self._guard(self.command, self._refuse_method)

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT
