"""The keras_vae models the benchmark measures, and a TFP-free twin for the overhead part."""

import math

import keras_vae
from keras_vae import networks, objectives
from keras_vae._backend import keras, tf, tfd

EVENT_SHAPE = (28, 28, 1)
LOG_2PI = math.log(2.0 * math.pi)


def seed_mlp(objective="elbo", seed=0, cls=None):
    """The seed MLP 784-200-10 (preset 'mlp' with one hidden layer of 200 ReLU units)."""
    cls = cls or keras_vae.VAE
    keras.utils.set_random_seed(seed)
    return cls(
        latent_dim=10,
        event_shape=EVENT_SHAPE,
        encoder=networks.build_encoder("mlp", EVENT_SHAPE, hidden_units=(200,)),
        decoder=networks.build_decoder("mlp", 10, EVENT_SHAPE, hidden_units=(200,)),
        objective=objective,
        seed=seed,
    )


def iwae_net(objective="elbo", seed=0, cls=None):
    """The IWAE paper's one-stochastic-layer net: 784-200-200-50 and back, tanh."""
    cls = cls or keras_vae.VAE
    keras.utils.set_random_seed(seed)
    return cls(event_shape=EVENT_SHAPE, encoder="iwae", objective=objective, seed=seed)


def make_objective(kind, k):
    """'elbo' with k Monte-Carlo samples (the paper's 'VAE' column) or 'iwae' with k."""
    if kind == "elbo":
        return objectives.ELBO(num_samples=k)
    return objectives.IWAE(k=k)


class ClosedFormVAE(keras_vae.VAE):
    """The same VAE with hand-written log-densities instead of TFP distributions.

    Only valid for the configuration benchmarked: diagonal Gaussian q(z|x), N(0, I)
    prior, Bernoulli p(x|z), analytic KL, standard gradients. Everything else
    (train_step, objectives, metrics) is inherited, so the difference in step time
    is the cost of building and evaluating the tfd objects. It overrides only the
    `_log_joint` hook: the draw is the model's own.
    """

    def _log_joint(self, x, draws, training):
        z, (loc, scale) = draws["z"], draws["params"]
        logits = self._decoder_outputs(z, training)
        event_axes = list(range(-len(self.event_shape), 0))
        log_likelihood = tf.reduce_sum(logits * x - tf.math.softplus(logits), axis=event_axes)
        log_prior = -0.5 * tf.reduce_sum(tf.square(z) + LOG_2PI, axis=-1)
        log_scale = tf.math.log(scale)
        log_posterior = tf.reduce_sum(
            -0.5 * (tf.square((z - loc) / scale) + LOG_2PI) - log_scale, axis=-1)
        kl = None
        if self.analytic_kl:
            kl = tf.reduce_sum(0.5 * (tf.square(loc) + tf.square(scale) - 1.0) - log_scale,
                               axis=-1)
        return objectives.Terms(log_likelihood, log_prior, log_posterior, None, kl, None)


class _Independent(tfd.Independent):
    """tfd.Independent under another name (no behaviour of its own)."""


class TFPLogProbVAE(keras_vae.VAE):
    """keras_vae.VAE with p(x|z) wrapped in an Independent subclass: the same TFP densities.

    Part tfp's control: it computes exactly what keras_vae.VAE computes (TFP's
    Bernoulli.log_prob), so its distance from the plain model is the noise of the
    measurement. (It was written for a Bernoulli fast path in model.py, since
    reverted: every density in the core is TFP's.)
    """

    def decode(self, z, training=False):
        d = super().decode(z, training)
        return _Independent(d.distribution, reinterpreted_batch_ndims=d.reinterpreted_batch_ndims)
