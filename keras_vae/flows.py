r"""Flow posteriors: q(z|x) as a diagonal Gaussian pushed through K invertible steps.

```none
z_0 = mu(x) + sigma(x) * eps,   eps ~ N(0, I)                  the diagonal Gaussian base
z_t = f_t(z_{t-1}; x),  t = 1..K
log q(z_K|x) = log N(z_0; mu, sigma^2) - sum_t log |det d f_t / d z_{t-1}|
```

Two families of steps, each a `tfb.Bijector`, so q(z|x) is a
`tfd.TransformedDistribution` and every objective and estimator of the package works
unchanged:

* IAF (Kingma et al., 2016), the numerically stable LSTM-type update. A MADE
  (`keras_vae.made`) reads z_{t-1} and the context h (a projection of the encoder's
  features) and gives a shift m and a gate logit s, autoregressive in z:

  ```none
  [m_t, s_t] = MADE_t(z_{t-1}, h),   sigma_t = sigmoid(s_t + gate_bias)
  z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t,    log det = sum_i log sigma_t,i
  ```

  Consecutive steps reverse the order. The inverse takes d sequential passes;
  the sampling path never needs it (below).
* Planar (Rezende & Mohamed, 2015), with (u, w, b) from the encoder per example:

  ```none
  z_t = z + u^ tanh(w.z + b),   log det = log(1 + (1 - tanh^2(w.z + b)) w.u^)
  u^ = u + (m(w.u) - w.u) w / |w|^2,   m(a) = -1 + softplus(a)     (so w.u^ > -1: invertible;
                                       softplus floored at PLANAR_MIN_SLACK for float32)
  ```

  The inverse solves the monotone scalar equation a + (w.u^) tanh(a + b) = w.y
  for a = w.z by bisection.

One pass: every step computes its log det along the sampling path and TFP's bijector
cache keeps it with the input, keyed by the step's parameters (the same MADE
layer and the same context tensor), so `distribution(params).log_prob(z)` of the z
that `sample(params, ...)` drew reads x and the log det from the cache and runs no
inverse. A z from elsewhere takes the inverse passes.

The head's params are `(center, parts)`: center = f_K(...f_1(mu)) (the point that
eps = 0 maps to, what `reconstruct` and `VAE.call` decode) and a dict of tensors
(loc, scale, and the steps' context or (u, w, b)).

DReG: the doubly reparameterised estimator needs log q(z|x) with all of q's
parameters stopped but z's path kept; for a flow that is the whole flow's weights
stopped and the sequential inverse run on z, which these heads do not give:
`posteriors.check_head` refuses 'dreg' (and free bits, which need a factorised q).

References:
  D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling.
    Improved Variational Inference with Inverse Autoregressive Flow. NeurIPS 2016.
  D. J. Rezende, S. Mohamed. Variational Inference with Normalizing Flows. ICML 2015.
"""

from keras_vae import densities, names, noise
from keras_vae._backend import keras, tf, tfd, tfp
from keras_vae.made import MADE
from keras_vae.posteriors import reparameterize
from tensorflow_probability.python.internal import cache_util

tfb = tfp.bijectors

#: Bisection steps of the planar inverse (the bracket shrinks by 2 each step).
PLANAR_BISECTION_STEPS = 60
#: The least 1 + w.u^ of a planar step (m(a) = -1 + max(softplus(a), this)).
PLANAR_MIN_SLACK = 1e-6
#: Draws of the Monte-Carlo mean of a flow posterior (fixed stateless noise).
MEAN_SAMPLES = 256


