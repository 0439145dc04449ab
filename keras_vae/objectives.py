r"""Variational objectives as pure functions of log-weights, and the objectives a VAE trains on.

For one example x and S draws z_s ~ q(z|x), the log-weights are

```none
log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x),      shape [S, B]
```

and every bound here is a function of them alone (axis 0 is the sample axis):

```none
ELBO         = (1/S) sum_s log w_s
IWAE_K       = log (1/K) sum_k w_k                                  (Burda et al., 2016)
MIWAE(M, K)  = (1/M) sum_m log (1/K) sum_k w_{m,k}                   (Rainforth et al., 2018)
CIWAE(beta)  = beta ELBO + (1 - beta) IWAE_K                         (Rainforth et al., 2018)
PIWAE(M, K)  : the decoder ascends IWAE_{MK}, the encoder MIWAE(M, K)
```

With S = M * K samples laid out as s = m * K + k, MIWAE normalises the importance
weights over the K axis inside each of the M groups. (Normalising over M, as one
public implementation does, is a different and wrong estimator.)

The doubly-reparameterised estimator (DReG, Tucker et al., 2019) replaces the
encoder's gradient of IWAE_K by that of the surrogate

```none
sum_k stop_gradient(w~_k^2) log w_k,   w~ = softmax_k(log w),   q's parameters stopped in log q
```

which, for K = 1 (the ELBO), is 'sticking the landing' (Roeder et al., 2017).

References:
  Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  T. Rainforth et al. Tighter Variational Bounds are Not Necessarily Better. ICML 2018.
  G. Tucker et al. Doubly Reparameterized Gradient Estimators for Monte Carlo
    Objectives. ICLR 2019.
"""

from keras_vae import names
from keras_vae._backend import keras, tf


# --------------------------------------------------------------------------- functions


def log_mean_exp(x, axis=0):
    """log (1/n) sum_i exp(x_i) along `axis`, computed stably."""
    n = tf.cast(tf.shape(x)[axis], x.dtype)
    return tf.reduce_logsumexp(x, axis=axis) - tf.math.log(n)


def elbo_bound(log_w):
    """The Monte-Carlo ELBO, the mean of log w over samples: [S, B] -> [B]."""
    return tf.reduce_mean(log_w, axis=0)


def iwae_bound(log_w):
    """IWAE_S = log-mean-exp of log w over samples: [S, B] -> [B]."""
    return log_mean_exp(log_w, axis=0)


