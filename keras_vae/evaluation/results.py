r"""What the measures of `keras_vae.evaluation` return: one dataclass per measure.

Each holds the per-example (or per-unit, per-parameter) values as float64 arrays
and gives `summary()`, the dict of plain numbers that reports and the CLI print.
"""

import dataclasses
import math

import numpy as np

#: Burda et al.'s threshold on Cov_x(E_q[z_u|x]).
ACTIVE_UNIT_THRESHOLD = 0.01


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


def bits_per_dim(nll, num_dims):
    r"""The NLL in bits per dimension, the unit of 8-bit image models.

    ```none
    bits/dim = NLL / (D ln 2)        NLL in nats per example, D values per example
    ```

    Example: an NLL of 784 ln 2 nats on 28 x 28 images is 1 bit/dim; the uniform
    model of 8-bit pixels has 8.

    Args:
      nll: the negative log-likelihood per example, in nats.
      num_dims: D, the number of values in one example (e.g. 28 * 28 * 1).

    Returns:
      A float.

    Raises:
      ValueError: `num_dims` < 1.
    """
    if int(num_dims) < 1:
        raise ValueError(f"num_dims must be >= 1, got {num_dims!r}.")
    return float(nll) / (int(num_dims) * math.log(2.0))


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


__all__ = [
    "LogLikelihood", "EffectiveSampleSize", "Bounds", "ActiveUnits", "GradientSNR",
    "ACTIVE_UNIT_THRESHOLD", "bits_per_dim",
]
