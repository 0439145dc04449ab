"""gRPC TensorProtos checked before a tensor is built from them.

A TensorProto claims a shape and carries its values either packed (``tensor_content``)
or in the repeated field of its dtype (``float_val``, ``int64_val``, ...). A 43-byte
proto may claim shape [16777216, 16]; building it first and checking after would
allocate 1 GB. Here the claim is checked against the limits and against the values
actually carried, and only then is the array made:

```none
rank <= 8, no unknown rank, every dimension >= 0
leading dimension <= max_batch_size; prod(shape) <= max_input_elements
tensor_content:  len == prod(shape) * itemsize
repeated field:  len == prod(shape)
dtype:           a number or bool (strings are refused: no signature here takes them)
```
"""

import math

import numpy as np

from keras_vae.serving.errors import ServingError

__all__ = ["proto_to_array", "MAX_RANK"]

MAX_RANK = 8

# TensorFlow's DataType enum values (tensorflow/core/framework/types.proto) -> (numpy
# dtype, the repeated field holding the values, that field's numpy dtype).
_DTYPES = {
    1: (np.float32, "float_val", np.float32),
    2: (np.float64, "double_val", np.float64),
    3: (np.int32, "int_val", np.int32),
    4: (np.uint8, "int_val", np.int32),
    5: (np.int16, "int_val", np.int32),
    6: (np.int8, "int_val", np.int32),
    9: (np.int64, "int64_val", np.int64),
    10: (np.bool_, "bool_val", np.bool_),
    17: (np.uint16, "int_val", np.int32),
    19: (np.float16, "half_val", np.int32),
    22: (np.uint32, "uint32_val", np.uint32),
    23: (np.uint64, "uint64_val", np.uint64),
}


def _invalid(message):
    return ServingError(message, "INVALID_ARGUMENT")


def _claimed_shape(proto, where, limits):
    if proto.tensor_shape.unknown_rank:
        raise _invalid(f"{where}: a TensorProto of unknown rank is not accepted")
    shape = [int(d.size) for d in proto.tensor_shape.dim]
    if len(shape) > MAX_RANK:
        raise _invalid(f"{where}: rank {len(shape)} is above {MAX_RANK}")
    if any(size < 0 for size in shape):
        raise _invalid(f"{where}: the TensorProto claims a negative dimension {shape}")
    if shape and shape[0] > limits.max_batch_size:
        raise _invalid(f"{where}: batch size {shape[0]} is above this server's limit of "
                       f"{limits.max_batch_size}")
    count = math.prod(shape)
    if count > limits.max_input_elements:
        raise _invalid(f"{where}: the TensorProto claims shape {shape} ({count} values), "
                       f"above this server's limit of {limits.max_input_elements} values")
    return shape, count


def proto_to_array(proto, where, limits):
    """The numpy array of a TensorProto, after checking its claim (see the module).

    Args:
      proto: a ``tensorflow.TensorProto``.
      where: names the input in messages (``input "z"``).
      limits: the server's `keras_vae.serving.devserver.limits.Limits`.

    Returns:
      A numpy array of the proto's dtype and shape.

    Raises:
      ServingError: INVALID_ARGUMENT naming what disagrees.
    """
    if proto.dtype not in _DTYPES:
        raise _invalid(f"{where}: TensorProto dtype {proto.dtype} is not accepted (the "
                       "signatures here take numbers)")
    dtype, field, field_dtype = _DTYPES[proto.dtype]
    shape, count = _claimed_shape(proto, where, limits)
    if proto.tensor_content:
        want = count * np.dtype(dtype).itemsize
        if len(proto.tensor_content) != want:
            raise _invalid(f"{where}: the TensorProto claims shape {shape} ({want} bytes of "
                           f"{np.dtype(dtype).name}) but its tensor_content has "
                           f"{len(proto.tensor_content)} bytes")
        return np.frombuffer(proto.tensor_content, dtype=np.dtype(dtype).newbyteorder("<")
                             ).astype(dtype).reshape(shape)
    values = getattr(proto, field)
    if len(values) != count:
        raise _invalid(f"{where}: the TensorProto claims shape {shape} ({count} values) but "
                       f"holds {len(values)} in {field}")
    array = np.array(values, dtype=field_dtype)
    if dtype is np.float16:
        array = array.astype(np.uint16).view(np.float16)
    elif field_dtype is not dtype:
        info = np.iinfo(dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise _invalid(f"{where}: values out of range for {np.dtype(dtype).name}")
        array = array.astype(dtype)
    return array.reshape(shape)
