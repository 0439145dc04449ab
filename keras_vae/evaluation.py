r"""Evaluation of a VAE the way the literature measures it.

Every function takes any `keras_vae.VAE` (any encoder, decoder, prior,
likelihood) and a data set: an array [N, *event_shape] or a `tf.data.Dataset`
of batches. All of them draw z ~ q(z|x) through `model.compute_terms`, whose
log-weights are

```none
log w_s(x) = log p(x|z_s) + log p(z_s) - log q(z_s|x),     z_s ~ q(z|x), s = 1..k.
```

Log-likelihood by importance sampling (Burda et al., 2016):

```none
log p(x) ~= log (1/k) sum_s w_s = logsumexp_s(log w_s) - log k        (= IWAE_k)
```

a lower bound in expectation that tends to log p(x) as k grows. `log_likelihood`
streams the k samples in chunks of `chunk_size`, keeping only a running
logsumexp per example, so memory is O(batch_size * chunk_size), whatever k.

Effective sample size of the normalised weights w~_s = w_s / sum_t w_t (Kong, 1992):

```none
ESS = 1 / sum_s w~_s^2 = (sum_s w_s)^2 / sum_s w_s^2    in [1, k]
```

k exactly when q(z|x) is the true posterior (all w_s = p(x)); near 1 when one
sample dominates. It is streamed too (a running logsumexp of 2 log w).

Active units (Burda et al., 2016): unit u is active if

```none
A_u = Cov_x( E_{q(z|x)}[z_u] ) > 0.01.
```

Gradient signal-to-noise ratio (Rainforth et al., 2018) of a parameter theta:

```none
SNR(theta) = |E[Delta(theta)]| / std[Delta(theta)]
```

over repeated gradient estimates Delta of the objective on one fixed batch. For
IWAE_k the encoder's SNR falls like O(1/sqrt(k)) and the decoder's rises like
O(sqrt(k)).

`evaluate_model` computes all of it and writes a JSON report with the protocol.

References:
  Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  T. Rainforth, A. Kosiorek, T. A. Le, C. Maddison, M. Igl, F. Wood, Y. W. Teh.
    Tighter Variational Bounds are Not Necessarily Better. ICML 2018.
  A. Kong. A note on importance sampling using standardized weights. Tech. rep. 348,
    University of Chicago, 1992.
"""

import dataclasses
import datetime
import json
import math
import pathlib
import time
import warnings

import numpy as np

from keras_vae import objectives as objectives_lib
from keras_vae._backend import keras, tf, tfp

#: Burda et al.'s threshold on Cov_x(E_q[z_u|x]).
ACTIVE_UNIT_THRESHOLD = 0.01

#: Mean KL(q(z|x) || p(z)) below this many nats counts as posterior collapse.
COLLAPSE_KL_THRESHOLD = 0.01


class PosteriorCollapseWarning(UserWarning):
    """No latent unit is active, or the KL term is about 0: q(z|x) ignores x."""


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class LogLikelihood:
    """Importance-sampled log p(x) per example, with the ESS of the same weights.

    Attributes:
      values: log p(x) estimates, float64 [N] (nats).
      ess: effective sample sizes of the normalised weights, float64 [N].
      k: importance samples per example.
      mean: the mean of `values`.
      standard_error: std(values, ddof=1) / sqrt(N), the spread over examples.
    """

    values: np.ndarray
    ess: np.ndarray
    k: int

    @property
    def mean(self):
        return float(np.mean(self.values))

    @property
    def standard_error(self):
        return _standard_error(self.values)

    @property
    def nll(self):
        """The negative log-likelihood, the number papers report (nats)."""
        return -self.mean

    def summary(self):
        return {"mean": self.mean, "standard_error": self.standard_error, "nll": self.nll,
                "k": self.k, "num_examples": int(len(self.values))}


@dataclasses.dataclass
class EffectiveSampleSize:
    """ESS = 1 / sum w~^2 per example, and summaries."""

    values: np.ndarray
    k: int

    @property
    def mean(self):
        return float(np.mean(self.values))

    def summary(self):
        return {"mean": self.mean, "min": float(np.min(self.values)),
                "max": float(np.max(self.values)), "mean_fraction": self.mean / self.k,
                "k": self.k, "num_examples": int(len(self.values))}


