"""HTTP plumbing shared by the development server's REST front end and the sampler page.

```none
QuietHTTPServer    a thread per connection, at most `max_connections` at once: the next
                   one waits up to `slot_wait_s` for a free slot, then is answered 503
                   (JSON) and closed, in the accepting thread
content_length     the Content-Length header: ASCII digits only, one value, else 400
read_body          the body within a size limit and a deadline (slow bodies: 408)
discard_body       reads and drops a body a method does not take (no request desync)
```

A connection whose framing cannot be trusted (bad or missing length, a body too large
or too slow, Transfer-Encoding) is closed after its answer, never read on: the bytes
that follow are not parsed as a second request.
"""

import json
import logging
import re
import socket
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from keras_vae.serving.errors import PayloadTooLargeError, ServingError

__all__ = ["QuietHTTPServer", "content_length", "read_body", "discard_body", "lingering_close",
           "DEFAULT_MAX_CONNECTIONS", "MAX_DISCARD_BYTES"]

log = logging.getLogger("keras_vae.serving")

DEFAULT_MAX_CONNECTIONS = 64
#: The largest body a request that takes none may carry and still keep its connection.
MAX_DISCARD_BYTES = 64 * 1024
_DIGITS = re.compile(r"[0-9]{1,15}")
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server with a connection cap that keeps quiet about hang-ups.

    Any other error on a connection is logged (with its traceback) on the
    ``keras_vae.serving`` logger; the server keeps serving. Set `max_connections` on
    the instance (or the class) to change the cap.
    """

    daemon_threads = True
    request_queue_size = 1024   # a burst of clients must queue, not get refused
    allow_reuse_address = True
    max_connections = DEFAULT_MAX_CONNECTIONS

    #: Seconds a new connection waits for a free slot before its 503.
    slot_wait_s = 10.0

    def __init__(self, *args, **kwargs):
        self._active = 0
        self._active_lock = threading.Condition()
        super().__init__(*args, **kwargs)

    @property
    def active_connections(self):
        """The connections being served now."""
        return self._active

    def process_request(self, request, client_address):
        with self._active_lock:
            free = self._active_lock.wait_for(lambda: self._active < self.max_connections,
                                              timeout=self.slot_wait_s)
            if free:
                self._active += 1
        if not free:
            self._refuse(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1
                self._active_lock.notify()

    def _refuse(self, request):
        body = json.dumps({"error": f"the server is busy ({self.max_connections} "
                                    "connections open); retry later"}).encode()
        try:
            request.settimeout(1.0)
            request.sendall(_BUSY % (len(body), body))
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        log.exception("error on a connection from %s", client_address)


def content_length(headers):
    """The request's Content-Length, or None when it has none.

    Raises:
      ServingError: INVALID_ARGUMENT (400) for anything but one run of ASCII digits,
        for several differing values, and for a Transfer-Encoding (not supported).
    """
    if headers.get("Transfer-Encoding") is not None:
        raise ServingError("Transfer-Encoding is not supported; send a Content-Length",
                           "INVALID_ARGUMENT")
    values = headers.get_all("Content-Length") or []
    if not values:
        return None
    stripped = {v.strip() for v in values}
    if len(stripped) != 1:
        raise ServingError(f"conflicting Content-Length headers {sorted(stripped)}",
                           "INVALID_ARGUMENT")
    (value,) = stripped
    if not _DIGITS.fullmatch(value):
        raise ServingError(f"Content-Length must be a non-negative decimal integer, got "
                           f"{value[:40]!r}", "INVALID_ARGUMENT")
    return int(value)


def read_body(rfile, connection, length, limit, deadline_s):
    """Reads exactly `length` bytes of body, at most `limit`, within `deadline_s` seconds.

    Args:
      rfile: the handler's buffered reader.
      connection: its socket (its timeout is set to what is left of the deadline).
      length: the Content-Length.
      limit: the largest body accepted.
      deadline_s: seconds for the whole body.

    Returns:
      The body (bytes).

    Raises:
      PayloadTooLargeError: the body is above `limit` (nothing is read).
      ServingError: DEADLINE_EXCEEDED (HTTP 408) when the body does not arrive in time,
        CANCELLED when the client hangs up.
    """
    if length > limit:
        raise PayloadTooLargeError(f"request too large: a body of {length} bytes is above "
                                   f"this server's limit of {limit} bytes")
    end = time.monotonic() + deadline_s
    chunks, got = [], 0
    previous = connection.gettimeout()
    try:
        while got < length:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            connection.settimeout(min(left, 5.0))
            chunk = rfile.read1(min(length - got, 1 << 20))
            if not chunk:
                raise ServingError(f"the client closed the connection after {got} of "
                                   f"{length} body bytes", "CANCELLED")
            chunks.append(chunk)
            got += len(chunk)
    except (socket.timeout, TimeoutError):
        raise ServingError(f"the request body did not arrive within {deadline_s:g} s "
                           f"({got} of {length} bytes)", "DEADLINE_EXCEEDED",
                           http_status=408) from None
    finally:
        connection.settimeout(previous)
    return b"".join(chunks)


def lingering_close(handler, drain_bytes=MAX_DISCARD_BYTES * 16, drain_s=1.0):
    """Half-closes a connection whose body was left unread, then drains a little of it.

    Closing a socket with unread input sends a TCP reset, which can destroy the answer
    before the client reads it; this sends the answer's end first (FIN), then reads and
    drops up to `drain_bytes` for at most `drain_s` seconds.
    """
    sock = handler.connection
    try:
        handler.wfile.flush()
        sock.shutdown(socket.SHUT_WR)
        end = time.monotonic() + drain_s
        got = 0
        while got < drain_bytes and time.monotonic() < end:
            sock.settimeout(max(end - time.monotonic(), 0.01))
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
    except OSError:
        pass


def discard_body(handler, limit=MAX_DISCARD_BYTES, deadline_s=5.0):
    """Reads and drops the body of a request that takes none; closes when it cannot.

    A body larger than `limit`, a bad length or one that does not arrive in time
    closes the connection after the answer instead.
    """
    try:
        length = content_length(handler.headers)
        if length:
            read_body(handler.rfile, handler.connection, length, limit, deadline_s)
    except ServingError:
        handler.close_connection = True
        handler._unread_body = True
