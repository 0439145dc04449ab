"""Priors p(z): Keras layers (they may hold trainable weights) that build TFP distributions.

Every prior here is a mixture of diagonal Gaussians (the standard normal being the
one-component case), which gives one uniform way to draw at a temperature T:
pick a component c, then z = loc_c + T * scale_c * eps with eps ~ N(0, I).
"""

from keras_vae import densities, names
from keras_vae.posteriors import reparameterize
from keras_vae._backend import keras, tf, tfd


class Prior(keras.layers.Layer):
    """Base class: `distribution(encode=None)` returns p(z) with event shape [latent_dim].

    `encode` is the model's x -> q(z|x) map; only priors defined through the
    encoder (VampPrior) use it.
    """

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
        self.latent_dim = int(latent_dim)

    def components(self, encode=None):
        """Returns (logits [C] or None, loc [C, d], scale [C, d])."""
        raise NotImplementedError

    def distribution(self, encode=None):
        logits, loc, scale = self.components(encode)
        gaussians = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
        if logits is None:
            return gaussians
        return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), gaussians)

    def sample(self, num_samples, temperature=1.0, seed=None, encode=None):
        """Draws z [num_samples, d] from p(z) with component scales times `temperature`.

        Args:
          num_samples: n > 0.
          temperature: T >= 0 (0: the components' locations).
          seed: an int or a `keras.random.SeedGenerator`.
          encode: the model's x -> q(z|x) (VampPrior only).

        Returns:
          z [n, d].

        Raises:
          ValueError: for n <= 0 or T < 0.
        """
        if int(num_samples) <= 0:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
        if float(temperature) < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature!r}.")
        num_samples, temperature = int(num_samples), float(temperature)
        logits, loc, scale = self.components(encode)
        eps = keras.random.normal((num_samples, self.latent_dim), seed=seed)
        if logits is None:
            return reparameterize(loc[0], temperature * scale[0], eps)
        index = keras.random.categorical(logits[None, :], num_samples, seed=seed)[0]
        return reparameterize(tf.gather(loc, index), temperature * tf.gather(scale, index), eps)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
@names.PRIORS.register("normal", aliases=("standard_normal",))
class StandardNormalPrior(Prior):
    """p(z) = N(0, I). KL(q || p) is analytic for a Gaussian q (registered in TFP)."""

    def components(self, encode=None):
        zeros = tf.zeros((1, self.latent_dim), "float32")
        return None, zeros, tf.ones_like(zeros)

    def distribution(self, encode=None):
        zeros = tf.zeros((self.latent_dim,), "float32")
        return tfd.Independent(densities.Normal(zeros, 1.0), reinterpreted_batch_ndims=1)


@keras.saving.register_keras_serializable(package="keras_vae")
@names.PRIORS.register("mixture")
class MixtureOfGaussiansPrior(Prior):
    r"""A learnable mixture of C diagonal Gaussians.

    ```none
    p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2)),  pi = softmax(logits)
    ```

    KL(q || p) has no closed form: the model falls back to Monte-Carlo KL.
    Locations start spread as N(0, I) draws so components do not coincide.
    """

    def __init__(self, latent_dim, num_components=10, min_scale=1e-3, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = int(num_components)
        self.min_scale = float(min_scale)

    def build(self, input_shape=None):
        c, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(shape=(c,), initializer="zeros", name="logits")
        self.loc = self.add_weight(
            shape=(c, d), initializer=keras.initializers.RandomNormal(stddev=1.0), name="loc"
        )
        # softplus(0.5413) = 1: components start with unit scale.
        self.raw_scale = self.add_weight(
            shape=(c, d), initializer=keras.initializers.Constant(0.5413), name="raw_scale"
        )
        self.built = True

    def components(self, encode=None):
        scale = tf.nn.softplus(tf.cast(self.raw_scale, "float32")) + self.min_scale
        return (
            tf.cast(self.logits, "float32"),
            tf.cast(self.loc, "float32"),
            scale,
        )

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, min_scale=self.min_scale)
        return config


@keras.saving.register_keras_serializable(package="keras_vae")
@names.PRIORS.register("vamp")
class VampPrior(Prior):
    r"""VampPrior (Tomczak & Welling, 2018): the aggregate posterior of learned pseudo-inputs.

    ```none
    p(z) = (1/C) sum_c q(z | u_c),  u_c = sigmoid(v_c) in [0, 1]^event_shape
    ```

    The pseudo-inputs `u_c` are trainable and pass through the model's own
    encoder, so the prior needs `encode`; the VAE passes it.

    References:
      J. Tomczak and M. Welling. VAE with a VampPrior. AISTATS 2018.
    """

    def __init__(self, latent_dim, event_shape, num_components=50, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.event_shape = tuple(int(s) for s in event_shape)
        self.num_components = int(num_components)

    def build(self, input_shape=None):
        self.pseudo_inputs = self.add_weight(
            shape=(self.num_components,) + self.event_shape,
            initializer=keras.initializers.RandomNormal(stddev=0.1),
            name="pseudo_inputs",
        )
        self.built = True

    def components(self, encode=None):
        if encode is None:
            raise ValueError("VampPrior needs the model's encoder: pass encode=model.encode.")
        q = encode(tf.sigmoid(self.pseudo_inputs))
        base = q.distribution  # tfd.Normal with batch [C, d]
        return tf.zeros((self.num_components,), "float32"), base.loc, base.scale

    def get_config(self):
        config = super().get_config()
        config.update(event_shape=list(self.event_shape), num_components=self.num_components)
        return config


def get(identifier, latent_dim, event_shape):
    """Returns a prior from a registered name (`names.PRIORS`), a config dict or a layer.

    Args:
      identifier: a name, a config dict, a `Prior`, or None ('normal').
      latent_dim: the size d of z.
      event_shape: the shape of one example (for VampPrior's pseudo-inputs).

    Returns:
      The prior layer.

    Raises:
      TypeError: for a layer that is not a `Prior`.
    """
    if isinstance(identifier, Prior):
        return identifier
    if isinstance(identifier, keras.layers.Layer):
        raise TypeError(f"A prior must subclass keras_vae.priors.Prior, got {type(identifier)}.")
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    return names.PRIORS.build(identifier or "normal",
                              {"latent_dim": latent_dim, "event_shape": event_shape},
                              name="prior")


__all__ = ["Prior", "StandardNormalPrior", "MixtureOfGaussiansPrior", "VampPrior", "get"]
