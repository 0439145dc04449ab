r"""TFP distributions whose `log_prob` is written in its cheapest closed form.

Each class subclasses the TFP distribution it replaces and overrides only
`_log_prob`, with the same expression rearranged to cost fewer operations; every
other method (sampling, mean, KL registrations, which TFP looks up through the
class hierarchy) is the parent's. `tests/test_densities.py` checks each against
its TFP parent in float64, extreme parameters included.

```none
Bernoulli(logits l)   TFP:  (1 - x) * (-softplus(l)) + x * (-softplus(-l))      two softplus
                      here: x * l - softplus(l)                                  one softplus
                      (the same: -softplus(-l) = l - softplus(l))
Normal(loc, scale)    TFP:  -0.5 * (x / s - loc / s)^2 - 0.5 log(2 pi) - log s   two divisions
                      here: -0.5 * ((x - loc) / s)^2 - 0.5 log(2 pi) - log s     one division
```

`FlatIndependent` is `tfd.Independent` over such an elementwise base whose
`log_prob` sums over the event flattened to one axis:

```none
log p(x) = sum_i log p_i(x_i),   x [..., 28, 28, 1] -> [..., 784], one reduction over axis -1
```

the same sum, without the rank-5 broadcasts and the three-axis reduction that
TFP's `Independent` builds for k draws of a batch of images (an IWAE k = 50 step,
batch 20, spent ~4 ms more in them than in this layout, XLA or not;
`bench/step_ideal.py`).

The training step's cost on the seed MLP and the IWAE net is measured in
`bench/` (part `tfp`); the Bernoulli term over k * B * 784 pixels is where the
difference shows (IWAE k = 50).

Example:

```python
from keras_vae import densities
p = densities.Bernoulli(logits=logits, dtype="float32")   # a tfd.Bernoulli
log_p = p.log_prob(x)                                     # x * l - softplus(l)
```

References:
  TensorFlow Probability, `tfp.distributions.Bernoulli`, `tfp.distributions.Normal`.
"""

import math

from keras_vae._backend import tf, tfd
from keras_vae.noise import standard_normal  # noqa: F401  (its old home; public)

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Bernoulli(tfd.Bernoulli):
    """`tfd.Bernoulli` whose log-density is x * l - softplus(l) (one softplus per event).

    Built from logits only (probs go to the TFP parent's formula unchanged).
    """

    def _log_prob(self, event):
        if self._logits is None:
            return super()._log_prob(event)
        logits = tf.convert_to_tensor(self._logits)
        event = tf.cast(event, logits.dtype)
        return event * logits - tf.math.softplus(logits)


class Normal(tfd.Normal):
    """`tfd.Normal` whose log-density divides once: -((x - loc) / scale)^2 / 2 - log(scale) - c."""

    def _log_prob(self, x):
        scale = tf.convert_to_tensor(self.scale)
        z = (x - self.loc) / scale
        return -0.5 * tf.square(z) - (tf.constant(_HALF_LOG_2PI, dtype=self.dtype)
                                      + tf.math.log(scale))


class FlatIndependent(tfd.Independent):
    """`tfd.Independent` whose `log_prob` reduces over the event flattened to one axis.

    For a base whose log-density is elementwise (Bernoulli, Normal, continuous
    Bernoulli): each tensor parameter and x have their trailing event dimensions
    reshaped to one (a scalar parameter stays), the base is copied with those
    parameters, and its log-density is summed over the last axis. Shapes this does
    not cover statically (x or a parameter broadcasting inside the event) take the
    parent's path. Every other method is `tfd.Independent`'s.
    """

    def _log_prob(self, x, **kwargs):
        flat = _flat_event(self.distribution, x, self._static_reinterpreted_batch_ndims)
        if flat is None or kwargs:
            return super()._log_prob(x, **kwargs)
        base, flat_x = flat
        return tf.reduce_sum(base.log_prob(flat_x), axis=-1)


def _flatten_tail(t, ndims, event):
    """t [..., *event] -> [..., prod(event)]; a scalar unchanged; None if t is neither."""
    if t.shape.rank == 0:
        return t
    if t.shape.rank is None or t.shape.rank < ndims or t.shape[t.shape.rank - ndims:] != event:
        return None
    size = 1
    for s in event:
        size *= s
    return tf.reshape(t, tf.concat([tf.shape(t)[:t.shape.rank - ndims], [size]], axis=0))


def _flat_event(base, x, ndims):
    """(base copied with flattened parameters, flattened x), or None where it does not apply."""
    names = next((n for cls, n in _TENSOR_PARAMETERS.items() if isinstance(base, cls)), None)
    if not ndims or ndims == 1 or names is None:
        return None
    x = tf.convert_to_tensor(x, dtype_hint=base.dtype)
    event = x.shape[x.shape.rank - ndims:] if x.shape.rank is not None else None
    if event is None or x.shape.rank < ndims or not event.is_fully_defined():
        return None
    overrides = {}
    for name in names:
        value = base.parameters.get(name)
        if value is None:
            continue
        flat = _flatten_tail(tf.convert_to_tensor(value, dtype_hint=base.dtype), ndims, event)
        if flat is None:
            return None
        overrides[name] = flat
    return base.copy(**overrides), _flatten_tail(x, ndims, event)


_TENSOR_PARAMETERS = {tfd.Bernoulli: ("logits", "probs"), tfd.Normal: ("loc", "scale"),
                      tfd.ContinuousBernoulli: ("logits", "probs")}


__all__ = ["Bernoulli", "Normal", "FlatIndependent", "standard_normal"]
