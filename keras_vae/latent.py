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


def check_steps(steps):
    """Raises ValueError unless a path has at least its two end points.

    Args:
      steps: the number of points on the path.

    Raises:
      ValueError: if `steps` < 2.
    """
    if int(steps) < 2:
        raise ValueError(f"steps must be >= 2, got {steps!r}.")


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


__all__ = ["check_steps", "lerp", "slerp"]
