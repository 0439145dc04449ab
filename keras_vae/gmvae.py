r"""A Gaussian-mixture VAE with a categorical latent y beside z, summed over y exactly (GMVAE).

```none
generation   p(y) = softmax(pi)  (or uniform),  p(z|y) = N(mu_y, diag sigma_y^2),  p(x|z)
inference    q(y|x) = softmax(l(x)),            q(z|x, y) = N(m_y(x), diag s_y(x)^2)

ELBO(x) = sum_y q(y|x) [ E_{q(z|x,y)} log p(x|z) - KL(q(z|x,y) || p(z|y)) ]
          - KL(q(y|x) || p(y))
```

y takes C values, so the expectation over q(y|x) is an exact sum of C terms (no
Gumbel relaxation, no score-function estimator): every draw z_{s,y} ~ q(z|x, y) is
reparameterised, one per value of y, and both KL terms are closed forms (two
diagonal Gaussians; two categoricals). p(z|y) p(y) is a `priors.MixtureOfGaussiansPrior`,
so `sample` (y ~ p(y), z ~ p(z|y)) and an exported sampler are those of the mixture
prior. `cluster(x)` = argmax_y q(y|x).

`compute_terms` gives, per draw s, [S, B] tensors: log_likelihood =
sum_y q(y|x) log p(x|z_{s,y}), the analytic kl above (so the ELBO objective is the
GMVAE ELBO exactly), and log_prior - log_posterior such that the log-weight is the
stratified importance weight

```none
log W_s = log sum_y p(x, z_{s,y}, y) / q(z_{s,y}|x, y),     E W_s = p(x)
```

so `evaluation.log_likelihood` (logsumexp over S draws) is a bound that tends to
log p(x). Training is the ELBO only: W_s does not involve q(y|x), so an IWAE-type
objective would leave q(y|x), the clusters, untrained.

Example:

```python
import keras_vae
model = keras_vae.GaussianMixtureVAE(num_components=10, latent_dim=10, encoder="vade")
model.initialize_output_bias(x_train)
model.compile(optimizer="adam")
model.fit(x_train, epochs=10, batch_size=100)
clusters = model.cluster(x_test)                  # argmax_y q(y|x)
images = model.sample(16, seed=1)                 # y ~ p(y), z ~ p(z|y)
```
(`keras-vae train --posterior gmvae` trains one from the command line.)

References:
  R. Shu. Gaussian mixture VAE: lessons about variational inference, generative
    modeling, and deep nets. Blog note, 2016 (the exact sum over y).
  N. Dilokthanakul et al. Deep unsupervised clustering with Gaussian mixture
    variational autoencoders. arXiv:1611.02648, 2016.
  Z. Jiang et al. Variational Deep Embedding. IJCAI 2017 (the 'vade' preset, 500-500-2000).
"""

import math

import numpy as np

from keras_vae import densities, names, noise
from keras_vae import objectives as objectives_lib
from keras_vae import posteriors as posteriors_lib
from keras_vae import priors as priors_lib
from keras_vae._backend import keras, tf, tfd
from keras_vae.model import VAE

names.PRESETS.add("vade", {"kind": "dense", "hidden_units": (500, 500, 2000),
                           "activation": "relu", "latent_dim": 10},
                  description="VaDE's Dense 500-500-2000, ReLU (d=10; Jiang et al., 2017)")

_NOT_MARGINALISED = (
    "the 'gmvae' posterior q(y|x) q(z|x, y) needs the exact sum over y of "
    "keras_vae.GaussianMixtureVAE: use keras_vae.GaussianMixtureVAE(...) (the CLI's "
    "`keras-vae train --posterior gmvae` builds one), not VAE(posterior='gmvae').")


