r"""TF Serving's warmup file: `assets.extra/tf_serving_warmup_requests` in a SavedModel version.

A TFRecord file of `tensorflow.serving.PredictionLog` records, one PredictRequest per
signature, which the server replays when it loads the version (model warmup is on by
default), so the first real request does not pay graph initialisation. The export
extras do not include tensorflow-serving-api, so the wrapper messages are encoded
here by hand (protobuf wire format) around TF's own TensorProto:

```none
PredictionLog   { predict_log = 6: PredictLog }
PredictLog      { request = 1: PredictRequest }
PredictRequest  { model_spec = 1: ModelSpec, inputs = 2: map<string, TensorProto> }
ModelSpec       { name = 1: string, signature_name = 3: string }
map entry       { key = 1: string, value = 2: TensorProto }
wire            tag = field << 3 | type; type 0 varint, 2 length-delimited
```

`read` decodes the same records back (it needs only TensorFlow, and is loaded by
path in the fresh-process check, outside keras_vae). At most MAX_RECORDS records
(TF Serving's limit is 1,000).
"""

import pathlib

#: The file's place inside a SavedModel version folder.
WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
#: TF Serving reads at most 1,000 warmup records.
MAX_RECORDS = 1000
_VARINT, _BYTES = 0, 2
_PREDICT_LOG, _REQUEST, _MODEL_SPEC, _INPUTS, _NAME, _SIGNATURE = 6, 1, 1, 2, 1, 3


def path_in(version_dir):
    """VERSION/assets.extra/tf_serving_warmup_requests."""
    return pathlib.Path(version_dir) / WARMUP_DIR / WARMUP_FILE


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _varint(number << 3 | _BYTES) + _varint(len(payload)) + payload


def encode_request(model_name, signature_name, inputs):
    """One serialised PredictionLog holding PredictRequest(model, signature, {name: array})."""
    import tensorflow as tf

    spec = _field(_NAME, model_name) + _field(_SIGNATURE, signature_name)
    request = _field(_MODEL_SPEC, spec)
    for key in sorted(inputs):
        tensor = tf.make_tensor_proto(inputs[key]).SerializeToString()
        request += _field(_INPUTS, _field(1, key) + _field(2, tensor))
    return _field(_PREDICT_LOG, _field(_REQUEST, request))


def write(version_dir, model_name, requests):
    """Writes the warmup file: `requests` [(signature, {input: array})]; returns its path."""
    import tensorflow as tf

    if not 0 < len(requests) <= MAX_RECORDS:
        raise ValueError(f"A warmup file holds 1 to {MAX_RECORDS} requests, got {len(requests)}.")
    path = path_in(version_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in requests:
            writer.write(encode_request(model_name, signature, inputs))
    return path


def _fields(data):
    """[(field number, value)] of one message: ints for varints, bytes for the rest."""
    fields, i = [], 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, kind = key >> 3, key & 7
        if kind == _VARINT:
            value, i = _read_varint(data, i)
        elif kind == _BYTES:
            size, i = _read_varint(data, i)
            value, i = data[i:i + size], i + size
            if i > len(data):
                raise ValueError("a length-delimited field runs past the end of the record")
        else:
            raise ValueError(f"wire type {kind} of field {number} is not used by these messages")
        fields.append((number, value))
    return fields


def _read_varint(data, i):
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("a varint runs past the end of the record")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not byte & 0x80:
            return value, i


def decode_request(record):
    """(model name, signature name, {input: numpy array}) of one serialised PredictionLog."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2

    logs = [v for n, v in _fields(record) if n == _PREDICT_LOG]
    if len(logs) != 1:
        raise ValueError("the record is not a PredictionLog with one predict_log")
    (request,) = [v for n, v in _fields(logs[0]) if n == _REQUEST]
    name = signature = ""
    inputs = {}
    for number, value in _fields(request):
        if number == _MODEL_SPEC:
            spec = dict(_fields(value))
            name = spec.get(_NAME, b"").decode()
            signature = spec.get(_SIGNATURE, b"").decode()
        elif number == _INPUTS:
            entry = dict(_fields(value))
            tensor = tensor_pb2.TensorProto()
            tensor.ParseFromString(entry[2])
            inputs[entry[1].decode()] = tf.make_ndarray(tensor)
    return name, signature, inputs


def read(path):
    """[(model name, signature name, {input: array})] of every record of a warmup file."""
    import tensorflow as tf

    records = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    if not 0 < len(records) <= MAX_RECORDS:
        raise ValueError(f"{path}: {len(records)} records (TF Serving reads 1 to {MAX_RECORDS}).")
    return [decode_request(record) for record in records]


__all__ = ["WARMUP_DIR", "WARMUP_FILE", "MAX_RECORDS", "path_in", "encode_request", "write",
           "decode_request", "read"]