@dataclasses.dataclass
class Bounds:
    """Per-example bounds over a data set, with k samples per example (nats).

    elbo = reconstruction - kl; kl is analytic where TFP registers it (and the
    model's analytic_kl is on), else the Monte-Carlo mean of log q - log p;
    iwae = logsumexp(log w) - log k over the same samples.
    """

    elbo: np.ndarray
    iwae: np.ndarray
    kl: np.ndarray
    reconstruction: np.ndarray
    k: int

    def summary(self):
        out = {"k": self.k, "num_examples": int(len(self.elbo))}
        for name in ("elbo", "iwae", "kl", "reconstruction"):
            values = getattr(self, name)
            key = f"iwae_{self.k}" if name == "iwae" else name
            out[key] = float(np.mean(values))
            out[f"{key}_standard_error"] = _standard_error(values)
        return out


@dataclasses.dataclass
class ActiveUnits:
    """Burda et al.'s active units: A_u = Var_x(E_q[z_u|x]) > threshold."""

    variances: np.ndarray
    threshold: float = ACTIVE_UNIT_THRESHOLD

    @property
    def active(self):
        """Boolean mask [d] of the active units."""
        return self.variances > self.threshold

    @property
    def count(self):
        return int(np.sum(self.active))

    def summary(self):
        return {"count": self.count, "latent_dim": int(len(self.variances)),
                "threshold": self.threshold, "variances": [float(v) for v in self.variances]}


@dataclasses.dataclass
class GradientSNR:
    """Per-parameter SNR |mean| / std of repeated gradient estimates, encoder and decoder.

    `encoder` / `decoder` are the means over the scalar parameters whose
    estimates vary (std > 0); the arrays hold every scalar parameter (NaN where
    the std is 0).
    """

    encoder_values: np.ndarray
    decoder_values: np.ndarray
    num_estimates: int
    objective: str

    @property
    def encoder(self):
        return _finite_mean(self.encoder_values)

    @property
    def decoder(self):
        return _finite_mean(self.decoder_values)

    def summary(self):
        return {
            "objective": self.objective, "num_estimates": self.num_estimates,
            "encoder_mean": self.encoder, "decoder_mean": self.decoder,
            "encoder_median": _finite_median(self.encoder_values),
            "decoder_median": _finite_median(self.decoder_values),
            "encoder_parameters": int(self.encoder_values.size),
            "decoder_parameters": int(self.decoder_values.size),
        }


# --------------------------------------------------------------------------- streaming core


class _Streamed:
    """Per-example running sums over k importance samples, chunk by chunk."""

    def __init__(self):
        self.lse = []  # logsumexp_s log w_s
        self.lse2 = []  # logsumexp_s 2 log w_s
        self.sum_log_likelihood = []
        self.sum_kl = []  # sum_s (log q - log p), or k * analytic KL


def _stream(model, data, k, batch_size, chunk_size, seed, verbose, label):
    """Runs the model over `data` with k samples per example in chunks; float64 sums [N].

    Memory holds one chunk: [chunk_size, batch_size, *event_shape] tensors.
    """
    k, chunk_size = int(k), int(chunk_size)
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    chunk_size = min(chunk_size, k)
    seed_generator = keras.random.SeedGenerator(seed)

    @tf.function(reduce_retracing=True)
    def chunk(x, num_samples):
        terms = model.compute_terms(x, num_samples=num_samples, training=False,
                                    seed=seed_generator)
        log_w = terms.log_weights()
        if terms.kl is not None:
            kl = tf.cast(num_samples, "float32") * terms.kl
        else:
            kl = tf.reduce_sum(terms.log_posterior - terms.log_prior, axis=0)
        return (tf.reduce_logsumexp(log_w, axis=0), tf.reduce_logsumexp(2.0 * log_w, axis=0),
                tf.reduce_sum(terms.log_likelihood, axis=0), kl)

    out = _Streamed()
    batches = _batches(model, data, batch_size)
    progbar = keras.utils.Progbar(_length(data), unit_name="example") if verbose else None
    done = 0
    for x in batches:
        n = int(x.shape[0])
        lse = np.full(n, -np.inf)
        lse2 = np.full(n, -np.inf)
        sum_ll = np.zeros(n)
        sum_kl = np.zeros(n)
        remaining = k
        while remaining > 0:
            size = min(chunk_size, remaining)
            c_lse, c_lse2, c_ll, c_kl = (t.numpy().astype("float64") for t in chunk(x, size))
            lse = np.logaddexp(lse, c_lse)
            lse2 = np.logaddexp(lse2, c_lse2)
            sum_ll += c_ll
            sum_kl += c_kl
            remaining -= size
        out.lse.append(lse)
        out.lse2.append(lse2)
        out.sum_log_likelihood.append(sum_ll)
        out.sum_kl.append(sum_kl)
        done += n
        if progbar is not None:
            progbar.update(done)
    if not out.lse:
        raise ValueError(f"{label}: the data set is empty.")
    return {name: np.concatenate(getattr(out, name))
            for name in ("lse", "lse2", "sum_log_likelihood", "sum_kl")}