@keras.saving.register_keras_serializable(package="keras_vae")
@names.POSTERIORS.register("gmvae", aliases=("categorical_gaussian",))
class GaussianMixturePosterior(keras.layers.Layer):
    r"""q(y|x) q(z|x, y): a categorical over C values and a diagonal Gaussian per value.

    ```none
    logits = W_y h + b_y                                    [B, C]
    (m_y, s_y) = DiagonalGaussianPosterior(g([h, one_hot(y)]))   [B, C, d] each
    ```

    g is `component_units` Dense ReLU layers (none: the value of y shifts the
    location and scale through the head's weights on one_hot(y)). `call` returns
    (logits, loc, scale); `distribution` the mixture q(z|x) = sum_y q(y|x) q(z|x, y).

    Args:
      latent_dim: d.
      num_components: C >= 2.
      component_units: widths of g.
      min_scale: the floor on s_y.
    """

    #: The model this head needs (`keras-vae train --posterior gmvae` builds it).
    model_class = None  # set below to GaussianMixtureVAE
    supports_dreg = False
    factorised = False

    def __init__(self, latent_dim, num_components=10, component_units=(), min_scale=1e-4,
                 **kwargs):
        super().__init__(**kwargs)
        if int(num_components) < 2:
            raise ValueError(f"num_components must be >= 2, got {num_components!r}.")
        self.latent_dim, self.num_components = int(latent_dim), int(num_components)
        self.component_units = tuple(int(u) for u in component_units)
        self.min_scale = float(min_scale)
        self.marginalised = False  # GaussianMixtureVAE sets it before building
        self.logits = keras.layers.Dense(self.num_components, name="y_logits")
        self.hidden = [keras.layers.Dense(u, activation="relu", name=f"component_{i}")
                       for i, u in enumerate(self.component_units)]
        self.gaussian = posteriors_lib.DiagonalGaussianPosterior(
            self.latent_dim, self.min_scale, name="z_given_y")

    def build(self, input_shape):
        if not self.marginalised:
            raise ValueError(_NOT_MARGINALISED)
        width = int(input_shape[-1])
        self.logits.build((None, width))
        width += self.num_components
        for layer in self.hidden:
            layer.build((None, width))
            width = layer.units
        self.gaussian.build((None, width))
        self.built = True

    def call(self, features):
        logits = tf.cast(self.logits(features), "float32")
        c = self.num_components
        tiled = tf.tile(features[:, None, :], [1, c, 1])                       # [B, C, h]
        one_hot = tf.broadcast_to(tf.eye(c, dtype=features.dtype)[None],
                                  tf.concat([tf.shape(features)[:1], [c, c]], 0))
        hidden = tf.concat([tiled, one_hot], axis=-1)                          # [B, C, h + C]
        for layer in self.hidden:
            hidden = layer(hidden)
        loc, scale = self.gaussian(hidden)
        return logits, loc, scale

    def distribution(self, params):
        """q(z|x) = sum_y q(y|x) N(z; m_y, s_y^2): batch [B], event [d]."""
        logits, loc, scale = params
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=logits),
            tfd.Independent(densities.Normal(loc, scale), reinterpreted_batch_ndims=1))

    def sample(self, params, num_samples=None, seed=None):
        """Draws y ~ q(y|x), then z ~ q(z|x, y): [S, B, d] ([B, d] without num_samples)."""
        logits, loc, scale = params
        seeds = priors_lib.draw_seeds(seed)
        count = 1 if num_samples is None else int(num_samples)
        y = tf.transpose(keras.random.categorical(logits, count, seed=seeds))   # [S, B]
        eps = noise.standard_normal(tf.concat([[count], tf.shape(loc)[:1],
                                               tf.shape(loc)[2:]], 0), seed=seeds)
        pick = tf.one_hot(y, self.num_components)[..., None]                    # [S, B, C, 1]
        z = (tf.reduce_sum(pick * loc[None], axis=2)
             + tf.reduce_sum(pick * scale[None], axis=2) * eps)
        return z[0] if num_samples is None else z

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, num_components=self.num_components,
                      component_units=list(self.component_units), min_scale=self.min_scale)
        return config


#: Arguments of `VAE` a GaussianMixtureVAE refuses, and why.
_REFUSED = {key: "clustering is unsupervised: the categorical y is the model's own latent "
                 "(for a label-conditioned model use keras_vae.VAE(num_classes=...))"
            for key in ("num_classes", "condition_shape", "conditional_prior")}


