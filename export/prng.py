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
runtime (TF, TFLite, onnxruntime, onnxruntime-web).

Export contract 2 draws per row (`row_uniform`, `row_noise`): row i of a batch
is a function of its own seed only, so rows batch and reproduce one by one:

```none
key_i      = ((seed_i mod p) * KEY_MULTIPLIER) mod p
u[i, j]    = (P_{key_i}(j) + 1/2) / p,   j = 0, 1, ...
eps[i, k]  = sqrt(-2 log u[i, k]) cos(2 pi u[i, d + k]),   k < d
c_i        = inverse CDF of u[i, 2d] over the mixture weights (mixture priors)
pixels[i]  = u[i, 2d + 1 : 2d + 1 + P] reshaped [*event, k]  (likelihoods that draw pixels)
```

The older scalar-seed functions (`counter_uniform`, `counter_normal`; seeds taken
modulo p, the draws of n rows the first n of any larger request) are kept for
readers of contract 1.
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
#: Spreads consecutive seeds over the key space (contract 2's per-row key).
KEY_MULTIPLIER = 1583458089


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


def row_keys(seed):
    """The per-row keys [N, 1] (int64) of seeds [N]: ((seed mod p) * KEY_MULTIPLIER) mod p."""
    seed = tf.math.floormod(tf.cast(seed, "int64"), PRIME)
    return tf.math.floormod(seed * KEY_MULTIPLIER, PRIME)[:, None]


def row_uniform(seed, count):
    """u [N, count] float32 in (0, 1): u[i, j] = (P_{key_i}(j) + 1/2) / p.

    Args:
      seed: int64 [N], one seed per row.
      count: a Python int, the draws per row.

    Returns:
      A float32 tensor [N, count]; row i depends on seed_i only.
    """
    keys = row_keys(seed)
    x = tf.constant(np.arange(count, dtype="int64")[None, :])
    for constant, multiplier in ROUNDS:
        x = tf.math.floormod(x + (keys + constant), PRIME)
        x2 = tf.math.floormod(x * x, PRIME)
        x4 = tf.math.floormod(x2 * x2, PRIME)
        x = tf.math.floormod(x4 * x, PRIME)
        x = tf.math.floormod(x * multiplier, PRIME)
    return (tf.cast(x, "float32") + 0.5) / float(PRIME)


def box_muller(u1, u2):
    """Standard normals sqrt(-2 log u1) cos(2 pi u2) from two uniforms in (0, 1]."""
    return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos((2.0 * np.pi) * u2)


def row_noise(seed, latent_dim, pixels=0, component=False):
    """(eps [N, d], component uniform [N] or None, pixel uniforms [N, P] or None) of seeds [N].

    The columns of `row_uniform` are laid out as in the module's table, the same
    for every model with this d: 0..d-1 and d..2d-1 feed Box-Muller, 2d the
    mixture component, 2d+1.. the pixels.
    """
    d = int(latent_dim)
    count = 2 * d + (1 + int(pixels) if (pixels or component) else 0)
    u = row_uniform(seed, count)
    eps = box_muller(u[:, :d], u[:, d:2 * d])
    return (eps, u[:, 2 * d] if component else None,
            u[:, 2 * d + 1:] if pixels else None)


def numpy_row_uniform(seed, count):
    """`row_uniform` in numpy (int64 arithmetic, float32 rounding as in the graphs): a reference."""
    seed = np.mod(np.asarray(seed, "int64"), PRIME)
    keys = np.mod(seed * KEY_MULTIPLIER, PRIME)[:, None]
    x = np.arange(count, dtype="int64")[None, :]
    for constant, multiplier in ROUNDS:
        x = np.mod(x + keys + constant, PRIME)
        x = np.mod(np.mod(np.mod(x * x, PRIME) ** 2, PRIME) * x, PRIME)
        x = np.mod(x * multiplier, PRIME)
    return ((x.astype("float32") + np.float32(0.5)) / np.float32(PRIME)).astype("float32")


def numpy_row_noise(seed, latent_dim, pixels=0, component=False):
    """`row_noise` in numpy (float64 Box-Muller on the float32 uniforms): a reference."""
    d = int(latent_dim)
    count = 2 * d + (1 + int(pixels) if (pixels or component) else 0)
    u = numpy_row_uniform(seed, count).astype("float64")
    eps = np.sqrt(-2.0 * np.log(u[:, :d])) * np.cos(2.0 * np.pi * u[:, d:2 * d])
    return (eps, u[:, 2 * d] if component else None, u[:, 2 * d + 1:] if pixels else None)


__all__ = ["PRIME", "ROUNDS", "STREAM_STRIDE", "KEY_MULTIPLIER", "counter_uniform",
           "counter_normal", "row_keys", "row_uniform", "box_muller", "row_noise",
           "numpy_row_uniform", "numpy_row_noise"]
