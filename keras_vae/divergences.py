r"""KL(q(z|x) || p(z)) for the ELBO: analytic where TFP registers it, per unit for free bits.

```none
KL(q || p) = E_q[log q(z|x) - log p(z)]
kl_per_dim[b, j] = KL(q_j || p_j)          (factorised q and p: the KL of unit j)
```

TFP's registry (`tfd.kl_divergence`, `RegisterKL`) decides where a closed form exists
(a diagonal Gaussian q against the standard normal prior); elsewhere the model uses the
Monte-Carlo estimate over its S draws (`objectives.Terms.kl_divergence`).
"""

from keras_vae._backend import tf, tfd


def analytic_kl(q, p):
    """KL(q || p) per example [B] from TFP's registry, or None where none is registered."""
    try:
        return tfd.kl_divergence(q, p)
    except NotImplementedError:
        return None


def kl_per_unit(q, p, z, analytic=True):
    """KL per latent unit [B, d] of factorised q and p (`tfd.Independent` of d units).

    Args:
      q, p: `tfd.Independent` distributions over d units (q batch [B], p batch []).
      z: the draws [S, B, d], used for the Monte-Carlo estimate when `analytic` is False.
      analytic: use the units' registered KL.
    """
    if analytic:
        return tfd.kl_divergence(q.distribution, p.distribution)
    return tf.reduce_mean(q.distribution.log_prob(z) - p.distribution.log_prob(z), axis=0)


__all__ = ["analytic_kl", "kl_per_unit"]
