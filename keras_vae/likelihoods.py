"""Likelihoods p(x|z): decoder output -> a TFP distribution over one example.

The decoder maps z [N, d] to a tensor of shape [N, *event_shape] (logits or a
location). A likelihood layer reads it, may add its own parameters (a learned
scale), and builds a distribution whose event shape is `event_shape`, so
`log_prob(x)` is one number per example. The distributions are
`densities.FlatIndependent`: the sum over the event runs over one flattened axis.
"""

import numpy as np

from keras_vae import densities, names, validation
from keras_vae._backend import keras, tf, tfd
# keras_vae.likelihoods.check_finite was public before it moved to keras_vae.validation.
from keras_vae.validation import check_finite  # noqa: F401


class Likelihood(keras.layers.Layer):
    """Base class. Subclasses define `distribution`, `mean` and `support`."""

    #: (low, high) of the support, None for unbounded; checked by `validate`.
    support = (None, None)
    #: True for a likelihood over integers (8-bit pixels): data loaders keep 0..255 as is.
    integer_valued = False
    #: Uniforms per pixel that `draw_pixels` reads (0: the exported sampler gives the mean).
    noise_per_pixel = 0

    def __init__(self, event_shape, **kwargs):
        super().__init__(**kwargs)
        self.event_shape = tuple(int(s) for s in event_shape)

    def call(self, outputs):
        return tf.cast(outputs, "float32")

    def distribution(self, params):
        raise NotImplementedError

    def mean(self, params):
        """The mean of p(x|z): the image a decoder 'draws' for z."""
        return self.distribution(params).mean()

    def parameters(self, params):
        """The likelihood's parameters as a dict of tensors (exported by the decoder)."""
        raise NotImplementedError

    def draw_pixels(self, parameters, uniform):
        """Images [N, *event] from `parameters` (of `decoder_parameters`) and uniforms.

        Plain TF ops only (the exported samplers call it). `uniform` is
        [N, *event, noise_per_pixel] in (0, 1); with `noise_per_pixel` 0 the images
        are the mean, `parameters['mean']`.
        """
        del uniform
        return parameters["mean"]

    def validate(self, x, name="x"):
        """Checks data for this likelihood; raises ValueError naming the problem.

        The rule is `support` (`keras_vae.validation.check_support`); a subclass
        with other constraints (counts, say) overrides this method.
        """
        validation.check_support(x, self, name)

    def _event_ndims(self):
        return len(self.event_shape)

    def get_config(self):
        config = super().get_config()
        config.update(event_shape=list(self.event_shape))
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
@names.LIKELIHOODS.register("bernoulli")
class BernoulliLikelihood(Likelihood):
    r"""p(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i(z))), the decoder giving the logits l.

    `log_prob` is -binary cross-entropy, so grey values in [0, 1] are accepted
    (the usual 'continuous' reading); binarised data is the exact model.
    Integer images (0-255) are refused: scale or binarise them first.
    """

    support = (0.0, 1.0)

    def distribution(self, params):
        return densities.FlatIndependent(
            densities.Bernoulli(logits=params, dtype="float32"),
            reinterpreted_batch_ndims=self._event_ndims(),
        )

    def mean(self, params):
        return tf.sigmoid(params)

    def parameters(self, params):
        return {"probs": tf.sigmoid(params), "logits": params}


@keras.saving.register_keras_serializable(package="keras_vae")
@names.LIKELIHOODS.register("continuous_bernoulli")
class ContinuousBernoulliLikelihood(Likelihood):
    r"""The continuous Bernoulli (Loaiza-Ganem & Cunningham, 2019) on [0, 1].

    ```none
    p(x|l) = C(l) sigmoid(l)^x (1 - sigmoid(l))^(1 - x)
    ```

    The normaliser C(l) makes it a proper density for grey values in [0, 1],
    which the Bernoulli reading of grey pixels is not.
    """

    support = (0.0, 1.0)

    def distribution(self, params):
        return densities.FlatIndependent(
            tfd.ContinuousBernoulli(logits=params),
            reinterpreted_batch_ndims=self._event_ndims(),
        )

    def parameters(self, params):
        return {"mean": self.mean(params), "logits": params}


@keras.saving.register_keras_serializable(package="keras_vae")
@names.LIKELIHOODS.register("gaussian_learned_scale", learn_scale=True,
                            description="Gaussian p(x|z) with a learned per-feature scale")
@names.LIKELIHOODS.register("gaussian", learn_scale=False)
class GaussianLikelihood(Likelihood):
    r"""p(x|z) = prod_i N(x_i; m_i(z), s_i^2): the decoder gives the location m.

    Args:
      event_shape: the shape of one example.
      scale: the standard deviation s (the initial value when learned).
      learn_scale: if True, s is a trainable per-feature weight,
        s = softplus(v) + min_scale.
      min_scale: floor on a learned scale.
    """

    def __init__(self, event_shape, scale=1.0, learn_scale=False, min_scale=1e-3, **kwargs):
        super().__init__(event_shape, **kwargs)
        if float(scale) <= 0:
            raise ValueError(f"scale must be > 0, got {scale!r}.")
        self.scale = float(scale)
        self.learn_scale = bool(learn_scale)
        self.min_scale = float(min_scale)

    def build(self, input_shape=None):
        if self.learn_scale:
            # Inverse softplus of (scale - min_scale), so s starts at `scale`.
            init = np.log(np.expm1(max(self.scale - self.min_scale, 1e-6)))
            self.raw_scale = self.add_weight(
                shape=self.event_shape,
                initializer=keras.initializers.Constant(float(init)),
                name="raw_scale",
            )
        self.built = True

    def stddev(self):
        """The standard deviation s, a scalar or [*event_shape] when learned."""
        if self.learn_scale:
            return tf.nn.softplus(tf.cast(self.raw_scale, "float32")) + self.min_scale
        return tf.constant(self.scale, "float32")

    def distribution(self, params):
        return densities.FlatIndependent(
            densities.Normal(loc=params, scale=self.stddev()),
            reinterpreted_batch_ndims=self._event_ndims(),
        )

    def mean(self, params):
        return params

    def parameters(self, params):
        return {"loc": params, "scale": tf.broadcast_to(self.stddev(), tf.shape(params))}

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, learn_scale=self.learn_scale, min_scale=self.min_scale)
        return config


def get(identifier, event_shape):
    """Returns a likelihood layer from a name, a config dict or a layer.

    Args:
      identifier: a name registered in `names.LIKELIHOODS` (None: 'bernoulli'), a
        serialised config dict, or a `Likelihood` (returned as is).
      event_shape: the shape of one example, passed to a likelihood built by name.

    Returns:
      A `Likelihood` layer.

    Raises:
      ValueError: an unknown name (the message lists the registered ones).
    """
    if isinstance(identifier, Likelihood):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    return names.LIKELIHOODS.build(identifier or "bernoulli",
                                   {"event_shape": event_shape}, name="likelihood")


__all__ = [
    "Likelihood", "BernoulliLikelihood", "ContinuousBernoulliLikelihood", "GaussianLikelihood",
    "DiscretizedLogisticLikelihood", "get",
]

# The 8-bit likelihood lives in its own module (it subclasses Likelihood, so it comes last).
from keras_vae.discretized_logistic import DiscretizedLogisticLikelihood  # noqa: E402
