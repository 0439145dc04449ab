r"""The evaluator's fast path for a Bernoulli p(x|z): the per-example sum in one fused kernel.

The log-likelihood of a factorised Bernoulli with logits l over D pixels is

```none
log p(x|z) = sum_j x_j l_j - softplus(l_j)
           = sum_j (x_j l_j - max(l_j, 0)) - sum_j log(1 + exp(-|l_j|))
           = sum_j (x_j l_j - max(l_j, 0)) - sum_g log prod_{j in g} (1 + exp(-|l_j|))
```

with the pixels split into groups g of `GROUP` = 16: each factor lies in (1, 2], so a
product of 16 lies in (1, 65536] and neither overflows nor underflows in float32;
one logarithm per group replaces one per pixel. The algebra is exact; in float32
the grouped product adds at most ~16 ulp (relative) inside one logarithm of a value
below 11.1, i.e. ~1e-5 nats per group at worst, below the rounding of the float32
sum of 784 terms (`tests/test_evaluation_bernoulli_sums.py` checks it against the
direct sum in float64, pixels 0/1 and logits of +-50 included).

The elementwise work is one XLA kernel (`jit_compile=True`) over [S, B, D] logits; the
two row sums run as products with a vector of ones, which XLA's CPU backend runs
vectorised where its own float reduction adds one term after another. For the k = 5000
test log-likelihood of the IWAE net, TF's unfused Softplus, multiply and sum cost about
as much as the decoder's matmuls; this kernel a fraction of that (bench/ part eval).

`covers(model)` says whether a model is one this path computes exactly as
`model.compute_terms` does (a `keras_vae.VAE` whose hooks are the base class's and
whose likelihood is `BernoulliLikelihood`); every other model goes the general
way. `terms(model, x, num_samples, seed)` is then a drop-in for
`model.compute_terms(x, num_samples, training=False, seed=seed)` in evaluation.

Example:

```python
from keras_vae.evaluation import bernoulli_sums
if bernoulli_sums.covers(model):
    t = bernoulli_sums.terms(model, x, 500, seed=keras.random.SeedGenerator(0))
```
"""

from keras_vae import divergences, likelihoods
from keras_vae import objectives as objectives_lib
from keras_vae._backend import tf

#: Pixels per logarithm in the grouped softplus sum.
GROUP = 16

_HOOKS = ("compute_terms", "_posterior_draws", "_log_joint", "decode", "_decoder_outputs",
          "_likelihood_outputs", "prior_distribution")


def covers(model):
    """True if `terms` computes exactly what `model.compute_terms` computes (evaluation)."""
    from keras_vae.model import VAE

    if not isinstance(model, VAE) or getattr(model, "is_conditional", False):
        return False
    if type(getattr(model, "likelihood", None)) is not likelihoods.BernoulliLikelihood:
        return False
    return all(getattr(type(model), name) is getattr(VAE, name) for name in _HOOKS)


@tf.function
def log_likelihood(logits, x):
    r"""sum_j x_j l_j - softplus(l_j) per sample and example, fused (see the module).

    Args:
      logits: [S, B, *event] float32.
      x: [B, *event] in [0, 1].

    Returns:
      [S, B] log p(x|z).
    """
    shape, size = tf.shape(logits), logits.shape[2:].num_elements()
    # The kernel sees [S, B, D] whatever the event's rank: given a 5-D [S, B, 28, 28, 1],
    # XLA folded its row sums into a scalar loop (1.2 against 0.3 ms per chunk of 500 x 20).
    return _fused_sums(tf.reshape(logits, [shape[0], shape[1], size]),
                       tf.reshape(tf.cast(x, logits.dtype), [shape[1], size]))


@tf.function(jit_compile=True)  # static shapes: D and its groups are known
def _fused_sums(logits, x):
    """`log_likelihood` of [S, B, D] logits and [B, D] pixels."""
    size = logits.shape[-1]
    linear = x[None] * logits - tf.nn.relu(logits)
    factors = 1.0 + tf.exp(-tf.abs(logits))
    pad = (-size) % GROUP
    if pad:
        factors = tf.pad(factors, [[0, 0], [0, 0], [0, pad]], constant_values=1.0)
    groups = tf.reshape(factors, [tf.shape(logits)[0], tf.shape(logits)[1],
                                  (size + pad) // GROUP, GROUP])
    return _row_sums(linear) - _row_sums(tf.math.log(tf.reduce_prod(groups, axis=-1)))


def _row_sums(values):
    """sum over the last axis of [S, B, n] as a product with a vector of ones, [S, B].

    XLA's CPU reduction keeps the order of a float sum, one add after another per
    row; the product runs vectorised (the kernel 5.5 -> 3.8 ms per image on a trained
    IWAE net's logits at k = 5000, interleaved), and its blocked order is no less accurate.
    """
    shape, n = tf.shape(values), values.shape[-1]
    sums = tf.matmul(tf.reshape(values, [-1, n]), tf.ones([n, 1], values.dtype))
    return tf.reshape(sums, shape[:2])


def terms(model, x, num_samples, seed):
    """`objectives.Terms` of S draws, as `model.compute_terms(..., training=False)` gives.

    Only for models with `covers(model)`; log p(x|z) comes from `log_likelihood`,
    the rest from the model's own hooks.
    """
    x = tf.cast(x, "float32")
    draws = model._posterior_draws(x, num_samples, False, seed, stop=False)
    z = draws["z"]
    q = model.posterior.distribution(draws["params"])
    p_z = model.prior_distribution()
    kl = divergences.analytic_kl(q, p_z) if model.analytic_kl else None
    logits = model._decoder_outputs(z, training=False)  # the likelihood layer's output
    return objectives_lib.Terms(log_likelihood(logits, x), p_z.log_prob(z), q.log_prob(z),
                                None, kl, None)


__all__ = ["GROUP", "covers", "log_likelihood", "terms"]