class _CachedStep(tfb.Bijector):
    """A bijector that computes y and its log det together and caches both (as TFP's FFJORD)."""

    _cache = cache_util.BijectorCacheWithGreedyAttrs(forward_name="_augmented_forward",
                                                     inverse_name="_augmented_inverse")

    def __init__(self, parameters, name):
        super().__init__(forward_min_event_ndims=1, is_constant_jacobian=False,
                         validate_args=False, parameters=parameters, name=name)

    def _forward(self, x):
        return self._augmented_forward(x)[0]

    def _inverse(self, y):
        return self._augmented_inverse(y)[0]

    def _forward_log_det_jacobian(self, x):
        cached = self._cache.forward_attributes(x)
        if "fldj" not in cached:
            cached.update(self._augmented_forward(x)[1])
        return cached["fldj"]

    def _inverse_log_det_jacobian(self, y):
        cached = self._cache.inverse_attributes(y)
        if "ildj" not in cached:
            cached.update(self._augmented_inverse(y)[1])
        return cached["ildj"]


def _attrs(fldj):
    return {"fldj": fldj, "ildj": -fldj}


class IAFStep(_CachedStep):
    """One IAF step z -> sigma * z + (1 - sigma) * m, [m, s] = MADE(z, context)."""

    def __init__(self, made, context, gate_bias=2.0, name="iaf_step"):
        parameters = dict(locals())
        self.made, self.context, self.gate_bias = made, context, float(gate_bias)
        super().__init__(parameters, name)

    def _gates(self, x):
        out = self.made(x, context=self.context)
        logit = out[..., 1] + self.gate_bias
        return out[..., 0], tf.sigmoid(logit), tf.math.log_sigmoid(logit)

    def _augmented_forward(self, x):
        shift, gate, log_gate = self._gates(x)
        return gate * x + (1.0 - gate) * shift, _attrs(tf.reduce_sum(log_gate, axis=-1))

    def _augmented_inverse(self, y):
        x = tf.zeros_like(y)
        for _ in range(int(y.shape[-1])):  # pass t fixes the unit of degree t
            shift, gate, _ = self._gates(x)
            x = (y - (1.0 - gate) * shift) / gate
        _, _, log_gate = self._gates(x)
        return x, _attrs(tf.reduce_sum(log_gate, axis=-1))


class PlanarStep(_CachedStep):
    """One planar step z -> z + u^ tanh(w.z + b), with u^ constrained so w.u^ > -1."""

    def __init__(self, u, w, b, name="planar_step"):
        parameters = dict(locals())
        self.w, self.b = w, b
        wu = tf.reduce_sum(w * u, axis=-1)
        # w.u^ = m(w.u) = -1 + softplus(w.u), its slack floored so float32 keeps it > -1
        self.wu_hat = tf.maximum(tf.nn.softplus(wu), PLANAR_MIN_SLACK) - 1.0
        norm2 = tf.maximum(tf.reduce_sum(w * w, axis=-1), 1e-12)
        self.u_hat = u + ((self.wu_hat - wu) / norm2)[..., None] * w
        super().__init__(parameters, name)

    def _fldj(self, h):
        return tf.math.log1p((1.0 - tf.square(h)) * self.wu_hat)

    def _augmented_forward(self, x):
        h = tf.tanh(tf.reduce_sum(self.w * x, axis=-1) + self.b)
        return x + self.u_hat * h[..., None], _attrs(self._fldj(h))

    def _augmented_inverse(self, y):
        target = tf.reduce_sum(self.w * y, axis=-1)  # = a + (w.u^) tanh(a + b), a = w.z
        width = tf.abs(self.wu_hat) + 1.0
        low, high = target - width, target + width
        for _ in range(PLANAR_BISECTION_STEPS):
            mid = 0.5 * (low + high)
            above = mid + self.wu_hat * tf.tanh(mid + self.b) > target
            low, high = tf.where(above, low, mid), tf.where(above, mid, high)
        h = tf.tanh(0.5 * (low + high) + self.b)
        return y - self.u_hat * h[..., None], _attrs(self._fldj(h))