def _groups(log_w, num_groups):
    """[M*K, B] -> [M, K, B] with sample s = m * K + k."""
    shape = tf.shape(log_w)
    return tf.reshape(log_w, tf.stack([num_groups, shape[0] // num_groups, shape[1]]))


def miwae_bound(log_w, num_groups):
    """MIWAE(M, K): the mean over M groups of IWAE_K within each group: [M*K, B] -> [B]."""
    return tf.reduce_mean(log_mean_exp(_groups(log_w, num_groups), axis=1), axis=0)


def ciwae_bound(log_w, beta):
    """CIWAE(beta) = beta * ELBO + (1 - beta) * IWAE over the same samples: [S, B] -> [B]."""
    return beta * elbo_bound(log_w) + (1.0 - beta) * iwae_bound(log_w)


def dreg_surrogate(log_w, num_groups=1):
    """The DReG surrogate for MIWAE(M, K) (M = num_groups; M=1 is IWAE, K=1 the ELBO).

    `log_w` must be computed with the posterior's parameters stopped in log q
    (but z still reparameterised), so that only the path through z carries the
    encoder's gradient. The value is not a bound; only its gradient is used.
    """
    grouped = _groups(log_w, num_groups)
    weights = tf.stop_gradient(tf.nn.softmax(grouped, axis=1))
    return tf.reduce_mean(tf.reduce_sum(tf.square(weights) * grouped, axis=1), axis=0)


# --------------------------------------------------------------------------- objectives


class Terms:
    """The per-sample quantities of one forward pass (all float32).

    Attributes:
      log_likelihood: log p(x|z_s), [S, B].
      log_prior: log p(z_s), [S, B].
      log_posterior: log q(z_s|x), [S, B].
      log_posterior_stopped: log q(z_s|x) with q's parameters stopped (DReG), [S, B] or None.
      kl: analytic KL(q || p) per example, [B], or None where TFP registers none.
      kl_per_dim: KL per latent unit, [B, d], or None (needed by free bits).
    """

    def __init__(self, log_likelihood, log_prior, log_posterior, log_posterior_stopped=None,
                 kl=None, kl_per_dim=None):
        self.log_likelihood = log_likelihood
        self.log_prior = log_prior
        self.log_posterior = log_posterior
        self.log_posterior_stopped = log_posterior_stopped
        self.kl = kl
        self.kl_per_dim = kl_per_dim

    def log_weights(self, kl_weight=1.0, stop_posterior=False):
        """log p(x|z) + kl_weight * (log p(z) - log q(z|x)); kl_weight = 1 is the true log w."""
        log_q = self.log_posterior_stopped if stop_posterior else self.log_posterior
        return self.log_likelihood + kl_weight * (self.log_prior - log_q)

    def kl_divergence(self):
        """KL per example: analytic where available, else the Monte-Carlo estimate."""
        if self.kl is not None:
            return self.kl
        return tf.reduce_mean(self.log_posterior - self.log_prior, axis=0)

    def reconstruction(self):
        """E_q log p(x|z) per example, by Monte Carlo over the S samples."""
        return tf.reduce_mean(self.log_likelihood, axis=0)


class Objective:
    r"""Base class of the objectives a VAE trains on.

    A subclass sets `name` and `num_samples` (S, drawn per example) and defines
    `value(log_w)`, its bound as a function of the [S, B] log-weights. The base
    class derives the rest from it:

    ```none
    bound(terms)                    value(log w)                     the logged value, [B]
    training_value(terms, beta)     value(log p(x|z) + beta (log p(z) - log q))
    surrogates(terms, beta, dreg)   (decoder, encoder): the [B] tensors whose gradients
                                    the decoder-side and encoder-side weights follow
    ```

    The encoder's surrogate is `encoder_value` (the training value itself, unless
    the objective gives the encoder its own target, as PIWAE does) or, with
    DReG, `encoder_surrogate(stopped_log_w)` on the log-weights whose log q has
    its parameters stopped. The pair holds the same object twice when the
    encoder follows the decoder's surrogate.
    """

    name = "objective"

    def __init__(self, num_samples=1):
        if int(num_samples) < 1:
            raise ValueError(f"The number of samples must be >= 1, got {num_samples!r}.")
        self.num_samples = int(num_samples)

    def value(self, log_w):
        """The bound as a function of log-weights: [S, B] -> [B]."""
        raise NotImplementedError

    def bound(self, terms):
        """The value of the bound per example [B] at the true log-weights (never a surrogate)."""
        return self.value(terms.log_weights())

    def training_value(self, terms, kl_weight=1.0):
        """The value ascended, [B]: the bound with the KL part weighted by `kl_weight`."""
        return self.value(terms.log_weights(kl_weight))

    def encoder_value(self, terms, kl_weight, value):
        """The encoder's surrogate without DReG; `value` (the training value) by default."""
        return value

    def encoder_surrogate(self, stopped_log_w):
        """The DReG surrogate of the encoder (Tucker et al., 2019): IWAE's, one group."""
        return dreg_surrogate(stopped_log_w)

    def surrogates(self, terms, kl_weight=1.0, dreg=False):
        """(decoder, encoder) surrogates, each [B]; see the class docstring.

        Args:
          terms: the `Terms` of one forward pass (with `log_posterior_stopped` for DReG).
          kl_weight: the weight of log p(z) - log q(z|x) (beta, KL warm-up).
          dreg: give the encoder DReG's surrogate.

        Returns:
          A pair of [B] tensors (the same object twice when the encoder follows
          the decoder's surrogate).
        """
        value = self.training_value(terms, kl_weight)
        if dreg:
            return value, self.encoder_surrogate(terms.log_weights(kl_weight,
                                                                   stop_posterior=True))
        return value, self.encoder_value(terms, kl_weight, value)

    def get_config(self):
        return {"num_samples": self.num_samples}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_vae")
@names.OBJECTIVES.register("elbo", aliases=("vae",))
class ELBO(Objective):
    r"""The evidence lower bound, with an analytic or Monte-Carlo KL, and free bits.

    ```none
    ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))
    ```

    With a KL weight beta (beta-VAE, KL warm-up) the training value is
    E_q[log p(x|z)] - beta KL. With free bits lambda (Kingma et al., 2016) each
    latent unit's KL, averaged over the batch, is floored at lambda nats:
    E_q[log p(x|z)] - beta sum_j max(lambda, E_batch KL_j).

    Args:
      num_samples: S, Monte-Carlo samples of z per example.
      free_bits: lambda >= 0, in nats per latent unit (0 disables it).
    """

    name = "elbo"

    def __init__(self, num_samples=1, free_bits=0.0):
        super().__init__(num_samples)
        if float(free_bits) < 0:
            raise ValueError(f"free_bits must be >= 0, got {free_bits!r}.")
        self.free_bits = float(free_bits)

    def value(self, log_w):
        return elbo_bound(log_w)

    def bound(self, terms):
        return terms.reconstruction() - terms.kl_divergence()

    def training_value(self, terms, kl_weight=1.0):
        if self.free_bits > 0:
            kl_dims = tf.reduce_mean(terms.kl_per_dim, axis=0)
            kl = tf.reduce_sum(tf.maximum(kl_dims, self.free_bits))
            return terms.reconstruction() - kl_weight * kl
        if terms.kl is not None:
            return terms.reconstruction() - kl_weight * terms.kl
        return elbo_bound(terms.log_weights(kl_weight))

    def encoder_surrogate(self, stopped_log_w):
        """DReG with K = 1 in each of the S groups: sticking the landing (Roeder et al., 2017)."""
        return dreg_surrogate(stopped_log_w, num_groups=self.num_samples)

    def get_config(self):
        return {"num_samples": self.num_samples, "free_bits": self.free_bits}


@keras.saving.register_keras_serializable(package="keras_vae")
@names.OBJECTIVES.register("iwae")
class IWAE(Objective):
    """The importance-weighted bound IWAE_k (Burda et al., 2016) with k samples."""

    name = "iwae"

    def __init__(self, k=5):
        super().__init__(k)
        self.k = int(k)

    def value(self, log_w):
        return iwae_bound(log_w)

    def get_config(self):
        return {"k": self.k}


@keras.saving.register_keras_serializable(package="keras_vae")
@names.OBJECTIVES.register("miwae")
class MIWAE(Objective):
    """MIWAE(M, K): the mean of M independent IWAE_K bounds (Rainforth et al., 2018)."""

    name = "miwae"

    def __init__(self, num_groups=8, k=8):
        super().__init__(int(num_groups) * int(k))
        self.num_groups = int(num_groups)
        self.k = int(k)

    def value(self, log_w):
        return miwae_bound(log_w, self.num_groups)

    def encoder_surrogate(self, stopped_log_w):
        return dreg_surrogate(stopped_log_w, self.num_groups)

    def get_config(self):
        return {"num_groups": self.num_groups, "k": self.k}


@keras.saving.register_keras_serializable(package="keras_vae")
@names.OBJECTIVES.register("piwae")
class PIWAE(MIWAE):
    """PIWAE(M, K): the decoder ascends IWAE_{MK}, the encoder MIWAE(M, K) (Rainforth et al.).

    Both gradients come from the same M * K samples in one step. The logged
    bound is IWAE_{MK}, the decoder's target.
    """

    name = "piwae"

    def value(self, log_w):
        return iwae_bound(log_w)

    def encoder_value(self, terms, kl_weight, value):
        return miwae_bound(terms.log_weights(kl_weight), self.num_groups)


@keras.saving.register_keras_serializable(package="keras_vae")
@names.OBJECTIVES.register("ciwae")
class CIWAE(Objective):
    """CIWAE(beta) = beta ELBO + (1 - beta) IWAE_k on the same k samples (Rainforth et al.)."""

    name = "ciwae"

    def __init__(self, beta=0.5, k=5):
        super().__init__(k)
        if not 0.0 <= float(beta) <= 1.0:
            raise ValueError(f"CIWAE's beta must lie in [0, 1], got {beta!r}.")
        self.beta = float(beta)
        self.k = int(k)

    def value(self, log_w):
        return ciwae_bound(log_w, self.beta)

    def encoder_surrogate(self, stopped_log_w):
        """beta times ELBO's DReG surrogate (K = 1 groups) plus (1 - beta) times IWAE's."""
        return self.beta * dreg_surrogate(stopped_log_w, self.num_samples) + (
            1.0 - self.beta
        ) * dreg_surrogate(stopped_log_w, 1)

    def get_config(self):
        return {"beta": self.beta, "k": self.k}


def get(identifier, **kwargs):
    """Returns an objective from an instance, a name ('elbo', 'iwae', ...) or a config dict.

    Example: `get("miwae", num_groups=8, k=8)`.

    Args:
      identifier: an `Objective`, a registered name, None ('elbo'), a Keras config
        dict ('class_name', 'config') or a dict {'name': ..., **arguments}.
      **kwargs: the arguments of an objective given by name.

    Returns:
      The objective.

    Raises:
      ValueError: for an unknown name.
    """
    if isinstance(identifier, Objective):
        return identifier
    if identifier is None:
        return ELBO(**kwargs)
    if isinstance(identifier, dict) and "class_name" in identifier:
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, dict):
        arguments = dict(identifier)
        return names.OBJECTIVES.build(arguments.pop("name"), **arguments, **kwargs)
    return names.OBJECTIVES.build(identifier, **kwargs)


def __getattr__(name):
    # kl_weight_schedule lives in keras_vae.training, which imports this module.
    if name == "kl_weight_schedule":
        from keras_vae.training import kl_weight_schedule
        return kl_weight_schedule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "log_mean_exp", "elbo_bound", "iwae_bound", "miwae_bound", "ciwae_bound",
    "dreg_surrogate", "Terms", "Objective",
    "ELBO", "IWAE", "MIWAE", "PIWAE", "CIWAE", "get", "kl_weight_schedule",
]
