r"""The training step's random draws: standard normals and uniforms, cheap under XLA too.

Outside XLA these are TensorFlow's stateless draws as before (the same numbers as
`keras.random.normal` and as `tf.random.stateless_uniform` with TF's choice of
generator). Under XLA (`jit_compile=True`, the default on CPU and GPU) they come from
ThreeFry-2x32-20, and normals by the inverse CDF instead of Box-Muller:

```none
                    outside XLA                          under XLA
uniform(shape, s)   stateless_uniform(s, auto_select)    u = stateless_uniform(s, ThreeFry)
standard_normal     stateless_normal(s, Philox)          x = (2 j + 1) / 2^23 - 1,  j ~ U{0..2^23-1}
                                                         eps = sqrt(2) erfinv(x) = Phi^{-1}((x + 1) / 2)
```

Why: XLA's CPU kernels for Philox use 64-bit multiplies that do not vectorise, and
its Box-Muller takes a log, a sqrt, a sine and a cosine per pair. For the 50,000
normals of an IWAE k = 50 step (batch 20, 50 latent units), XLA on this 2-core CPU
took 790 us with Philox + Box-Muller, 560 us with ThreeFry + Box-Muller, and 180 us
with ThreeFry + erfinv; for the 100,352 uniforms of a batch of 128 MNIST images,
1,430 us with TF's automatic choice, 670 us with Philox, 220 us with ThreeFry
(`python bench/draws.py`). The fused k = 50 training step went from 8.8 to 8.3 ms.

The grid x = (2 j + 1) / 2^23 - 1 is symmetric and has no endpoint, so eps is
finite and |eps| <= Phi^{-1}(1 - 2^-24) = 5.29 (Box-Muller with TF's clamp stops
at 5.68); XLA's float32 erfinv (Giles, 2010) is within 2.2e-5 (absolute, the worst
at |eps| = 3.76) of the float64 inverse CDF at every one of the 2^23 points
(`tests/test_noise.py`).

The two paths draw different numbers from the same seed (a Keras `SeedGenerator`'s
draws already differed between XLA and a plain graph); each is a pure function of
the seed, so a run and its resume agree.

References:
  Salmon, J. K., Moraes, M. A., Dror, R. O., Shaw, D. E. (2011). Parallel random
  numbers: as easy as 1, 2, 3. SC '11 (Philox, ThreeFry).
  Giles, M. (2010). Approximating the erfinv function. GPU Computing Gems, Jade Edition.
"""

import math

from keras.src.random.seed_generator import draw_seed

from keras_vae._backend import in_xla_compilation, tf

_SQRT2 = math.sqrt(2.0)
_HALF_STEP = 2.0 ** -23  # half the spacing of a float32 uniform's 2^23 values on [-1, 1)


def _int32_seed(seed):
    """The stateless seed of `seed` as XLA's stateless ops want it: int32 [2]."""
    seed = seed if tf.is_tensor(seed) else draw_seed(seed)
    if seed.dtype != tf.int32:  # as keras does
        seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), "int32")
    return seed


def standard_normal(shape, seed=None, dtype="float32"):
    r"""eps ~ N(0, I) of `shape`, a pure function of the seed.

    ```none
    outside XLA   eps = stateless_normal(shape, draw_seed(seed), Philox-4x32-10)   (= keras.random.normal)
    under XLA     eps = sqrt(2) erfinv((2 j + 1) / 2^23 - 1),  j ~ U{0, ..., 2^23 - 1} by ThreeFry
    ```

    Args:
      shape: the output shape (a list or a 1-D int tensor).
      seed: an int, a `keras.random.SeedGenerator` (advanced by one) or None
        (Keras's global generator), as in `keras.random.normal`; or a stateless
        seed, an int32 or int64 tensor [2].
      dtype: the output dtype (under XLA the draw is float32, then cast).

    Returns:
      A tensor of standard-normal draws.

    Example:

    ```python
    eps = noise.standard_normal((5, 20, 50), seed=keras.random.SeedGenerator(0))
    z = loc + scale * eps
    ```
    """
    seed = _int32_seed(seed)
    if not in_xla_compilation():
        return tf.random.stateless_normal(shape, seed=seed, dtype=dtype, alg="philox")
    x = tf.random.stateless_uniform(shape, seed=seed, minval=-1.0 + _HALF_STEP,
                                    maxval=1.0 + _HALF_STEP, dtype="float32", alg="threefry")
    eps = tf.constant(_SQRT2, "float32") * tf.math.erfinv(x)
    return eps if tf.as_dtype(dtype) == tf.float32 else tf.cast(eps, dtype)


def uniform(shape, seed, dtype="float32"):
    """u ~ U[0, 1) of `shape` from a stateless seed (int32 or int64 [2]).

    Outside XLA: `tf.random.stateless_uniform(shape, seed)` (TF's choice of generator);
    under XLA: the same call with ThreeFry.
    """
    alg = "threefry" if in_xla_compilation() else "auto_select"  # auto_select: TF's default
    return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype, alg=alg)


__all__ = ["standard_normal", "uniform"]
