"""The one error family of keras_vae.serving, raised by the development server and the clients.

A request the server refuses carries a gRPC status code name (``code``, as TF Serving
spells it: ``INVALID_ARGUMENT``, ``NOT_FOUND``, ...) and the HTTP status TF Serving's REST
API answers it with (``http_status``, from `keras_vae.serving.wire.HTTP_STATUS`). A REST
client sees only the HTTP status and the body; a gRPC client sees only the code.
"""

__all__ = ["ServingError", "ServingConnectionError", "PayloadTooLargeError", "error_for"]


class ServingError(Exception):
    """A serving request was refused or failed.

    Args:
      message: what went wrong (TF Serving's ``{"error": message}``).
      code: the gRPC status code name (``"INVALID_ARGUMENT"``), when known.
      http_status: the HTTP status code; by default TF Serving's status for `code`.
      body: the raw response body (REST clients), if any.

    Attributes:
      status: the status as the transport spells it: `code` when known (the server,
        gRPC clients), else `http_status` (REST clients).
    """

    def __init__(self, message, code=None, http_status=None, body=None):
        self.message = message
        self.code = code
        self._http_status = http_status
        self.body = body
        status = self.status
        super().__init__(f"[{status}] {message}" if status is not None else message)

    @property
    def http_status(self):
        """The HTTP status: the one given, else TF Serving's for `code` (500 if unknown)."""
        if self._http_status is not None or self.code is None:
            return self._http_status
        from keras_vae.serving.wire import HTTP_STATUS

        return HTTP_STATUS.get(self.code, 500)

    @property
    def status(self):
        return self.code if self.code is not None else self._http_status


class ServingConnectionError(ServingError):
    """The server could not be reached (after all retries) or did not answer in time."""


class PayloadTooLargeError(ServingError):
    """A request body, or the answer it asks for, is above the server's size limit.

    The development server answers it with HTTP 413 (REST) or ``RESOURCE_EXHAUSTED``
    (gRPC) and a message that starts ``request too large`` or ``response too large``;
    gRPC's own message-size refusal ("Received message larger than max") maps here too.
    Send a smaller body, or ask for fewer rows (or fewer outputs: gRPC's output_filter).
    """

    def __init__(self, message, code="RESOURCE_EXHAUSTED", http_status=413, body=None):
        super().__init__(message, code=code,
                         http_status=413 if http_status is None else http_status, body=body)


_TOO_LARGE_WORDS = ("request too large", "response too large", "larger than max")


def error_for(message, code=None, http_status=None, body=None):
    """The `ServingError` (sub)class for a server's refusal, as a client sees it.

    Args:
      message, code, http_status, body: as for `ServingError`.

    Returns:
      A `PayloadTooLargeError` for HTTP 413 or a size-limit ``RESOURCE_EXHAUSTED``,
      else a `ServingError`.
    """
    text = (message or "").lower()
    if http_status == 413 or (code == "RESOURCE_EXHAUSTED"
                              and any(w in text for w in _TOO_LARGE_WORDS)):
        return PayloadTooLargeError(message, code=code, http_status=http_status, body=body)
    return ServingError(message, code=code, http_status=http_status, body=body)
