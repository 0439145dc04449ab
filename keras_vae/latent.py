r"""Paths in latent space: straight lines and great-circle arcs between two codes.

```none
lerp(z_a, z_b, t)  = (1 - t) z_a + t z_b
slerp(z_a, z_b, t) = [sin((1 - t) omega) z_a + sin(t omega) z_b] / sin omega,
                     cos omega = <z_a, z_b> / (|z_a| |z_b|)
```

slerp keeps the norm typical of a Gaussian prior's draws (White, 2016) and falls
back to lerp where the angle is ~0.

References:
  T. White. Sampling Generative Networks. arXiv:1609.04468, 2016.
"""

from keras_vae._backend import tf


METHODS = ("linear", "slerp")


def check_path(steps, method="linear"):
    """Raises ValueError unless a path has its two end points and a known method.

    Args:
      steps: the number of points on the path.
      method: 'linear' or 'slerp'.

    Raises:
      ValueError: if `steps` < 2 or the method is unknown.
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'linear' or 'slerp', got {method!r}.")
    if int(steps) < 2:
        raise ValueError(f"steps must be >= 2, got {steps!r}.")


def path(z_a, z_b, steps, method="linear"):
    """`steps` evenly spaced points from z_a to z_b [..., d]: [..., steps, d] (float32).

    Args:
      z_a, z_b: the end points.
      steps: the number of points, >= 2.
      method: 'linear' (lerp) or 'slerp'.

    Returns:
      The path.

    Raises:
      ValueError: as `check_path`.
    """
    check_path(steps, method)
    t = tf.reshape(tf.linspace(0.0, 1.0, int(steps)), [-1, 1])
    return (slerp if method == "slerp" else lerp)(z_a[..., None, :], z_b[..., None, :], t)


def lerp(z_a, z_b, t):
    """(1 - t) z_a + t z_b.

    Args:
      z_a, z_b: the end points (tensors or arrays that broadcast with `t`).
      t: the positions on the path, in [0, 1].

    Returns:
      The points of the straight line at `t`.
    """
    return (1.0 - t) * z_a + t * z_b


def slerp(z_a, z_b, t, eps=1e-7):
    """Spherical interpolation along the last axis; lerp where the angle is ~0.

    Args:
      z_a, z_b: the end points [..., d].
      t: the positions on the path, in [0, 1], broadcasting with z_a[..., :1].
      eps: the floor on |z_a| |z_b|.

    Returns:
      The points of the arc at `t`.
    """
    dot = tf.reduce_sum(z_a * z_b, -1, keepdims=True)
    norms = tf.norm(z_a, axis=-1, keepdims=True) * tf.norm(z_b, axis=-1, keepdims=True)
    omega = tf.acos(tf.clip_by_value(dot / tf.maximum(norms, eps), -1.0, 1.0))
    sin = tf.sin(omega)
    safe = sin > 1e-4
    sin = tf.where(safe, sin, 1.0)
    spherical = (tf.sin((1.0 - t) * omega) * z_a + tf.sin(t * omega) * z_b) / sin
    return tf.where(safe, spherical, lerp(z_a, z_b, t))


__all__ = ["METHODS", "check_path", "path", "lerp", "slerp"]
