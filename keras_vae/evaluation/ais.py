r"""Annealed importance sampling (AIS) of log p(x), and the BDMC sandwich on simulated data.

The geometric path from the initial density p_0 (the prior, or q(z|x)) to the
unnormalised posterior p(x, z) = p(z) p(x|z), with 0 = beta_0 < ... < beta_T = 1:

```none
log gamma_t(z) = log p_0(z) + beta_t l(z),      l(z) = log p(x|z) + log p(z) - log p_0(z)
forward:  z_0 ~ p_0;  for t = 1..T:  log w += (beta_t - beta_{t-1}) l(z_{t-1}),
                                     z_t = HMC_t(z_{t-1})   (leaves gamma_t invariant)
          log p^(x) = logmeanexp_chains(log w)           <= log p(x) in expectation
reverse:  z_T ~ p(z|x) exactly (x simulated from z_T);  for t = T..1:
          log w -= (beta_t - beta_{t-1}) l(z_t),  z_{t-1} = HMC_{t-1}(z_t)
          E[w] = 1 / p(x), so -logmeanexp_chains(log w)  >= log p(x) in expectation
```

(Neal, 2001; the reverse run is the upper bound of bidirectional Monte Carlo, Grosse et
al., 2015, 2016, applied to decoders by Wu et al., 2017.) The schedule is sigmoidal by
default (Grosse et al., 2015: beta~_t = sigmoid(delta (2t/T - 1)), rescaled to [0, 1],
delta = 4) or linear. Each transition is one Hamiltonian Monte Carlo step of
`leapfrog_steps` leapfrog steps on log gamma_t (unit mass) with a Metropolis test.
The step size is per example, shared by its chains, and adapted as Wu et al. do:
times 1.02 after a step whose mean acceptance exceeds `target_acceptance` (0.65),
else times 0.98, clipped to [1e-4, 1] (adaptation makes the kernels depend on the
chains' past; `adapt_step_size=False` keeps `step_size` fixed and the estimator
exactly unbiased in w).

Memory: examples in batches of `batch_size`, chains in chunks of `chain_chunk`,
combined by a running logsumexp in float64, so one chunk [chain_chunk, batch_size,
d] (and its decoder pass) is in memory at a time; the T steps run in one
`tf.while_loop`.

References:
  R. M. Neal. Annealed importance sampling. Statistics and Computing, 2001.
  R. Grosse, Z. Ghahramani, R. P. Adams. Sandwiching the marginal likelihood using
    bidirectional Monte Carlo. arXiv:1511.02543, 2015.
  R. Grosse, S. Ancha, D. M. Roy. Measuring the reliability of MCMC inference with
    bidirectional Monte Carlo. NeurIPS 2016.
  Y. Wu, Y. Burda, R. Salakhutdinov, R. Grosse. On the Quantitative Analysis of
    Decoder-Based Generative Models. ICLR 2017.
"""

import dataclasses
import math
import time

import numpy as np

from keras_vae._backend import tf
from keras_vae.evaluation import streaming

SCHEDULES = ("sigmoid", "linear")
INITIALS = ("prior", "posterior")
#: Wu et al.'s step-size factors and the clip of the adapted step size.
ADAPT_UP, ADAPT_DOWN, STEP_SIZE_RANGE = 1.02, 0.98, (1e-4, 1.0)


def schedule(num_steps, kind="sigmoid", sharpness=4.0):
    """The inverse temperatures beta_0 = 0 < ... < beta_T = 1, float64 [T + 1].

    Args:
      num_steps: T >= 1.
      kind: 'sigmoid' (Grosse et al., 2015) or 'linear'.
      sharpness: delta of the sigmoid schedule.

    Raises:
      ValueError: T < 1 or an unknown kind.
    """
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps!r}.")
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}.")
    t = np.linspace(0.0, 1.0, int(num_steps) + 1)
    if kind == "linear" or int(num_steps) == 1:
        return t
    raw = 1.0 / (1.0 + np.exp(-float(sharpness) * (2.0 * t - 1.0)))
    return (raw - raw[0]) / (raw[-1] - raw[0])


