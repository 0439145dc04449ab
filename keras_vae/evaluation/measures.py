r"""The measures of `keras_vae.evaluation`: log-likelihood, ESS, bounds, active units, SNR.

Each takes a `keras_vae.VAE` and data (an array [N, *event_shape] or a
`tf.data.Dataset`) and returns one of the dataclasses of `results`; the maths is in
the package docstring (`keras_vae.evaluation`).
"""

import math

import numpy as np

from keras_vae import names
from keras_vae import objectives as objectives_lib
from keras_vae import training
from keras_vae._backend import keras, tf
from keras_vae.evaluation import streaming
from keras_vae.evaluation.results import (
    ACTIVE_UNIT_THRESHOLD, ActiveUnits, Bounds, EffectiveSampleSize, GradientSNR, LogLikelihood,
)


def log_likelihood(model, data, k=5000, batch_size=20, chunk_size=500, seed=0, verbose=0,
                   labels=None):
    r"""Importance-sampled log p(x) per example, with q(z|x) as the proposal.

    ```none
    log p^(x) = log (1/k) sum_{s=1..k} p(x|z_s) p(z_s) / q(z_s|x),   z_s ~ q(z|x)
    ```

    Burda et al.'s test log-likelihood (k = 5000). The k samples are drawn in
    chunks of `chunk_size` and combined by a running logsumexp, so peak memory
    depends on batch_size * chunk_size * prod(event_shape), not on k. The same
    pass gives the effective sample size of the weights (`.ess`).

    Args:
      model: a `keras_vae.VAE`.
      data: an array [N, *event_shape] (checked against the model), or a
        `tf.data.Dataset` of batches x / (x, y).
      k: importance samples per example.
      batch_size: examples per forward pass (arrays only).
      chunk_size: samples per example per forward pass.
      seed: int seed of the draws (the same seed gives the same estimate).
      verbose: show a progress bar.
      labels: a conditional model's labels (or condition vectors), one per example:
        the estimate is then log p(x|y), with q(z|x, y) as the proposal.

    Returns:
      A `LogLikelihood` with `.values` [N], `.mean`, `.standard_error`, `.nll`,
      `.ess` [N].
    """
    sums = streaming.stream(model, data, k, batch_size, chunk_size, seed, verbose, "log_likelihood",
                            labels=labels)
    return LogLikelihood(values=sums["lse"] - math.log(int(k)), ess=_ess(sums), k=int(k))


def effective_sample_size(model, data, k=100, batch_size=100, chunk_size=500, seed=0,
                          verbose=0, labels=None):
    r"""ESS of the normalised importance weights per example: 1 / sum_s w~_s^2.

    ```none
    w~_s = w_s / sum_t w_t,   ESS = 1 / sum_s w~_s^2 = exp(2 logsumexp(log w) - logsumexp(2 log w))
    ```

    ESS = k when q(z|x) is the exact posterior, and falls towards 1 as q and
    the posterior part (Kong, 1992). Streamed in chunks like `log_likelihood`
    (`labels` as there).

    Returns:
      An `EffectiveSampleSize` with `.values` [N], `.mean`.
    """
    sums = streaming.stream(model, data, k, batch_size, chunk_size, seed, verbose,
                             "effective_sample_size", labels=labels)
    return EffectiveSampleSize(values=_ess(sums), k=int(k))


def bounds(model, data, k=None, batch_size=100, chunk_size=100, seed=0, verbose=0, labels=None):
    r"""ELBO, IWAE_k, KL and reconstruction per example over a data set.

    ```none
    reconstruction = (1/k) sum_s log p(x|z_s)
    KL             = KL(q(z|x) || p(z))  (analytic), or (1/k) sum_s log q(z_s|x) - log p(z_s)
    ELBO           = reconstruction - KL
    IWAE_k         = logsumexp_s(log w_s) - log k
    ```

    Args:
      k: samples per example; defaults to the model objective's number of samples.
      labels: a conditional model's labels, one per example (the bounds of log p(x|y)).

    Returns:
      A `Bounds` with [N] arrays and `.summary()`.
    """
    k = int(k or model.objective.num_samples)
    sums = streaming.stream(model, data, k, batch_size, chunk_size, seed, verbose, "bounds",
                            labels=labels)
    reconstruction = sums["sum_log_likelihood"] / k
    kl = sums["sum_kl"] / k
    return Bounds(elbo=reconstruction - kl, iwae=sums["lse"] - math.log(k), kl=kl,
                  reconstruction=reconstruction, k=k)


def active_units(model, data, threshold=ACTIVE_UNIT_THRESHOLD, batch_size=500):
    r"""Burda et al.'s active units: A_u = Cov_x(E_{q(z|x)}[z_u]) > threshold.

    The posterior mean of each unit is computed for every example; a unit whose
    mean hardly moves with x (variance over the data <= threshold, 0.01 by
    default) carries no information about x: it is 'inactive' (collapsed).

    Returns:
      An `ActiveUnits` with `.variances` [d], `.active` [d], `.count`.
    """
    means = []
    for x in streaming.batches(model, data, batch_size):
        means.append(model.encode(x).mean().numpy().astype("float64"))
    if not means:
        raise ValueError("active_units: the data set is empty.")
    means = np.concatenate(means)
    return ActiveUnits(variances=np.var(means, axis=0), threshold=float(threshold))


