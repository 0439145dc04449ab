r"""A counter-based random number generator of TFLite builtin ops: the exported `sample`'s noise.

TF's stateless random ops would need TFLite's Flex delegate. This generator is
integer arithmetic modulo the prime p = 2^31 - 1 (a keyed MiMC-style
permutation: x -> x^5 is a bijection mod p) and the Box-Muller transform, all
TFLite builtins, so the same `seed` gives the same draws in TF Serving,
`tf.saved_model.load` and TFLite (up to float rounding in log/cos, ~1e-6):

```none
key      = (seed + 7919 stream) mod p
bits[i]  = P_key(i),   P_key = 6 rounds of x -> m_r ((x + key + c_r) mod p)^5 mod p
u[i]     = (bits[i] + 1/2) / p                          in (0, 1]
eps      = sqrt(-2 log u1) cos(2 pi u2)                 (streams 1 and 2), N(0, 1)
```

Every intermediate product stays below 2^62, so it is exact in int64 on any
runtime. Seeds are taken modulo p; the draws of n rows are the first n of any
larger request.
"""

import numpy as np

from keras_vae._backend import tf

#: The prime modulus of the counter-based generator (2^31 - 1).
PRIME = 2147483647
#: (round constant c_r, multiplier m_r) pairs of the 6-round keyed permutation.
ROUNDS = (
    (1013904223, 1664525),
    (22695477, 134775813),
    (1103515245, 12345),
    (214013, 2531011),
    (69069, 48271),
    (2147483587, 16807),
)
#: The key offset between streams.
STREAM_STRIDE = 7919


def _permute(x, key):
    """The keyed permutation P_key of int64 values in [0, p)."""
    for constant, multiplier in ROUNDS:
        x = tf.math.floormod(x + key + constant, PRIME)
        x2 = tf.math.floormod(x * x, PRIME)
        x4 = tf.math.floormod(x2 * x2, PRIME)
        x = tf.math.floormod(x4 * x, PRIME)
        x = tf.math.floormod(x * multiplier, PRIME)
    return x


def counter_uniform(count, seed, stream=0):
    """`count` uniforms in (0, 1] (float32): a pure function of (seed, stream, index).

    Args:
      count: the number of draws (a scalar tensor or int).
      seed: an int64 scalar (taken modulo p).
      stream: an int selecting an independent stream for the same seed.

    Returns:
      A float32 tensor [count].
    """
    key = tf.math.floormod(tf.cast(seed, "int64") + stream * STREAM_STRIDE, PRIME)
    index = tf.range(tf.cast(count, "int64"), dtype="int64")
    bits = _permute(index, key)
    return (tf.cast(bits, "float32") + 0.5) / float(PRIME)


def counter_normal(shape, seed):
    """Standard normal draws of `shape` [n, d] by Box-Muller from `counter_uniform`.

    Args:
      shape: an int64 tensor [2].
      seed: an int64 scalar.

    Returns:
      A float32 tensor of `shape`; rows 0..n-1 do not depend on n.
    """
    count = tf.reduce_prod(shape)
    u1 = counter_uniform(count, seed, stream=1)
    u2 = counter_uniform(count, seed, stream=2)
    eps = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos((2.0 * np.pi) * u2)
    return tf.reshape(eps, shape)


__all__ = ["PRIME", "ROUNDS", "STREAM_STRIDE", "counter_uniform", "counter_normal"]