@dataclasses.dataclass
class AISEstimate:
    """Per-example AIS estimates and their protocol.

    Attributes:
      values: log p(x) estimates, float64 [N] (lower bounds in expectation; for
        `direction='reverse'` upper bounds).
      acceptance: mean HMC acceptance rate per example, [N].
      step_size: the final (adapted) step size per example, [N].
      protocol: the settings (steps, chains, leapfrog steps, step size, schedule...).
      elapsed_s: seconds.
    """

    values: np.ndarray
    acceptance: np.ndarray
    step_size: np.ndarray
    protocol: dict
    elapsed_s: float

    @property
    def mean(self):
        return float(np.mean(self.values))

    @property
    def standard_error(self):
        n = len(self.values)
        return float(np.std(self.values, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def nll(self):
        return -self.mean

    def summary(self):
        """The plain numbers for metrics.json (with the protocol)."""
        return {"mean": self.mean, "standard_error": self.standard_error, "nll": self.nll,
                "num_examples": int(len(self.values)),
                "acceptance_mean": float(np.mean(self.acceptance)),
                "step_size_mean": float(np.mean(self.step_size)),
                "elapsed_s": round(self.elapsed_s, 3), "protocol": dict(self.protocol)}


def _target(model, x, initial):
    """z [C, B, d], beta -> (l(z) [C, B], log gamma_beta(z) [C, B], its gradient in z)."""
    prior = model.prior_distribution()
    start = model.encode(x) if initial == "posterior" else None

    def evaluate(z, beta):
        with tf.GradientTape() as tape:
            tape.watch(z)
            log_prior = prior.log_prob(z)
            log_joint = tf.cast(model.decode(z).log_prob(x), "float32") + log_prior
            log_start = log_prior if start is None else start.log_prob(z)
            ell = log_joint - log_start
            log_gamma = log_start + beta * ell
            total = tf.reduce_sum(log_gamma)  # chains and examples are independent
        return ell, log_gamma, tape.gradient(total, z)

    return evaluate


def _hmc(evaluate, z, beta, step, leapfrog_steps, seed):
    """One HMC step on gamma_beta: (new z, acceptance probability [C, B], l at the start)."""
    ell, log_gamma, grad = evaluate(z, beta)
    momentum_seed, accept_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    p0 = tf.random.stateless_normal(tf.shape(z), momentum_seed)
    eps = step[None, :, None]
    p = p0 + 0.5 * eps * grad
    z_new = z
    for index in range(leapfrog_steps):
        z_new = z_new + eps * p
        _, new_log_gamma, new_grad = evaluate(z_new, beta)
        p = p + (eps if index < leapfrog_steps - 1 else 0.5 * eps) * new_grad
    kinetic = lambda m: 0.5 * tf.reduce_sum(tf.square(m), axis=-1)  # noqa: E731
    log_ratio = (new_log_gamma - kinetic(p)) - (log_gamma - kinetic(p0))
    log_ratio = tf.where(tf.math.is_finite(log_ratio), log_ratio, -np.inf)
    accept_prob = tf.exp(tf.minimum(log_ratio, 0.0))
    accept = tf.random.stateless_uniform(tf.shape(accept_prob), accept_seed) < accept_prob
    return tf.where(accept[..., None], z_new, z), accept_prob, ell


def _anneal_function(model, initial, leapfrog_steps, adapt, target_acceptance):
    """A tf.function: (x, z, kernel betas [T], weights [T], step [B], seed) -> results."""

    @tf.function(reduce_retracing=True)
    def anneal(x, z, kernel_betas, weights, step, seed):
        evaluate = _target(model, x, initial)
        num = tf.shape(kernel_betas)[0]
        log_w = tf.zeros(tf.shape(z)[:2])
        acceptance = tf.zeros(tf.shape(z)[1:2])

        def body(t, z, log_w, step, acceptance):
            z_next, accept_prob, ell = _hmc(evaluate, z, kernel_betas[t], step, leapfrog_steps,
                                            tf.random.experimental.stateless_fold_in(seed, t))
            rate = tf.reduce_mean(accept_prob, axis=0)
            if adapt:
                factor = tf.where(rate > target_acceptance, ADAPT_UP, ADAPT_DOWN)
                step = tf.clip_by_value(step * factor, *STEP_SIZE_RANGE)
            return t + 1, z_next, log_w + weights[t] * ell, step, acceptance + rate

        _, z, log_w, step, acceptance = tf.while_loop(
            lambda t, *_: t < num, body, (0, z, log_w, step, acceptance))
        return log_w, acceptance / tf.cast(num, "float32"), step, z

    return anneal


def _check(model, num_steps, num_chains, leapfrog_steps, step_size, initial, chain_chunk):
    if getattr(model, "is_conditional", False):
        raise ValueError("AIS estimates log p(x) of an unconditional model; this one is "
                         "conditional.")
    if min(int(num_chains), int(leapfrog_steps), int(chain_chunk or 1)) < 1:
        raise ValueError(f"num_chains, leapfrog_steps and chain_chunk must be >= 1, got "
                         f"{num_chains}, {leapfrog_steps}, {chain_chunk}.")
    if not float(step_size) > 0:
        raise ValueError(f"step_size must be > 0, got {step_size!r}.")
    if initial not in INITIALS:
        raise ValueError(f"initial must be one of {INITIALS}, got {initial!r}.")
    schedule(num_steps)  # checks T


def _initial_z(model, x, chains, initial, seed):
    if initial == "posterior":
        params = model.posterior(model.encoder(x))
        return tf.cast(model.posterior.sample(params, chains, seed=int(seed)), "float32")
    n = int(x.shape[0])
    z = model.prior_distribution().sample([chains, n], seed=tf.constant([int(seed), 7], "int32"))
    return tf.cast(z, "float32")


def _run(model, batches, settings, direction, seed):
    """Runs AIS over (x, z_start or None) batches; returns (values, acceptance, step) [N]."""
    betas = schedule(settings["num_steps"], settings["schedule"]).astype("float32")
    deltas = np.diff(betas)
    if direction == "forward":
        kernel_betas, weights = betas[1:], deltas
    else:  # t = T..1: weight -(beta_t - beta_{t-1}), kernel at beta_{t-1}
        kernel_betas, weights = betas[:-1][::-1].copy(), -deltas[::-1].copy()
    anneal = _anneal_function(model, settings["initial"], settings["leapfrog_steps"],
                              settings["adapt_step_size"], settings["target_acceptance"])
    chains, chunk = settings["num_chains"], settings["chain_chunk"] or settings["num_chains"]
    out = {"values": [], "acceptance": [], "step_size": []}
    for index, (x, z_exact) in enumerate(batches):
        n = int(x.shape[0])
        lse, rates, steps, done = np.full(n, -np.inf), np.zeros(n), np.zeros(n), 0
        while done < chains:
            size = min(chunk, chains - done)
            chunk_seed = seed * 1000003 + index * 1009 + done
            z0 = (tf.tile(z_exact[None], [size, 1, 1]) if z_exact is not None
                  else _initial_z(model, x, size, settings["initial"], chunk_seed))
            step0 = tf.fill([n], float(settings["step_size"]))
            log_w, rate, step, _ = anneal(x, z0, tf.constant(kernel_betas), tf.constant(weights),
                                          step0, tf.constant([chunk_seed % 2 ** 31, 11], "int32"))
            lse = np.logaddexp(lse, tf.reduce_logsumexp(log_w, 0).numpy().astype("float64"))
            rates += rate.numpy() * size / chains
            steps += step.numpy() * size / chains
            done += size
        sign = 1.0 if direction == "forward" else -1.0
        out["values"].append(sign * (lse - math.log(chains)))
        out["acceptance"].append(rates)
        out["step_size"].append(steps)
    return {key: np.concatenate(value) for key, value in out.items()}


def ais_log_likelihood(model, x, num_steps=1000, num_chains=16, leapfrog_steps=10,
                       step_size=0.05, adapt_step_size=True, target_acceptance=0.65,
                       schedule_kind="sigmoid", initial="prior", batch_size=100,
                       chain_chunk=None, seed=0):
    r"""AIS estimate of log p(x) per example (a stochastic lower bound); see the module.

    ```none
    log p^(x) = logmeanexp_{c=1..C} sum_t (beta_t - beta_{t-1}) l(z^c_{t-1})
    ```

    Args:
      model: a `keras_vae.VAE` (one latent z; unconditional).
      x: examples [N, *event_shape] (or a tuple (x, ...)); checked against the model.
      num_steps: T, the intermediate distributions.
      num_chains: C, independent chains per example.
      leapfrog_steps: leapfrog steps per HMC transition.
      step_size: the initial HMC step size (the fixed one without adaptation).
      adapt_step_size: adapt the step size per example (Wu et al., 2017).
      target_acceptance: the acceptance rate the adaptation aims at.
      schedule_kind: 'sigmoid' or 'linear'.
      initial: 'prior' (p_0 = p(z)) or 'posterior' (p_0 = q(z|x)).
      batch_size: examples per pass.
      chain_chunk: chains per pass (default all C).
      seed: int seed of every draw.

    Returns:
      An `AISEstimate` (`.values` [N], `.mean`, `.nll`, `.summary()` with the protocol).

    Raises:
      ValueError: bad settings, a conditional model, or data that do not fit it.

    Example:

    ```python
    ais = keras_vae.evaluation.ais_log_likelihood(model, x_test[:100], num_steps=1000)
    print(ais.nll, ais.summary()["protocol"])
    ```
    """
    _check(model, num_steps, num_chains, leapfrog_steps, step_size, initial, chain_chunk)
    settings = _settings(num_steps, num_chains, leapfrog_steps, step_size, adapt_step_size,
                         target_acceptance, schedule_kind, initial, batch_size, chain_chunk,
                         seed)
    started = time.time()
    batches = ((xb, None) for xb in streaming.batches(model, x, batch_size))
    out = _run(model, batches, settings, "forward", int(seed))
    return AISEstimate(out["values"], out["acceptance"], out["step_size"],
                       {**settings, "direction": "forward"}, time.time() - started)


def _settings(num_steps, num_chains, leapfrog_steps, step_size, adapt_step_size,
              target_acceptance, schedule_kind, initial, batch_size, chain_chunk, seed):
    return {"estimator": "ais", "num_steps": int(num_steps), "num_chains": int(num_chains),
            "leapfrog_steps": int(leapfrog_steps), "step_size": float(step_size),
            "adapt_step_size": bool(adapt_step_size),
            "target_acceptance": float(target_acceptance), "schedule": schedule_kind,
            "initial": initial, "batch_size": int(batch_size),
            "chain_chunk": None if chain_chunk is None else int(chain_chunk), "seed": int(seed)}


__all__ = ["SCHEDULES", "INITIALS", "schedule", "AISEstimate", "ais_log_likelihood"]