def _batches(model, data, batch_size):
    """Yields float32 tensors [B, *event_shape] from an array or a tf.data.Dataset."""
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if isinstance(data, tf.data.Dataset):
        first = True
        for batch in data:
            x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if first:
                model.validate_inputs(x.numpy(), "the first batch of data")
                first = False
            yield tf.cast(x, "float32")
        return
    if isinstance(data, (tuple, list)) and len(data) and hasattr(data[0], "shape"):
        data = data[0]
    array = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    model.validate_inputs(array, "data")
    array = array.astype("float32", copy=False)
    for start in range(0, len(array), int(batch_size)):
        yield tf.constant(array[start:start + int(batch_size)])


def _length(data):
    if isinstance(data, tf.data.Dataset):
        return None
    if isinstance(data, (tuple, list)) and len(data) and hasattr(data[0], "shape"):
        data = data[0]
    return len(data)


def _standard_error(values):
    values = np.asarray(values, "float64")
    if len(values) < 2:
        return float("nan")
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def _finite_mean(values):
    values = values[np.isfinite(values)]
    return float(np.mean(values)) if values.size else float("nan")


def _finite_median(values):
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


# --------------------------------------------------------------------------- measures


def log_likelihood(model, data, k=5000, batch_size=20, chunk_size=500, seed=0, verbose=0):
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

    Returns:
      A `LogLikelihood` with `.values` [N], `.mean`, `.standard_error`, `.nll`,
      `.ess` [N].
    """
    sums = _stream(model, data, k, batch_size, chunk_size, seed, verbose, "log_likelihood")
    values = sums["lse"] - math.log(int(k))
    ess = np.exp(2.0 * sums["lse"] - sums["lse2"])
    return LogLikelihood(values=values, ess=ess, k=int(k))


def effective_sample_size(model, data, k=100, batch_size=100, chunk_size=500, seed=0,
                          verbose=0):
    r"""ESS of the normalised importance weights per example: 1 / sum_s w~_s^2.

    ```none
    w~_s = w_s / sum_t w_t,   ESS = 1 / sum_s w~_s^2 = exp(2 logsumexp(log w) - logsumexp(2 log w))
    ```

    ESS = k when q(z|x) is the exact posterior, and falls towards 1 as q and
    the posterior part (Kong, 1992). Streamed in chunks like `log_likelihood`.

    Returns:
      An `EffectiveSampleSize` with `.values` [N], `.mean`.
    """
    sums = _stream(model, data, k, batch_size, chunk_size, seed, verbose,
                   "effective_sample_size")
    return EffectiveSampleSize(values=np.exp(2.0 * sums["lse"] - sums["lse2"]), k=int(k))


def bounds(model, data, k=None, batch_size=100, chunk_size=100, seed=0, verbose=0):
    r"""ELBO, IWAE_k, KL and reconstruction per example over a data set.

    ```none
    reconstruction = (1/k) sum_s log p(x|z_s)
    KL             = KL(q(z|x) || p(z))  (analytic), or (1/k) sum_s log q(z_s|x) - log p(z_s)
    ELBO           = reconstruction - KL
    IWAE_k         = logsumexp_s(log w_s) - log k
    ```

    Args:
      k: samples per example; defaults to the model objective's number of samples.

    Returns:
      A `Bounds` with [N] arrays and `.summary()`.
    """
    k = int(k or model.objective.num_samples)
    sums = _stream(model, data, k, batch_size, chunk_size, seed, verbose, "bounds")
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
    for x in _batches(model, data, batch_size):
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
    gradient_estimator = gradient_estimator or model.gradient_estimator
    if gradient_estimator not in ("standard", "dreg"):
        raise ValueError(
            f"gradient_estimator must be 'standard' or 'dreg', got {gradient_estimator!r}."
        )
    dreg = gradient_estimator == "dreg"
    if int(num_estimates) < 2:
        raise ValueError(f"num_estimates must be >= 2, got {num_estimates!r}.")
    model.validate_inputs(x, "x")
    x = tf.constant(np.asarray(x, "float32"))
    on_encoder = model._split_variables()
    variables = model.trainable_variables
    encoder_vars = [v for v, e in zip(variables, on_encoder) if e]
    decoder_vars = [v for v, e in zip(variables, on_encoder) if not e]
    seed_generator = keras.random.SeedGenerator(seed)

    @tf.function
    def estimate():
        with tf.GradientTape(persistent=True) as tape:
            terms = model.compute_terms(x, num_samples=objective.num_samples, training=False,
                                        seed=seed_generator)
            decoder_value, encoder_value = objective.surrogates(terms, 1.0, dreg=dreg)
            decoder_value = tf.reduce_mean(decoder_value)
            encoder_value = tf.reduce_mean(encoder_value)
        flat = []
        for value, group in ((encoder_value, encoder_vars), (decoder_value, decoder_vars)):
            grads = tape.gradient(value, group, unconnected_gradients="zero")
            flat.append(tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)
                        if grads else tf.zeros([0]))
        del tape
        return flat

    encoder_grads, decoder_grads = [], []
    # compute_terms adds DReG's stopped log q only for a 'dreg' model: switch it
    # for the duration of this measurement when asked to.
    model_estimator = model.gradient_estimator
    model.gradient_estimator = "dreg" if dreg else "standard"
    progbar = keras.utils.Progbar(int(num_estimates), unit_name="estimate") if verbose else None
    try:
        for r in range(int(num_estimates)):
            g_enc, g_dec = estimate()
            encoder_grads.append(g_enc.numpy().astype("float64"))
            decoder_grads.append(g_dec.numpy().astype("float64"))
            if progbar is not None:
                progbar.update(r + 1)
    finally:
        model.gradient_estimator = model_estimator

    def snr(grads):
        grads = np.stack(grads)
        mean, std = np.abs(grads.mean(axis=0)), grads.std(axis=0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(std > 0, mean / std, np.nan)

    return GradientSNR(encoder_values=snr(encoder_grads), decoder_values=snr(decoder_grads),
                       num_estimates=int(num_estimates), objective=repr(objective))


def check_posterior_collapse(active, mean_kl, kl_threshold=COLLAPSE_KL_THRESHOLD):
    """Warns (PosteriorCollapseWarning) if no unit is active or the mean KL is about 0.

    Args:
      active: an `ActiveUnits` (or the count of active units).
      mean_kl: the mean KL(q(z|x) || p(z)) over the data, in nats.

    Returns:
      The warning's message, or None when the posterior is not collapsed.
    """
    count = active.count if isinstance(active, ActiveUnits) else int(active)
    reasons = []
    if count == 0:
        reasons.append("no latent unit is active (Cov_x(E_q[z_u|x]) <= "
                       f"{getattr(active, 'threshold', ACTIVE_UNIT_THRESHOLD)} for every u)")
    if mean_kl is not None and float(mean_kl) < kl_threshold:
        reasons.append(f"the mean KL(q(z|x) || p(z)) is {float(mean_kl):.3g} nats "
                       f"(< {kl_threshold})")
    if not reasons:
        return None
    message = ("keras_vae: posterior collapse: " + " and ".join(reasons) + ". The encoder "
               "ignores x; try KL warm-up (warmup_steps), free bits, a weaker decoder, or "
               "IWAE.")
    warnings.warn(message, PosteriorCollapseWarning, stacklevel=2)
    return message


# --------------------------------------------------------------------------- the report


def evaluate_model(model, x, k=5000, seed=0, batch_size=20, chunk_size=500, bound_k=None,
                   snr_batch_size=20, snr_estimates=32, report_path=None, protocol=None,
                   include_per_example=False, verbose=1):
    r"""Measures a model on a data set and writes a JSON report of every figure.

    Computes: the importance-sampled log-likelihood with k samples (mean,
    standard error, NLL) and the ESS of its weights; the bounds ELBO, IWAE_bound_k,
    KL, reconstruction; the active units; the gradient SNR of encoder and
    decoder under the model's objective on the first `snr_batch_size` examples;
    and a posterior-collapse check (a `PosteriorCollapseWarning` when no unit is
    active or the KL is about 0).

    Args:
      model: a `keras_vae.VAE`.
      x: the evaluation images [N, *event_shape] (e.g. the binarised test set).
      k: importance samples for the log-likelihood (Burda et al.: 5000).
      seed: int seed of every draw.
      batch_size, chunk_size: see `log_likelihood`.
      bound_k: samples for the bounds; defaults to the objective's (at least 1).
      snr_batch_size, snr_estimates: the SNR's batch and number of estimates
        (0 estimates skips it).
      report_path: where to write the JSON report (None: not written).
      protocol: a dict describing the data (e.g. `keras_vae.data.load(...).protocol`:
        binarisation seed, split); stored in the report as is.
      include_per_example: also store per-example log-likelihoods and ESS.
      verbose: 0 silent, 1 progress bars and a line per stage.

    Returns:
      The report as a dict (what the JSON file holds), with the keys
      'log_likelihood', 'bounds', 'effective_sample_size', 'active_units',
      'gradient_snr' (None when skipped), 'posterior_collapse' ({'collapsed',
      'message', 'active_units', 'mean_kl', 'kl_threshold'}), 'protocol' (k, seeds,
      batch and chunk sizes, the data protocol, the model config), 'versions',
      'created', 'elapsed_s' (and 'per_example' on request).
    """
    x = np.asarray(x)
    model.validate_inputs(x, "x")
    started = time.time()
    say = print if verbose else (lambda *args, **kwargs: None)

    say(f"keras_vae.evaluation: log p(x) with k={k} on {len(x)} examples")
    ll = log_likelihood(model, x, k=k, batch_size=batch_size, chunk_size=chunk_size,
                        seed=seed, verbose=verbose)
    bound_k = int(bound_k or model.objective.num_samples)
    say(f"keras_vae.evaluation: bounds with k={bound_k}")
    bnds = bounds(model, x, k=bound_k, batch_size=batch_size, chunk_size=chunk_size,
                  seed=seed + 1, verbose=verbose)
    au = active_units(model, x)
    ess = EffectiveSampleSize(values=ll.ess, k=ll.k)
    snr = None
    if snr_estimates:
        say(f"keras_vae.evaluation: gradient SNR over {snr_estimates} estimates")
        snr = gradient_snr(model, x[:snr_batch_size], num_estimates=snr_estimates,
                           seed=seed + 2, verbose=verbose)
    mean_kl = float(np.mean(bnds.kl))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PosteriorCollapseWarning)
        collapse = check_posterior_collapse(au, mean_kl)
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=2)

    report = {
        "log_likelihood": ll.summary(),
        "bounds": bnds.summary(),
        "effective_sample_size": ess.summary(),
        "active_units": au.summary(),
        "gradient_snr": None if snr is None else snr.summary(),
        "posterior_collapse": {"collapsed": collapse is not None, "message": collapse,
                               "active_units": au.count, "mean_kl": mean_kl,
                               "kl_threshold": COLLAPSE_KL_THRESHOLD},
        "protocol": {
            "k": int(k),
            "bound_k": bound_k,
            "seed": int(seed),
            "batch_size": int(batch_size),
            "chunk_size": int(chunk_size),
            "num_examples": int(len(x)),
            "snr_batch_size": int(min(snr_batch_size, len(x))) if snr else None,
            "snr_estimates": int(snr_estimates) if snr else None,
            "active_unit_threshold": au.threshold,
            "data": dict(protocol or {}),
            "model_config": _jsonable(model.get_config()),
        },
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": None,
    }
    if include_per_example:
        report["per_example"] = {"log_likelihood": ll.values.tolist(), "ess": ll.ess.tolist()}
    report["elapsed_s"] = round(time.time() - started, 3)
    if report_path is not None:
        path = pathlib.Path(report_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
        say(f"keras_vae.evaluation: report written to {path}")
    say(f"keras_vae.evaluation: NLL {ll.nll:.3f} +- {ll.standard_error:.3f} nats "
        f"(k={k}), active units {au.count}/{len(au.variances)}, "
        f"ESS {ess.mean:.1f}/{k}")
    return report


def _jsonable(value):
    """A JSON-safe copy of a (Keras) config: tuples to lists, numpy to Python, else str."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _versions():
    import keras_vae

    return {"keras_vae": getattr(keras_vae, "__version__", None), "keras": keras.__version__,
            "tensorflow": tf.__version__, "tensorflow_probability": tfp.__version__,
            "numpy": np.__version__}


__all__ = [
    "log_likelihood", "effective_sample_size", "bounds", "active_units", "gradient_snr",
    "check_posterior_collapse", "evaluate_model", "LogLikelihood", "EffectiveSampleSize",
    "Bounds", "ActiveUnits", "GradientSNR", "PosteriorCollapseWarning",
    "ACTIVE_UNIT_THRESHOLD", "COLLAPSE_KL_THRESHOLD",
]
