"""The HTTP server class of the development server's REST front end and the sampler page."""

import logging
import sys
from http.server import ThreadingHTTPServer

__all__ = ["QuietHTTPServer"]

log = logging.getLogger("keras_vae.serving")


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that keeps quiet about clients that hang up or idle out.

    Any other error on a connection is logged (with its traceback) on the
    ``keras_vae.serving`` logger; the server keeps serving.
    """

    daemon_threads = True
    request_queue_size = 1024   # a burst of clients must queue, not get refused
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        log.exception("error on a connection from %s", client_address)
