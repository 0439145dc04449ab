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

from keras_vae.serving._http import QuietHTTPServer
from keras_vae.serving.devserver.core import DEFAULT_SIGNATURE
from keras_vae.serving.errors import ServingError
from keras_vae.serving.wire import REQUEST_KEYS, is_row_request, request_inputs, response_body

__all__ = ["make_server", "metadata_json", "predict_json"]

log = logging.getLogger("keras_vae.serving")

_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<rest>/metadata|:[A-Za-z]+)?/?$"
)


def make_server(model_server, host, port):
    """The REST front end of `model_server` on (host, port), not started."""
    http = QuietHTTPServer((host, port), _RestHandler)
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
      ServingError: for a malformed body, an unknown model or signature, bad inputs.
    """
    if not isinstance(request, dict):
        raise ServingError("the request body must be a JSON object", "INVALID_ARGUMENT")
    unknown = set(request) - set(REQUEST_KEYS)
    if unknown:
        raise ServingError(f"unknown request keys {sorted(unknown)}", "INVALID_ARGUMENT")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise ServingError("signature_name must be a string", "INVALID_ARGUMENT")
    is_row_request(request)            # the body's form first, then the model
    mv = server.model(name, version, label)
    inputs, row = request_inputs(request, signature_name, sorted(mv.signature(signature_name)))
    _, outputs = server.run(mv, signature_name, inputs)
    return response_body(outputs, row)


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive, like TF Serving
    disable_nagle_algorithm = True      # headers and body go out in two writes
    timeout = 120                       # seconds an idle or slow connection may hold a thread
    server_version = "keras-vae-dev-server"

    def log_message(self, fmt, *args):  # quiet by default; -v shows requests
        log.debug("%s %s", self.address_string(), fmt % args)

    # --- plumbing
    def _send(self, status, payload, reason=None, close=False):
        """Sends the headers of a JSON answer; returns its body (not yet written)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        return body

    def send_error(self, code, message=None, explain=None):
        """Protocol-level errors (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"   # answer garbage with a status line too
        text = message or self.responses.get(code, ("error",))[0]
        body = self._send(code, {"error": f"{text}{': ' + explain if explain else ''}"},
                          reason=message, close=True)
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def _answer(self, status, payload):
        self.wfile.write(self._send(status, payload))

    def _error(self, err):
        self._answer(err.http_status, {"error": err.message})

    def _route(self, method):
        match = _PATH.match(self.path.split("?", 1)[0])
        if not match:
            raise ServingError(f"Malformed request: {method} {self.path}", "NOT_FOUND")
        version = match["version"]
        if version is not None and not version.isdigit():
            raise ServingError(f"Malformed request: {method} {self.path} (version must be an "
                               "integer)", "INVALID_ARGUMENT")
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
            self._error(ServingError(f"{type(err).__name__}: {err}", "INTERNAL"))

    # --- GET: status and metadata
    def do_GET(self):  # noqa: N802
        self._guard("GET", self._get)

    def _get(self):
        server = self.server.model_server
        name, version, label, rest = self._route("GET")
        if rest is None:
            self._answer(200, {"model_version_status": server.status(name, version, label)})
        elif rest == "/metadata":
            self._answer(200, metadata_json(server.model(name, version, label)))
        else:
            raise ServingError(f"Malformed request: GET {self.path}", "NOT_FOUND")

    # --- POST: predict
    def do_POST(self):  # noqa: N802
        self._guard("POST", self._post)

    def _read_body(self):
        limit = self.server.model_server.max_body_bytes
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True   # an unread body must not become the next request
            raise ServingError("a request body with Content-Length is needed",
                               "INVALID_ARGUMENT")
        if int(length) > limit:
            self.close_connection = True
            raise ServingError(f"request body of {int(length)} bytes is above the limit of "
                               f"{limit}", "RESOURCE_EXHAUSTED")
        return self.rfile.read(int(length))

    def _post(self):
        raw = self._read_body()
        name, version, label, rest = self._route("POST")
        if rest in (":classify", ":regress"):
            raise ServingError(f"{rest[1:]} is not served by this model (use :predict)",
                               "UNIMPLEMENTED")
        if rest != ":predict":
            raise ServingError(f"Malformed request: POST {self.path}", "NOT_FOUND")
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise ServingError(f"JSON Parse error: {err}", "INVALID_ARGUMENT") from None
        self._answer(200, predict_json(self.server.model_server, name, version, label, request))

    def do_PUT(self):  # noqa: N802
        self._error(ServingError(f"Malformed request: PUT {self.path}", "NOT_FOUND"))

    do_DELETE = do_PUT
