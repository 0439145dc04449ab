"""TF Serving's wire format, for the development server and the clients alike.

Dtype names, the status-code to HTTP-status table, signature summaries of the metadata
JSON, and the REST predict body's two formats:

```none
row    {"signature_name": S, "instances": [{"z": [...]}, ...]}  -> {"predictions": [...]}
       (every input has a shared leading batch dimension; one unnamed input may be given
        bare: "instances": [[...], ...]; one output comes back bare, several as objects)
column {"signature_name": S, "inputs": {"num_samples": 4, ...}} -> {"outputs": {...}}
       (any inputs, scalars included; one input or output may be given bare)
```
"""

import numpy as np

from keras_vae.export import contract
from keras_vae.serving.errors import ServingError

__all__ = ["DTYPES", "HTTP_STATUS", "REQUEST_KEYS", "signature_summary", "is_row_compatible",
           "to_json_value", "as_array", "is_row_request", "request_inputs", "response_body",
           "row_request", "column_request", "response_outputs", "condition_inputs"]

#: The keys a REST predict body may hold.
REQUEST_KEYS = ("signature_name", "instances", "inputs")

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



# ------------------------------------------------------------------- server side: parse, answer


def is_row_request(request):
    """Whether a REST predict body is in the row format ("instances") or the column one.

    Raises:
      ServingError: INVALID_ARGUMENT when it holds neither or both.
    """
    if ("instances" in request) == ("inputs" in request):
        raise _invalid("Missing 'inputs' or 'instances' key" if "inputs" not in request
                       else "Not both 'inputs' and 'instances' may be given")
    return "instances" in request


def request_inputs(request, signature_name, input_names):
    """The inputs of a REST predict body, {name: JSON value}, and whether it was the row format.

    Args:
      request: the decoded body; it holds "instances" (row) or "inputs" (column), not both.
      signature_name: the signature asked for (named in errors).
      input_names: its input names, sorted.

    Returns:
      (inputs, row).

    Raises:
      ServingError: INVALID_ARGUMENT naming what is malformed.
    """
    if is_row_request(request):
        return _row_inputs(request["instances"], signature_name, input_names), True
    return _column_inputs(request["inputs"], signature_name, input_names), False


def _row_inputs(instances, signature_name, input_names):
    if not isinstance(instances, list) or not instances:
        raise ServingError("'instances' must be a non-empty list", "INVALID_ARGUMENT")
    if all(isinstance(item, dict) for item in instances):
        keys = set(instances[0])
        if any(set(item) != keys for item in instances):
            raise ServingError("every instance must name the same inputs", "INVALID_ARGUMENT")
        return {k: [item[k] for item in instances] for k in keys}
    if any(isinstance(item, dict) for item in instances):
        raise ServingError("instances mix named and unnamed values", "INVALID_ARGUMENT")
    if len(input_names) == 1:
        return {input_names[0]: instances}
    raise ServingError(f"signature \"{signature_name}\" has inputs {input_names}: each "
                       "instance must be an object naming them", "INVALID_ARGUMENT")


def _column_inputs(columns, signature_name, input_names):
    if isinstance(columns, dict) and (len(input_names) != 1 or
                                      set(columns) <= set(input_names) and columns):
        return columns
    if len(input_names) == 1:
        return {input_names[0]: columns}
    raise ServingError(f"signature \"{signature_name}\" has inputs {input_names}: 'inputs' "
                       "must be an object naming them", "INVALID_ARGUMENT")


def response_body(outputs, row):
    """The REST predict answer for {name: numpy array}, in the request's format.

    Raises:
      ServingError: INVALID_ARGUMENT when the row format cannot hold the outputs
        (different batch sizes or scalars).
    """
    if not row:
        if len(outputs) == 1:
            (only,) = outputs.values()
            return {"outputs": to_json_value(only)}
        return {"outputs": {k: to_json_value(v) for k, v in outputs.items()}}
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ServingError(f"outputs have different batch sizes {sizes}: use the column "
                           "format ('inputs') for this signature", "INVALID_ARGUMENT")
    if len(outputs) == 1:
        (only,) = outputs.values()
        return {"predictions": to_json_value(only)}
    batch = next(iter(sizes.values()))
    columns = {k: to_json_value(v) for k, v in outputs.items()}
    return {"predictions": [{k: columns[k][i] for k in columns} for i in range(batch)]}