class FlowDistribution(tfd.TransformedDistribution):
    """A TransformedDistribution whose mean is a Monte-Carlo estimate over fixed draws.

    A flow has no closed-form mean; `mean()` (used e.g. by active units) averages
    `MEAN_SAMPLES` draws made with a fixed stateless seed, so it is deterministic.
    """

    def _mean(self, **kwargs):
        draws = self.sample(MEAN_SAMPLES, seed=(20161, 1))
        return tf.reduce_mean(draws, axis=0)


class FlowPosterior(keras.layers.Layer):
    """Base of the flow heads: features -> (center, parts); q = base through the steps.

    A subclass defines `_parts(features)` (a dict with at least 'loc' and 'scale')
    and `_steps(parts)` (the bijectors, first applied first).
    """

    factorised = False
    supports_dreg = False

    def __init__(self, latent_dim, num_steps=2, min_scale=1e-4, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) <= 0 or int(num_steps) < 0:
            raise ValueError(f"latent_dim must be >= 1 and num_steps >= 0, got "
                             f"{latent_dim!r}, {num_steps!r}.")
        if float(min_scale) < 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale!r}.")
        self.latent_dim, self.num_steps = int(latent_dim), int(num_steps)
        self.min_scale = float(min_scale)

    def call(self, features):
        parts = self._parts(features)
        return self.flow(parts, parts["loc"]), parts

    def _base(self, parts):
        h = tf.cast(parts["loc"], "float32")
        return h, tf.cast(parts["scale"], "float32")

    def bijector(self, params_or_parts):
        """The flow f_K o ... o f_1 of these parameters (a `tfb.Chain`)."""
        parts = params_or_parts[1] if isinstance(params_or_parts, tuple) else params_or_parts
        return tfb.Chain(list(reversed(self._steps(parts))))

    def flow(self, parts, z0):
        """z_K = f_K(...f_1(z_0)) for base points z_0 [..., d]."""
        return self.bijector(parts).forward(z0)

    def distribution(self, params):
        """q(z|x): the diagonal Gaussian base through the steps; batch [B], event [d]."""
        _, parts = params
        loc, scale = self._base(parts)
        base = tfd.Independent(densities.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1)
        return FlowDistribution(base, self.bijector(parts))

    def reparameterize(self, params, eps):
        """z_K for given noise eps: the steps applied to loc + scale * eps."""
        _, parts = params
        loc, scale = self._base(parts)
        return self.flow(parts, reparameterize(loc, scale, eps))

    def sample(self, params, num_samples=None, seed=None):
        """Reparameterised draws z_K: [S, B, d] (or [B, d] without num_samples).

        The log det of each step is cached with the draw: `distribution(params)
        .log_prob(z)` of these z costs no further network pass.
        """
        loc, _ = self._base(params[1])
        shape = tf.shape(loc)
        if num_samples is not None:
            shape = tf.concat([[num_samples], shape], axis=0)
        return self.reparameterize(params, noise.standard_normal(shape, seed=seed))

    def export_parameters(self, params):
        """{'loc', 'scale'} for an exported `encode`: the flow's image of the base mean
        (the center, where eps = 0 lands) and the base scale; q itself is not Gaussian."""
        center, parts = params
        return {"loc": center, "scale": parts["scale"]}

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, num_steps=self.num_steps,
                      min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
