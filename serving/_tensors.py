"""Shared pieces of TF Serving's wire formats: dtypes, JSON values, signature summaries.

Nothing here imports TensorFlow, so the REST client stays light (numpy only).
"""

import numpy as np

#: TensorFlow dtype names (as TF Serving's metadata spells them) -> numpy dtypes.
DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_HALF": np.float16,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_,
    "DT_STRING": np.object_,
}

#: gRPC / TF Serving status codes -> HTTP status codes (TF Serving's own mapping).
HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}


def signature_summary(signature_def_json):
    """Reduces one signature of TF Serving's metadata JSON to plain Python.

    `{"inputs": {name: {"dtype": "DT_FLOAT", "shape": [-1, 16]}}, "outputs": {...},
    "method_name": ...}`; an unknown rank gives `"shape": None`.
    """

    def tensors(section):
        out = {}
        for name, info in (section or {}).items():
            shape_proto = info.get("tensor_shape", {})
            if shape_proto.get("unknown_rank"):
                shape = None
            else:
                shape = [int(dim.get("size", -1)) for dim in shape_proto.get("dim", [])]
            out[name] = {"dtype": info.get("dtype", "DT_INVALID"), "shape": shape,
                         "name": info.get("name", "")}
        return out

    return {
        "inputs": tensors(signature_def_json.get("inputs")),
        "outputs": tensors(signature_def_json.get("outputs")),
        "method_name": signature_def_json.get("method_name", ""),
    }


def is_row_compatible(summary):
    """Whether a signature can take TF Serving's row format ("instances").

    Row format stacks instances along a shared leading batch dimension, so every
    input must have rank >= 1 with a free (or matching) first dimension. Scalar
    inputs (e.g. num_samples, temperature) need the column format ("inputs").
    """
    inputs = summary["inputs"]
    if not inputs:
        return False
    for info in inputs.values():
        shape = info["shape"]
        if shape is None or len(shape) == 0 or shape[0] not in (-1, None):
            return False
    return True


def to_json_value(array):
    """A numpy array as nested lists of JSON-ready Python scalars (float32 exact)."""
    array = np.asarray(array)
    if array.dtype.kind == "b":
        return array.tolist()
    if array.dtype.kind in "iu":
        return array.astype(np.int64).tolist()
    if array.dtype.kind == "f":
        return array.astype(np.float64).tolist()
    if array.dtype.kind in "OSU":
        return np.vectorize(
            lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v),
            otypes=[object],
        )(array).tolist()
    raise TypeError(f"cannot write dtype {array.dtype} as JSON")