def gradient_snr(model, x, objective=None, num_estimates=100, seed=0, gradient_estimator=None,
                 verbose=0):
    r"""Gradient signal-to-noise ratio of the encoder and decoder parameters.

    Rainforth et al. (2018): for every scalar parameter theta, R independent
    gradient estimates Delta_r of the objective on the same batch x give

    ```none
    SNR(theta) = |mean_r Delta_r(theta)| / std_r Delta_r(theta).
    ```

    Encoder-side parameters are those of `model.encoder` and `model.posterior`
    (they get the encoder surrogate's gradient: MIWAE for PIWAE, DReG's with
    gradient_estimator='dreg'); all others (decoder, likelihood, prior) are
    decoder-side. For IWAE_k, the encoder's SNR falls like O(1/sqrt(k)) and the
    decoder's rises like O(sqrt(k)).

    Args:
      model: a `keras_vae.VAE`.
      x: one batch [B, *event_shape].
      objective: an `keras_vae.objectives.Objective` or a name; defaults to the model's.
      num_estimates: R, independent gradient estimates.
      seed: int seed of the draws.
      gradient_estimator: 'standard' or 'dreg'; defaults to the model's.
      verbose: show a progress bar over the estimates.

    Returns:
      A `GradientSNR` with `.encoder`, `.decoder` (means over parameters) and
      per-parameter arrays.
    """
    objective = objectives_lib.get(objective) if objective is not None else model.objective
    gradient_estimator = names.GRADIENT_ESTIMATORS.canonical(
        gradient_estimator or model.gradient_estimator)
    if int(num_estimates) < 2:
        raise ValueError(f"num_estimates must be >= 2, got {num_estimates!r}.")
    model.validate_inputs(x, "x")
    x = tf.constant(np.asarray(x, "float32"))
    encoder_grads, decoder_grads = _gradient_estimates(
        model, x, objective, int(num_estimates), seed, gradient_estimator, verbose)
    return GradientSNR(encoder_values=_snr(encoder_grads), decoder_values=_snr(decoder_grads),
                       num_estimates=int(num_estimates), objective=repr(objective))


def _gradient_estimates(model, x, objective, num_estimates, seed, gradient_estimator, verbose):
    """[R, P] float64 gradient estimates of the encoder- and decoder-side parameters."""
    on_encoder = training.encoder_mask(model)
    variables = model.trainable_variables
    encoder_vars = [v for v, e in zip(variables, on_encoder) if e]
    decoder_vars = [v for v, e in zip(variables, on_encoder) if not e]
    estimate = _estimator(model, x, objective, keras.random.SeedGenerator(seed),
                          gradient_estimator, (encoder_vars, decoder_vars))
    encoder_grads, decoder_grads = [], []
    progbar = keras.utils.Progbar(num_estimates, unit_name="estimate") if verbose else None
    for r in range(num_estimates):
        g_enc, g_dec = estimate()
        encoder_grads.append(g_enc.numpy().astype("float64"))
        decoder_grads.append(g_dec.numpy().astype("float64"))
        if progbar is not None:
            progbar.update(r + 1)
    return np.stack(encoder_grads), np.stack(decoder_grads)


def _estimator(model, x, objective, seed_generator, gradient_estimator, groups):
    """A tf.function () -> (encoder gradients, decoder gradients), each flat [P].

    The estimator is an argument of `compute_terms` (as in TFP's
    `monte_carlo_variational_loss`): the model is never changed.
    """
    dreg = gradient_estimator == "dreg"

    @tf.function
    def estimate():
        with tf.GradientTape(persistent=True) as tape:
            terms = model.compute_terms(x, num_samples=objective.num_samples, training=False,
                                        seed=seed_generator,
                                        gradient_estimator=gradient_estimator)
            decoder_value, encoder_value = objective.surrogates(terms, 1.0, dreg=dreg)
            decoder_value = tf.reduce_mean(decoder_value)
            encoder_value = tf.reduce_mean(encoder_value)
        flat = []
        for value, group in zip((encoder_value, decoder_value), groups):
            grads = tape.gradient(value, group, unconnected_gradients="zero")
            flat.append(tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)
                        if grads else tf.zeros([0]))
        del tape
        return flat

    return estimate


def _snr(grads):
    """|mean| / std over the estimates (axis 0), NaN where the std is 0."""
    mean, std = np.abs(grads.mean(axis=0)), grads.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, mean / std, np.nan)


def _ess(sums):
    """ESS = exp(2 logsumexp(log w) - logsumexp(2 log w)) per example."""
    return np.exp(2.0 * sums["lse"] - sums["lse2"])


__all__ = [
    "log_likelihood", "effective_sample_size", "bounds", "active_units", "gradient_snr",
]