def as_array(value, dtype, where):
    """A JSON value (nested lists) or numpy array as an array of exactly `dtype`.

    Raises:
      ServingError: INVALID_ARGUMENT when the value is ragged, of the wrong kind or out
        of the dtype's range (`where` names the input in the message).
    """
    if isinstance(value, np.ndarray):
        array = value
    else:
        try:
            array = np.array(value)
        except ValueError as err:
            raise _invalid(f"{where} is not a rectangular array: {err}") from None
    if array.dtype == object:
        if array.size and all(isinstance(v, int) and not isinstance(v, bool)
                              for v in array.reshape(-1)):
            raise _invalid(f"{where} is out of range for {np.dtype(dtype).name}")
        raise _invalid(f"{where} is not a rectangular array of numbers (ragged or mixed)")
    kind = array.dtype.kind
    target = np.dtype(dtype)
    if target.kind in "iu":
        if kind == "f":
            if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                raise _invalid(f"{where} must hold integers ({target.name}), got "
                               "non-integral numbers")
        elif kind not in "iu":
            raise _invalid(f"{where} must hold integers ({target.name}), got {array.dtype}")
        info = np.iinfo(target)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise _invalid(f"{where} is out of range for {target.name}")
    elif target.kind == "f":
        if kind not in "iuf":
            raise _invalid(f"{where} must hold numbers ({target.name}), got {array.dtype}")
    elif target.kind == "b":
        if kind != "b":
            raise _invalid(f"{where} must hold booleans")
    else:
        raise ServingError(f"{where}: dtype {target} is not supported here", "UNIMPLEMENTED")
    return array.astype(target, copy=False)


def _invalid(message):
    return ServingError(message, "INVALID_ARGUMENT")


# ------------------------------------------------------------------- client side: ask, read


def row_request(signature_name, arrays):
    """The row-format body for {name: numpy array} sharing a leading batch dimension."""
    sizes = {a.shape[0] for a in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(f"row format needs one batch size, got {sorted(sizes)}")
    (batch,) = sizes
    columns = {k: v.tolist() for k, v in arrays.items()}
    return {"signature_name": signature_name,
            "instances": [{k: columns[k][i] for k in columns} for i in range(batch)]}


def column_request(signature_name, arrays):
    """The column-format body for {name: numpy array} (scalars allowed)."""
    return {"signature_name": signature_name,
            "inputs": {k: v.tolist() for k, v in arrays.items()}}


def response_outputs(payload, output_names):
    """{name: numpy array} from a predict answer in either format.

    `output_names` (the signature's) names a bare single output.
    """
    if "predictions" in payload:
        predictions = payload["predictions"]
        if predictions and isinstance(predictions[0], dict):
            return {k: np.asarray([p[k] for p in predictions]) for k in predictions[0]}
        values = predictions
    else:
        values = payload["outputs"]
        if isinstance(values, dict):
            return {k: np.asarray(v) for k, v in values.items()}
    (name,) = output_names
    return {name: np.asarray(values)}


def condition_inputs(summary, signature_name, labels, n):
    """{condition input: array [n]} for a conditional signature (`summary`), else {}.

    Integer labels (one, repeated, or one per row) are checked to be integers >= 0
    here; the SavedModel's graph checks the upper bound (INVALID_ARGUMENT naming it).

    Raises:
      ValueError: labels for an unconditional signature, none for a conditional one,
        non-integer or negative labels, or not one per row.
    """
    extra = [k for k in (contract.LABEL, contract.CONDITION) if k in summary["inputs"]]
    if not extra:
        if labels is not None:
            raise ValueError(f"signature {signature_name!r} takes no labels: the model is "
                             "not conditional")
        return {}
    if labels is None:
        raise ValueError(f"signature {signature_name!r} is conditional: give labels=")
    array = np.asarray(labels)
    if extra[0] == contract.LABEL:
        if array.ndim == 0:
            array = np.full(n, array)
        if array.dtype.kind not in "iu" or np.any(array < 0):
            raise ValueError(f"labels must be integer classes >= 0, got {array[:8].tolist()}")
    elif array.ndim == 1:
        array = np.broadcast_to(array, (n,) + array.shape)
    if len(array) != n:
        raise ValueError(f"give one label per row: {n} rows, {len(array)} labels")
    return {extra[0]: array}
