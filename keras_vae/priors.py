"""Priors p(z): Keras layers (they may hold trainable weights) that build TFP distributions.

Every prior here is a mixture of diagonal Gaussians (the standard normal being the
one-component case), which gives one uniform way to draw at a temperature T:
pick a component c, then z = loc_c + T * scale_c * eps with eps ~ N(0, I).
The noise eps and the component c come from two distinct seed streams
(`draw_seeds`), so they are independent for any seed.
"""

import numpy as np

from keras_vae import densities, names
from keras_vae.posteriors import reparameterize
from keras_vae._backend import keras, tf, tfd


class Prior(keras.layers.Layer):
    """Base class: `distribution(encode=None)` returns p(z) with event shape [latent_dim].

    `encode` is the model's x -> q(z|x) map; only priors defined through the
    encoder (VampPrior) use it. A prior with `conditional = True`
    (`ClassConditionalPrior`) also takes `condition=` [B, c] in `distribution`
    and `sample`; the model passes it only to such priors.
    """

    #: Whether `distribution` and `sample` take the model's condition vector.
    conditional = False

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
        num_samples, temperature = _check_draw(num_samples, temperature)
        logits, loc, scale = self.components(encode)
        seeds = draw_seeds(seed)
        eps = keras.random.normal((num_samples, self.latent_dim), seed=seeds)
        if logits is None:
            return reparameterize(loc[0], temperature * scale[0], eps)
        index = keras.random.categorical(logits[None, :], num_samples, seed=seeds)[0]
        return reparameterize(tf.gather(loc, index), temperature * tf.gather(scale, index), eps)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config


def _check_draw(num_samples, temperature):
    if int(num_samples) <= 0:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}.")
    if float(temperature) < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}.")
    return int(num_samples), float(temperature)


def draw_seeds(seed):
    """A seed that gives each draw of one call its own stream.

    An int seed s becomes a `keras.random.SeedGenerator(s)`: its first draw uses the
    stream s itself (what `keras.random.normal(..., seed=s)` uses), each later
    draw the next one, so two draws of one call are never the same stream. A
    generator (or None: Keras's global one) already advances at each draw.

    Args:
      seed: an int, a `keras.random.SeedGenerator` or None.

    Returns:
      A `keras.random.SeedGenerator`, or None.
    """
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return keras.random.SeedGenerator(int(seed))
    return seed


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
    With `learn_weights=False` the weights stay uniform (pi_c = 1/C; GMVAE's p(y)).
    """

    def __init__(self, latent_dim, num_components=10, min_scale=1e-3, learn_weights=True,
                 **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = int(num_components)
        self.min_scale = float(min_scale)
        self.learn_weights = bool(learn_weights)

    def build(self, input_shape=None):
        c, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(shape=(c,), initializer="zeros", name="logits",
                                      trainable=self.learn_weights)
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
        if not self.learn_weights:  # (files written before the option load as before)
            config.update(learn_weights=False)
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


@keras.saving.register_keras_serializable(package="keras_vae")
@names.PRIORS.register("class_conditional")
class ClassConditionalPrior(Prior):
    r"""A learned Gaussian per class, p(z|y), for a conditional model (a CVAE's prior).

    ```none
    p(z|y) = N(z; c(y) M, diag(softplus(c(y) R) + min_scale)^2)     c(y) [B, c], M, R [c, d]
           = N(z; M_y, diag(softplus(R_y) + min_scale)^2)          c(y) = one_hot(y)
    p(z)   = (1/C) sum_y p(z|y)            (no condition: uniform over the classes)
    ```

    KL(q(z|x,y) || p(z|y)) is analytic (two diagonal Gaussians). A real-valued
    condition vector gives the linear-Gaussian prior of the first line. The
    locations start as N(0, I) draws, so the classes start apart.

    Args:
      latent_dim: d.
      condition_dim: c, the width of the model's condition vector (C for C classes;
        the VAE passes it; 0 is refused when the prior is built).
      min_scale: the floor on the scales.

    Example:

    ```python
    model = keras_vae.VAE(event_shape=(28, 28, 1), num_classes=10, conditional_prior=True)
    loc, scale = model.prior.class_components()       # [10, d] each, numpy
    ```
    """

    conditional = True

    def __init__(self, latent_dim, condition_dim=0, min_scale=1e-3, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.condition_dim = int(condition_dim)
        self.min_scale = float(min_scale)

    def build(self, input_shape=None):
        c, d = self.condition_dim, self.latent_dim
        if c <= 0:
            raise ValueError(
                "the class-conditional prior p(z|y) needs a conditional model: give the VAE "
                f"num_classes or condition_shape (got condition_dim={c}).")
        self.loc = self.add_weight(
            shape=(c, d), initializer=keras.initializers.RandomNormal(stddev=1.0), name="loc"
        )
        self.raw_scale = self.add_weight(  # softplus(0.5413) = 1: unit scales at the start
            shape=(c, d), initializer=keras.initializers.Constant(0.5413), name="raw_scale"
        )
        self.built = True

    def components(self, encode=None):
        """The uniform mixture of the classes' Gaussians (logits 0, loc M, scale)."""
        scale = tf.nn.softplus(tf.cast(self.raw_scale, "float32")) + self.min_scale
        return tf.zeros((self.condition_dim,), "float32"), tf.cast(self.loc, "float32"), scale

    def class_components(self):
        """(loc [C, d], scale [C, d]), numpy float32: the Gaussian of each class (export)."""
        _, loc, scale = self.components()
        return np.asarray(loc, "float32"), np.asarray(scale, "float32")

    def conditional_components(self, condition):
        """(loc [B, d], scale [B, d]) of p(z|y) for condition vectors [B, c]."""
        condition = tf.cast(condition, "float32")
        loc = tf.matmul(condition, tf.cast(self.loc, "float32"))
        raw = tf.matmul(condition, tf.cast(self.raw_scale, "float32"))
        return loc, tf.nn.softplus(raw) + self.min_scale

    def distribution(self, encode=None, condition=None):
        """p(z|y) with batch [B] for condition [B, c]; without one, the classes' mixture."""
        if condition is None:
            return super().distribution(encode)
        loc, scale = self.conditional_components(condition)
        return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)

    def sample(self, num_samples, temperature=1.0, seed=None, encode=None, condition=None):
        """z [n, d] from p(z|y) (condition [n, c]) at a temperature; else from the mixture."""
        if condition is None:
            return super().sample(num_samples, temperature, seed, encode)
        num_samples, temperature = _check_draw(num_samples, temperature)
        loc, scale = self.conditional_components(condition)
        eps = keras.random.normal((num_samples, self.latent_dim), seed=draw_seeds(seed))
        return reparameterize(loc, temperature * scale, eps)

    def get_config(self):
        config = super().get_config()
        config.update(condition_dim=self.condition_dim, min_scale=self.min_scale)
        return config


def get(identifier, latent_dim, event_shape, condition_dim=0):
    """Returns a prior from a registered name (`names.PRIORS`), a config dict or a layer.

    Args:
      identifier: a name, a config dict, a `Prior`, or None ('normal').
      latent_dim: the size d of z.
      event_shape: the shape of one example (for VampPrior's pseudo-inputs).
      condition_dim: the width c of a conditional model's condition (0: none), for
        the class-conditional prior.

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
                              {"latent_dim": latent_dim, "event_shape": event_shape,
                               "condition_dim": condition_dim},
                              name="prior")


__all__ = ["draw_seeds", "Prior", "StandardNormalPrior", "MixtureOfGaussiansPrior", "VampPrior",
           "ClassConditionalPrior", "get"]
