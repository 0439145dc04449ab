"""Posterior heads: encoder features -> the parameters of q(z|x).

A head is a Keras layer that returns tensors (never distributions: Keras 3 layers
trace tensors only); `distribution(params)` builds the TFP distribution from them,
and `sample(params, num_samples, seed)` draws from it by reparameterisation
(Kingma & Welling, 2014), the one place every draw z ~ q(z|x) in the package is made:

```none
z = loc + scale * eps,    eps ~ N(0, I)
```

A custom head implements `call(features) -> params`, `distribution(params)` and
`reparameterize(params, eps)` (or `sample`).
"""

from keras_vae import densities, names, noise
from keras_vae._backend import keras, tf, tfd


def reparameterize(loc, scale, eps):
    """z = loc + scale * eps: a draw from N(loc, scale^2) that is differentiable in both.

    Args:
      loc, scale: the location and scale, broadcasting with `eps`.
      eps: standard-normal noise.

    Returns:
      The draws, of the broadcast shape.
    """
    return loc + scale * eps


@keras.saving.register_keras_serializable(package="keras_vae")
@names.POSTERIORS.register("diagonal_gaussian", aliases=("gaussian",))
class DiagonalGaussianPosterior(keras.layers.Layer):
    r"""Diagonal Gaussian q(z|x) = N(z; mu(x), diag(sigma(x)^2)).

    The encoder's features h go through one dense layer of 2 * latent_dim units;
    the first half is the location, the second the pre-softplus scale:

    ```none
    mu = W_mu h + b_mu
    sigma = softplus(W_s h + b_s) + min_scale
    ```

    The floor `min_scale` keeps log q(z|x) bounded when a unit collapses
    (sigma -> 0 makes the log-density, and so the log-weights, blow up).

    Args:
      latent_dim: int, the size d of z.
      min_scale: float, the floor added to the scale.

    Example:

    ```python
    head = DiagonalGaussianPosterior(latent_dim=2)
    loc, scale = head(features)           # tensors, shape [B, 2]
    q = head.distribution((loc, scale))   # tfd.Independent(tfd.Normal), event [2]
    ```
    """

    def __init__(self, latent_dim, min_scale=1e-4, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
        if float(min_scale) < 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale!r}.")
        self.latent_dim = int(latent_dim)
        self.min_scale = float(min_scale)
        self.dense = keras.layers.Dense(2 * self.latent_dim, name="loc_and_scale")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.built = True

    def call(self, features):
        params = self.dense(features)
        # Distribution parameters always in float32: fp16 KL terms overflow.
        params = tf.cast(params, "float32")
        loc, raw_scale = tf.split(params, 2, axis=-1)
        scale = tf.nn.softplus(raw_scale) + self.min_scale
        return loc, scale

    def distribution(self, params):
        """q(z|x) = Independent(Normal(loc, scale)): batch [B], event [d]."""
        loc, scale = params
        return tfd.Independent(
            densities.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=1
        )

    def reparameterize(self, params, eps):
        """The draws loc + scale * eps for given noise eps (broadcasting with loc)."""
        loc, scale = params
        return reparameterize(loc, scale, eps)

    def sample(self, params, num_samples=None, seed=None):
        """Reparameterised draws from `distribution(params)`.

        Args:
          params: (loc, scale), each [B, d].
          num_samples: S, or None for one draw without a sample axis.
          seed: an int or a `keras.random.SeedGenerator`.

        Returns:
          z of shape [S, B, d] (or [B, d] when num_samples is None).
        """
        loc, _ = params
        shape = tf.shape(loc)
        if num_samples is not None:
            shape = tf.concat([[num_samples], shape], axis=0)
        return self.reparameterize(params, noise.standard_normal(shape, seed=seed))

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim, min_scale=self.min_scale)
        return config


def get(identifier, latent_dim):
    """Returns a posterior head from a registered name (`names.POSTERIORS`), a config dict or a layer.

    Args:
      identifier: a name, a config dict, a layer, or None (diagonal Gaussian).
      latent_dim: the size d of z, for a head built from a name.

    Returns:
      The head layer.
    """
    if isinstance(identifier, keras.layers.Layer):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    return names.POSTERIORS.build(identifier or "diagonal_gaussian",
                                  {"latent_dim": latent_dim}, name="posterior")


def check_head(head, gradient_estimator="standard", objective=None):
    """Raises ValueError where a head cannot give what the training asks of it.

    DReG needs log q(z|x) with every parameter of q stopped but z's path kept:
    for a flow head (`supports_dreg = False`) that is the whole flow stopped and
    inverted, which it does not give. Free bits need a factorised q
    (`factorised = False` for a flow). Heads without these attributes pass.

    Args:
      head: the posterior head.
      gradient_estimator: the canonical estimator name ('standard', 'dreg').
      objective: the training objective (its `free_bits`, if any, are checked).

    Raises:
      ValueError: DReG or free bits asked of a head that cannot give them.
    """
    kind = type(head).__name__
    if gradient_estimator == "dreg" and not getattr(head, "supports_dreg", True):
        raise ValueError(f"gradient_estimator='dreg' needs log q(z|x) with all of q's "
                         f"parameters stopped; {kind} (a flow) cannot give it: use "
                         f"'standard', or a diagonal Gaussian posterior for DReG.")
    if float(getattr(objective, "free_bits", 0) or 0) > 0 and not getattr(head, "factorised", True):
        raise ValueError(f"free bits need a factorised q(z|x); {kind} is not: use "
                         f"the diagonal Gaussian posterior.")


__all__ = ["reparameterize", "DiagonalGaussianPosterior", "get", "check_head"]

# The flow heads register themselves ('iaf', 'planar') after the diagonal Gaussian.
from keras_vae import flows  # noqa: E402,F401