@keras.saving.register_keras_serializable(package="keras_vae")
class GaussianMixtureVAE(VAE):
    r"""A VAE with a categorical latent y and z|y Gaussian (GMVAE), summed over y exactly.

    See the module docstring for the densities and the bound.

    Args:
      num_components: C, the values of y (the clusters).
      latent_dim, event_shape, encoder, decoder, likelihood, beta, warmup_steps, seed:
        as for `keras_vae.VAE` ('vade' is VaDE's 500-500-2000 net, d = 10).
      prior: 'mixture' (or None / 'normal', which mean it here) or a
        `priors.MixtureOfGaussiansPrior` of C components: p(y) p(z|y).
      posterior: 'gmvae' or a `GaussianMixturePosterior` of C components.
      objective: 'elbo' or `objectives.ELBO(num_samples=S)` (S draws per value of y).
      component_units: the hidden widths of q(z|x, y) on [h, one_hot(y)].
      learn_prior_weights: learn p(y) (else uniform).
      **kwargs: `keras.Model`'s (e.g. name); `analytic_kl` is accepted and ignored
        (both KLs are always closed forms).

    Raises:
      ValueError: another objective, DReG, or a prior/posterior of another kind or C.
      TypeError: a conditional model's arguments.

    Example:

    ```python
    model = keras_vae.GaussianMixtureVAE(num_components=10, encoder="vade")
    model.compile(optimizer="adam")
    model.fit(x_train, epochs=10, batch_size=100)
    keras_vae.evaluation.clustering(model, x_test, y_test).accuracy
    ```
    """

    def __init__(self, num_components=10, latent_dim=None, event_shape=(28, 28, 1),
                 encoder="mlp", decoder=None, prior="mixture", likelihood="bernoulli",
                 posterior="gmvae", objective="elbo", component_units=(),
                 learn_prior_weights=True, **kwargs):
        refused = sorted(k for k in set(kwargs) & set(_REFUSED) if kwargs[k] not in (None, False))
        if refused:
            raise TypeError(f"GaussianMixtureVAE does not take {', '.join(refused)}: "
                            f"{_REFUSED[refused[0]]}.")
        for key in _REFUSED:
            kwargs.pop(key, None)
        kwargs.pop("analytic_kl", None)
        self.num_components = int(num_components)
        self.component_units = tuple(int(u) for u in component_units)
        self.learn_prior_weights = bool(learn_prior_weights)
        if latent_dim is None and isinstance(encoder, str):
            latent_dim = names.PRESETS.get(encoder)["latent_dim"]
        if latent_dim is None:
            raise ValueError("latent_dim is required when the encoder is not a preset name.")
        super().__init__(latent_dim=latent_dim, event_shape=event_shape, encoder=encoder,
                         decoder=decoder, prior=self._prior(prior, int(latent_dim)),
                         likelihood=likelihood, posterior=self._head(posterior, int(latent_dim)),
                         objective=objective, analytic_kl=True, **kwargs)
        if type(self.objective) is not objectives_lib.ELBO:
            raise ValueError(f"GaussianMixtureVAE trains the ELBO (its sum over y is inside "
                             f"it); got {self.objective!r}: an importance-weighted bound would "
                             "not train q(y|x). Use objective='elbo' (ELBO(num_samples=S)).")
        if self.gradient_estimator != "standard":
            raise ValueError("GaussianMixtureVAE supports gradient_estimator='standard' only.")

    def _head(self, posterior, latent_dim):
        if isinstance(posterior, dict):  # built by VAE.build, once marked as marginalised
            posterior = keras.saving.deserialize_keras_object(
                {k: v for k, v in posterior.items() if k != "build_config"})
        if posterior in (None, "gmvae", "categorical_gaussian"):
            posterior = GaussianMixturePosterior(latent_dim, self.num_components,
                                                 self.component_units, name="posterior")
        if not isinstance(posterior, GaussianMixturePosterior):
            raise ValueError(f"GaussianMixtureVAE's posterior is 'gmvae', got {posterior!r}.")
        _check_components("posterior", posterior.num_components, self.num_components)
        posterior.marginalised = True
        return posterior

    def _prior(self, prior, latent_dim):
        if isinstance(prior, dict):
            prior = keras.saving.deserialize_keras_object(prior)
        if prior in (None, "normal", "mixture"):
            prior = priors_lib.MixtureOfGaussiansPrior(
                latent_dim, num_components=self.num_components,
                learn_weights=self.learn_prior_weights, name="prior")
        if not isinstance(prior, priors_lib.MixtureOfGaussiansPrior):
            raise ValueError(f"GaussianMixtureVAE's prior p(y) p(z|y) is 'mixture', got "
                             f"{prior!r}.")
        _check_components("prior", prior.num_components, self.num_components)
        return prior

    # ----------------------------------------------------------------- the bound

    def _posterior_draws(self, x, num_samples, training, seed, stop, condition=None):
        """q's (logits, loc, scale) and one reparameterised z per draw and y: [S, B, C, d]."""
        params = self._posterior_params(x, training)
        _, loc, scale = params
        eps = noise.standard_normal(tf.concat([[num_samples], tf.shape(loc)], 0),
                                    seed=self._noise(seed))
        return {"z": loc + scale * eps, "params": params, "stopped": None, "condition": None}

    def _log_joint(self, x, draws, training):
        """`objectives.Terms` [S, B]: the ELBO's parts summed over y, log w = log W_s."""
        z, (logits, loc, scale) = draws["z"], draws["params"]
        log_q_y = tf.nn.log_softmax(logits)                                  # [B, C]
        q_y = tf.exp(log_q_y)
        prior_logits, prior_loc, prior_scale = self.prior.components()
        log_p_y = tf.nn.log_softmax(prior_logits)                            # [C]
        x = tf.cast(x, "float32")
        log_px = self.decode(z, training=training).log_prob(x[:, None])      # [S, B, C]
        log_pz = _diagonal_log_normal(z, prior_loc, prior_scale)             # [S, B, C]
        log_qz = _diagonal_log_normal(z, loc, scale)                         # [S, B, C]
        kl_z = _diagonal_kl(loc, scale, prior_loc, prior_scale)              # [B, C]
        kl = tf.reduce_sum(q_y * (kl_z + log_q_y - log_p_y), axis=-1)        # [B]
        log_likelihood = tf.reduce_sum(q_y * log_px, axis=-1)                # [S, B]
        log_w = tf.reduce_logsumexp(log_px + log_pz + log_p_y - log_qz, axis=-1)
        log_posterior = tf.reduce_sum(q_y * (log_qz + log_q_y), axis=-1)     # log q(z, y|x)
        return objectives_lib.Terms(log_likelihood, log_w - log_likelihood + log_posterior,
                                    log_posterior, None, kl, None)

    # ----------------------------------------------------------------- y and the mean path

    def categorical_log_probs(self, x, batch_size=500):
        """log q(y|x) [N, C], float64 numpy, for images x [N, *event_shape]."""
        x = np.asarray(x)
        self.validate_inputs(x, "x")
        out = [tf.nn.log_softmax(self._posterior_params(
            tf.cast(x[i:i + int(batch_size)], "float32"))[0]).numpy()
            for i in range(0, len(x), int(batch_size))]
        return np.concatenate(out).astype("float64")

    def cluster(self, x, batch_size=500):
        """argmax_y q(y|x): the cluster of each example, int64 [N]."""
        return np.argmax(self.categorical_log_probs(x, batch_size), axis=1).astype("int64")

    def encoder_parameters(self, x, condition=None):
        r"""(mean, std) [B, d] of the mixture q(z|x) (moment-matched; what an export encodes).

        ```none
        mean = sum_y q(y|x) m_y,   std^2 = sum_y q(y|x) (s_y^2 + m_y^2) - mean^2
        ```
        """
        self._condition(condition, "encode")
        logits, loc, scale = self._posterior_params(tf.cast(x, "float32"))
        q_y = tf.nn.softmax(logits)[..., None]
        mean = tf.reduce_sum(q_y * loc, axis=1)
        second = tf.reduce_sum(q_y * (tf.square(scale) + tf.square(loc)), axis=1)
        return mean, tf.sqrt(tf.maximum(second - tf.square(mean), 1e-12))

    def call(self, x, training=False):
        """The reconstruction mean E p(x | z = E q(z|x))."""
        return self.likelihood.mean(self._likelihood_outputs(
            self._posterior_mean(x, training), training))

    def _posterior_mean(self, x, training=False):
        logits, loc, _ = self._posterior_params(tf.cast(x, "float32"), training)
        return tf.reduce_sum(tf.nn.softmax(logits)[..., None] * loc, axis=1)

    def reconstruct(self, x, sample=False, seed=None, labels=None):
        """Decodes E q(z|x) (or, with sample=True, y ~ q(y|x) then z ~ q(z|x, y))."""
        self.validate_inputs(x, "x")
        self._condition(labels, "reconstruct", np.shape(x)[0])
        x = tf.cast(x, "float32")
        z = (self.posterior.sample(self._posterior_params(x), seed=self._seed(seed)) if sample
             else self._posterior_mean(x))
        return self.likelihood.mean(self._likelihood_outputs(z))

    def _config(self):
        config = super()._config()
        config.pop("analytic_kl", None)
        return {**config, "num_components": self.num_components,
                "component_units": list(self.component_units),
                "learn_prior_weights": self.learn_prior_weights}


GaussianMixturePosterior.model_class = GaussianMixtureVAE


def _check_components(what, got, want):
    if int(got) != int(want):
        raise ValueError(f"the {what} has {got} components, the model num_components={want}.")


def _diagonal_log_normal(z, loc, scale):
    """sum_j log N(z_j; loc_j, scale_j^2) over the last axis (broadcasting)."""
    return -tf.reduce_sum(0.5 * tf.square((z - loc) / scale) + tf.math.log(scale)
                          + 0.5 * math.log(2.0 * math.pi), axis=-1)


def _diagonal_kl(loc_q, scale_q, loc_p, scale_p):
    """KL(N(loc_q, scale_q^2) || N(loc_p, scale_p^2)) summed over the last axis."""
    ratio = tf.square(scale_q / scale_p)
    return 0.5 * tf.reduce_sum(ratio + tf.square((loc_q - loc_p) / scale_p) - 1.0
                               - tf.math.log(ratio), axis=-1)


__all__ = ["GaussianMixturePosterior", "GaussianMixtureVAE"]
