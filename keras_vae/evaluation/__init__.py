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

Annealed importance sampling (`ais`: `ais_log_likelihood`, HMC on a geometric path from
the prior to p(x, z)) and its bidirectional check on simulated data (`bdmc`: `bdmc_gap`,
the reverse-AIS upper bound; Grosse et al., 2015; Wu et al., 2017).

Modules: `results` (what the measures return), `streaming` (k samples in chunks),
`measures` (the functions above), `report` (`evaluate_model`, the collapse check),
`clustering` (mixture-prior clusters, k-means baselines; `matching`, `kmeans`),
`probe` (`linear_probe`: a logistic regression on the latent means, PCA, pixels).

References:
  Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
  T. Rainforth, A. Kosiorek, T. A. Le, C. Maddison, M. Igl, F. Wood, Y. W. Teh.
    Tighter Variational Bounds are Not Necessarily Better. ICML 2018.
  A. Kong. A note on importance sampling using standardized weights. Tech. rep. 348,
    University of Chicago, 1992.
"""

from keras_vae.evaluation.ais import AISEstimate, ais_log_likelihood
from keras_vae.evaluation.bdmc import BDMCGap, bdmc_gap, reverse_ais
from keras_vae.evaluation.measures import (
    active_units, bounds, effective_sample_size, gradient_snr, log_likelihood,
)
from keras_vae.evaluation.report import (
    COLLAPSE_KL_THRESHOLD, PosteriorCollapseWarning, check_posterior_collapse, evaluate_model,
)
from keras_vae.evaluation.results import (
    ACTIVE_UNIT_THRESHOLD, ActiveUnits, Bounds, EffectiveSampleSize, GradientSNR, LogLikelihood,
)
# Clustering and features (issue 13): `clustering` is the module, callable as
# clustering(model, x, labels); `linear_probe` the probe.
from keras_vae.evaluation import clustering  # noqa: E402
from keras_vae.evaluation.clustering import ClusteringResult  # noqa: E402
from keras_vae.evaluation.probe import ProbeResult, linear_probe  # noqa: E402

__all__ = [
    "log_likelihood", "effective_sample_size", "bounds", "active_units", "gradient_snr",
    "check_posterior_collapse", "evaluate_model", "LogLikelihood", "EffectiveSampleSize",
    "Bounds", "ActiveUnits", "GradientSNR", "PosteriorCollapseWarning",
    "ACTIVE_UNIT_THRESHOLD", "COLLAPSE_KL_THRESHOLD",
    "ais_log_likelihood", "reverse_ais", "bdmc_gap", "AISEstimate", "BDMCGap",
    "clustering", "ClusteringResult", "linear_probe", "ProbeResult",
]