@names.POSTERIORS.register("iaf")
class IAFPosterior(FlowPosterior):
    r"""Inverse autoregressive flow q(z|x) (Kingma et al., 2016); see the module docstring.

    ```none
    [mu, sigma_raw, h] = Dense(features)        sigma = softplus(sigma_raw) + min_scale
    z_t = sigmoid(s_t + gate_bias) * z_{t-1} + (1 - sigmoid(s_t + gate_bias)) * m_t
    ```

    With zero-initialised MADE outputs (the default, `output_initializer='zeros'`)
    each step is z -> g z with g = sigmoid(gate_bias): q starts as the diagonal
    Gaussian N(g^K mu, (g^K sigma)^2).

    Args:
      latent_dim: d.
      num_steps: K.
      hidden_units: the MADEs' hidden widths.
      context_units: the size of the context h.
      gate_bias: added to the gate logits (Kingma et al.'s forget-gate bias).
      min_scale: the floor of the base scale.

    Example:

    ```python
    model = keras_vae.VAE(event_shape=(28, 28, 1), encoder="iwae", posterior="iaf")
    ```
    """

    def __init__(self, latent_dim, num_steps=2, hidden_units=(64,), context_units=32,
                 gate_bias=2.0, min_scale=1e-4, output_initializer="zeros", **kwargs):
        super().__init__(latent_dim, num_steps, min_scale, **kwargs)
        self.hidden_units, self.context_units = tuple(int(h) for h in hidden_units), \
            int(context_units)
        self.gate_bias = float(gate_bias)
        self.output_initializer = output_initializer
        d = self.latent_dim
        self.dense = keras.layers.Dense(2 * d + self.context_units, name="loc_scale_context")
        self.mades = [MADE(d, 2, self.hidden_units, self.context_units,
                           order="left-to-right" if t % 2 == 0 else "right-to-left",
                           output_initializer=output_initializer, name=f"made_{t}")
                      for t in range(self.num_steps)]

    def build(self, input_shape):
        self.dense.build(input_shape)
        for made in self.mades:
            made.build((None, self.latent_dim))
        self.built = True

    def _parts(self, features):
        out = tf.cast(self.dense(features), "float32")
        d = self.latent_dim
        return {"loc": out[..., :d], "scale": tf.nn.softplus(out[..., d:2 * d]) + self.min_scale,
                "context": out[..., 2 * d:]}

    def _steps(self, parts):
        return [IAFStep(made, parts["context"], self.gate_bias, name=f"iaf_step_{t}")
                for t, made in enumerate(self.mades)]

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=list(self.hidden_units), context_units=self.context_units,
                      gate_bias=self.gate_bias, output_initializer=keras.initializers.serialize(
                          keras.initializers.get(self.output_initializer)))
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
@names.POSTERIORS.register("planar")
class PlanarPosterior(FlowPosterior):
    r"""Planar-flow q(z|x) (Rezende & Mohamed, 2015), K steps amortised by the encoder.

    ```none
    [mu, sigma_raw, (u_t, w_t, b_t)_t=1..K] = Dense(features)
    z_t = z_{t-1} + u^_t tanh(w_t . z_{t-1} + b_t)       (u^_t: the invertible u)
    ```

    Args:
      latent_dim: d.
      num_steps: K.
      min_scale: the floor of the base scale.
    """

    def __init__(self, latent_dim, num_steps=4, min_scale=1e-4, **kwargs):
        super().__init__(latent_dim, num_steps, min_scale, **kwargs)
        d, k = self.latent_dim, self.num_steps
        self.dense = keras.layers.Dense(2 * d + k * (2 * d + 1), name="loc_scale_flow")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def _parts(self, features):
        out = tf.cast(self.dense(features), "float32")
        d, k = self.latent_dim, self.num_steps
        parts = {"loc": out[..., :d], "scale": tf.nn.softplus(out[..., d:2 * d]) + self.min_scale}
        # One tensor per step and role, made once: the steps' cache is keyed on them.
        steps = [out[..., 2 * d + t * (2 * d + 1):2 * d + (t + 1) * (2 * d + 1)]
                 for t in range(k)]
        parts.update(u=[s[..., :d] for s in steps], w=[s[..., d:2 * d] for s in steps],
                     b=[s[..., 2 * d] for s in steps])
        return parts

    def _steps(self, parts):
        return [PlanarStep(u, w, b, name=f"planar_step_{t}")
                for t, (u, w, b) in enumerate(zip(parts["u"], parts["w"], parts["b"]))]


__all__ = ["PLANAR_BISECTION_STEPS", "PLANAR_MIN_SLACK", "MEAN_SAMPLES", "IAFStep", "PlanarStep",
           "FlowDistribution", "FlowPosterior", "IAFPosterior", "PlanarPosterior"]
