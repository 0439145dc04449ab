"""The development server's limits: rows, sizes, JSON depth, time, connections.

```none
rows           rows(inputs) <= max_num_samples     rows = the leading dimension of the inputs,
                                                   or the value of a scalar num_samples
                                                   (export folders before contract 2)
batch          every leading dimension <= max_batch_size
request        REST body <= max_request_bytes (413); gRPC message <= max_request_bytes
response       estimate(rows, outputs) <= max_response_bytes, checked BEFORE running:
                 REST  24 bytes per value (the longest JSON number our floats print as)
                 gRPC  the dtype's size per value
JSON           nesting depth <= max_json_depth (400, no RecursionError)
elements       any input <= max_input_elements values (checked before a tensor is built)
time           a REST body must arrive within request_timeout_s (408)
connections    REST: rest_api_num_threads at once (then 503); gRPC: grpc_max_threads workers,
               and at most 4x that many RPCs in flight (then RESOURCE_EXHAUSTED)
```
"""

import dataclasses
import re

import numpy as np

from keras_vae.serving.errors import PayloadTooLargeError, ServingError

__all__ = ["Limits", "check_json_depth", "json_depth_upper_bound", "estimate_response_bytes",
           "check_response_size", "JSON_BYTES_PER_VALUE"]

#: The most bytes one number takes in our JSON answers ("-1.1754943508222875e-38,").
JSON_BYTES_PER_VALUE = 24
_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the development server (see the module's table).

    Attributes:
      max_num_samples: rows per request, any signature.
      max_batch_size: the largest leading dimension of any input.
      max_request_bytes: the largest REST body / gRPC message.
      max_response_bytes: the largest answer (estimated before the model runs).
      max_json_depth: the deepest JSON nesting a REST body may have.
      max_input_elements: the most values one input tensor may hold.
      request_timeout_s: seconds a REST body may take to arrive.
      rest_api_num_threads: REST connections served at once.
      grpc_max_threads: gRPC worker threads.
    """

    max_num_samples: int = 1024
    max_batch_size: int = 4096
    max_request_bytes: int = 16 * 1024 * 1024
    max_response_bytes: int = 64 * 1024 * 1024
    max_json_depth: int = 32
    max_input_elements: int = 4 * 1024 * 1024
    request_timeout_s: float = 30.0
    rest_api_num_threads: int = 32
    grpc_max_threads: int = 16

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"limit {field.name} must be a positive number, got {value!r}")


def json_depth_upper_bound(raw):
    """The bracket depth of `raw` counting brackets inside strings too (fast, numpy)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    steps = ((data == ord("[")) | (data == ord("{"))).astype(np.int8) - \
        ((data == ord("]")) | (data == ord("}"))).astype(np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def _exact_depth(raw, stop):
    depth = best = 0
    for match in _BRACKETS.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            best = max(best, depth)
            if best > stop:
                break
        elif token in (b"]", b"}"):
            depth -= 1
    return best


def check_json_depth(raw, limit):
    """Refuses a JSON body nested deeper than `limit` before it is parsed.

    Raises:
      ServingError: INVALID_ARGUMENT naming the limit.
    """
    if json_depth_upper_bound(raw) <= limit:
        return
    depth = _exact_depth(raw, limit)
    if depth > limit:
        raise ServingError(f"JSON Parse error: the body is nested more than {limit} levels "
                           "deep (this server's limit)", "INVALID_ARGUMENT")


def estimate_response_bytes(output_specs, rows, bytes_per_value=None):
    """An upper bound on the answer's size for `rows` rows.

    Args:
      output_specs: {output: (shape list with -1 for the batch, numpy dtype)}.
      rows: the rows the request asks for.
      bytes_per_value: the bytes one value takes (None: the dtype's size, as in gRPC).

    Returns:
      Bytes (an int).
    """
    total = 0
    for shape, dtype in output_specs.values():
        values = rows
        for size in (shape or [])[1:]:
            values *= max(int(size), 1)
        total += values * (bytes_per_value or np.dtype(dtype).itemsize)
    return int(total)


def check_response_size(output_specs, rows, limit, bytes_per_value=None, signature=""):
    """Refuses, before the model runs, a request whose answer would be above `limit`.

    Raises:
      PayloadTooLargeError: naming the estimate, the rows and the limit.
    """
    estimate = estimate_response_bytes(output_specs, rows, bytes_per_value)
    if estimate > limit:
        per_row = estimate // max(rows, 1)
        raise PayloadTooLargeError(
            f"response too large: signature \"{signature}\" would answer about {estimate} "
            f"bytes for {rows} rows, above this server's limit of {limit} bytes; ask for at "
            f"most {max(limit // max(per_row, 1), 1)} rows per request")
