r"""Bidirectional Monte Carlo (BDMC): AIS lower and reverse-AIS upper bounds on simulated data.

```none
z* ~ p(z),  x ~ p(x|z*)                      then z* is an exact sample of p(z|x)
lower = AIS from p_0 to p(z|x)               E[lower] <= log p(x)
upper = reverse AIS from z* back to p_0      E[upper] >= log p(x)
gap   = upper - lower >= 0                   bounds the error of either estimate
```

On data from the model the true log p(x) lies between the two (in expectation), so
the gap measures how far AIS with these settings is from exact; a small gap on
simulated data is the evidence that the same AIS settings are accurate on real data
(Grosse et al., 2015, 2016; Wu et al., 2017).

References:
  R. Grosse, Z. Ghahramani, R. P. Adams. Sandwiching the marginal likelihood using
    bidirectional Monte Carlo. arXiv:1511.02543, 2015.
  Y. Wu, Y. Burda, R. Salakhutdinov, R. Grosse. On the Quantitative Analysis of
    Decoder-Based Generative Models. ICLR 2017.
"""

import dataclasses
import time

import numpy as np

from keras_vae._backend import tf
from keras_vae.evaluation import ais


@dataclasses.dataclass
class BDMCGap:
    """The sandwich on simulated data.

    Attributes:
      lower: the forward AIS estimates, float64 [N].
      upper: the reverse AIS estimates, float64 [N].
      x, z: the simulated data [N, *event_shape] and their exact latents [N, d].
      protocol: the AIS settings (shared by both directions) and the simulation seed.
      elapsed_s: seconds.
    """

    lower: np.ndarray
    upper: np.ndarray
    x: np.ndarray
    z: np.ndarray
    protocol: dict
    elapsed_s: float

    @property
    def gap(self):
        """The mean of upper - lower (nats)."""
        return float(np.mean(self.upper - self.lower))

    def summary(self):
        return {"lower_mean": float(np.mean(self.lower)), "upper_mean": float(np.mean(self.upper)),
                "gap": self.gap, "num_examples": int(len(self.lower)),
                "elapsed_s": round(self.elapsed_s, 3), "protocol": dict(self.protocol)}


def simulate(model, num_examples, seed=0):
    """(x [N, *event_shape] float32, z [N, d] float32) with z ~ p(z), x ~ p(x|z)."""
    z = tf.cast(model.prior_distribution().sample(
        int(num_examples), seed=tf.constant([int(seed), 3], "int32")), "float32")
    x = model.decode(z).sample(seed=tf.constant([int(seed), 5], "int32"))
    return tf.cast(x, "float32").numpy(), z.numpy()


def reverse_ais(model, x, z, seed=0, batch_size=100, **settings):
    r"""Reverse AIS from exact posterior samples: upper bounds on log p(x) in expectation.

    ```none
    log w = -sum_{t=T..1} (beta_t - beta_{t-1}) l(z_t),  z_T = z,  z_{t-1} = HMC_{t-1}(z_t)
    upper = -logmeanexp_chains(log w)
    ```

    Args:
      model: a `keras_vae.VAE`.
      x: examples [N, *event_shape].
      z: an exact sample of p(z|x) per example, [N, d] (e.g. from `simulate`).
      seed: int seed.
      batch_size: examples per pass.
      **settings: the keywords of `ais.ais_log_likelihood` (num_steps, num_chains, ...).

    Returns:
      An `ais.AISEstimate` whose values are upper bounds (direction 'reverse').
    """
    kwargs = {**_defaults(), **settings}
    ais._check(model, kwargs["num_steps"], kwargs["num_chains"], kwargs["leapfrog_steps"],
               kwargs["step_size"], kwargs["initial"], kwargs["chain_chunk"])
    config = ais._settings(kwargs["num_steps"], kwargs["num_chains"], kwargs["leapfrog_steps"],
                           kwargs["step_size"], kwargs["adapt_step_size"],
                           kwargs["target_acceptance"], kwargs["schedule_kind"],
                           kwargs["initial"], batch_size, kwargs["chain_chunk"], seed)
    x = np.asarray(x, "float32")
    z = np.asarray(z, "float32")
    if len(x) != len(z):
        raise ValueError(f"x and z need one row each per example, got {len(x)} and {len(z)}.")
    model.validate_inputs(x, "x")
    started = time.time()
    batches = ((tf.constant(x[i:i + batch_size]), tf.constant(z[i:i + batch_size]))
               for i in range(0, len(x), int(batch_size)))
    out = ais._run(model, batches, config, "reverse", int(seed))
    return ais.AISEstimate(out["values"], out["acceptance"], out["step_size"],
                           {**config, "direction": "reverse"}, time.time() - started)


def _defaults():
    return {"num_steps": 1000, "num_chains": 16, "leapfrog_steps": 10, "step_size": 0.05,
            "adapt_step_size": True, "target_acceptance": 0.65, "schedule_kind": "sigmoid",
            "initial": "prior", "chain_chunk": None}


def bdmc_gap(model, num_examples, seed=0, batch_size=100, **settings):
    """Simulates data from the model and sandwiches its log p(x) by forward and reverse AIS.

    Args:
      model: a `keras_vae.VAE`.
      num_examples: N simulated examples.
      seed: int seed of the simulation and of both runs.
      batch_size: examples per pass.
      **settings: the keywords of `ais.ais_log_likelihood`, used by both directions.

    Returns:
      A `BDMCGap` (`.lower`, `.upper` [N], `.gap`, `.summary()`).

    Example:

    ```python
    sandwich = keras_vae.evaluation.bdmc_gap(model, 20, num_steps=500)
    print(sandwich.gap)        # nats; small means AIS with these settings is accurate
    ```
    """
    started = time.time()
    x, z = simulate(model, num_examples, seed)
    lower = ais.ais_log_likelihood(model, x, seed=seed + 1, batch_size=batch_size, **settings)
    upper = reverse_ais(model, x, z, seed=seed + 2, batch_size=batch_size, **settings)
    protocol = {**lower.protocol, "direction": "both", "simulation_seed": int(seed)}
    return BDMCGap(lower.values, upper.values, x, z, protocol, time.time() - started)


__all__ = ["BDMCGap", "simulate", "reverse_ais", "bdmc_gap"]
