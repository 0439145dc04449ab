r"""A linear-Gaussian VAE whose marginal and posterior are known in closed form (float64 numpy).

```none
z ~ N(0, I_d),   x | z ~ N(W z + b, s^2 I_D)
p(x)   = N(x; b, W W^T + s^2 I_D)
p(z|x) = N(z; Sigma W^T (x - b) / s^2, Sigma),   Sigma = (I + W^T W / s^2)^-1
```

W has orthogonal columns with norms c_j, so Sigma = diag(s^2 / (s^2 + c_j^2)) is
diagonal and a diagonal-Gaussian encoder can represent the exact posterior. A
column with c_j = 0 is a dead unit: E[z_j|x] = 0 for every x. For x ~ p(x),
Var_x(E[z_j|x]) = c_j^2 / (c_j^2 + s^2).

The Keras model: encoder = identity, posterior head = one Dense layer whose
weights give the exact (or a deliberately wrong) posterior, decoder = Dense(W, b),
likelihood = Gaussian with fixed scale s.
"""

import numpy as np

import keras_vae
from keras_vae._backend import keras
from keras_vae.likelihoods import GaussianLikelihood
from keras_vae.posteriors import DiagonalGaussianPosterior


class LinearGaussian:
    """The generative model and its closed forms.

    Args:
      column_norms: c_j, one per latent unit (0 makes a dead unit).
      data_dim: D.
      noise_scale: s.
      seed: seed of the rotation and of b.
    """

    def __init__(self, column_norms=(2.0, 1.0, 0.5), data_dim=8, noise_scale=0.5, seed=0):
        rng = np.random.default_rng(seed)
        self.column_norms = np.asarray(column_norms, "float64")
        self.latent_dim = len(self.column_norms)
        self.data_dim = int(data_dim)
        self.noise_scale = float(noise_scale)
        q, _ = np.linalg.qr(rng.normal(size=(self.data_dim, self.data_dim)))
        self.w = q[:, : self.latent_dim] * self.column_norms  # [D, d]
        self.b = rng.normal(size=self.data_dim)

    @property
    def posterior_variance(self):
        """diag(Sigma) [d]."""
        s2 = self.noise_scale ** 2
        return s2 / (s2 + self.column_norms ** 2)

    def posterior_mean(self, x):
        """E[z|x] [N, d] = (x - b) W Sigma / s^2."""
        return (np.asarray(x, "float64") - self.b) @ self._loc_kernel()

    def _loc_kernel(self):
        return self.w * self.posterior_variance / self.noise_scale ** 2

    def marginal_log_prob(self, x):
        """log N(x; b, W W^T + s^2 I), float64 [N]."""
        x = np.asarray(x, "float64")
        cov = self.w @ self.w.T + self.noise_scale ** 2 * np.eye(self.data_dim)
        _, logdet = np.linalg.slogdet(cov)
        diff = x - self.b
        maha = np.einsum("nd,nd->n", diff, np.linalg.solve(cov, diff.T).T)
        return -0.5 * (self.data_dim * np.log(2 * np.pi) + logdet + maha)

    def sample(self, n, seed=1):
        """x ~ p(x), float32 [n, D]."""
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, self.latent_dim))
        x = z @ self.w.T + self.b + self.noise_scale * rng.normal(size=(n, self.data_dim))
        return x.astype("float32")

    def vae(self, loc_shift=0.0, scale_factor=1.0, objective="elbo", seed=0, **kwargs):
        """A `keras_vae.VAE` with these weights.

        loc_shift = 0 and scale_factor = 1 give the exact posterior; otherwise
        q(z|x) = N(E[z|x] + loc_shift, (scale_factor^2) Sigma).
        """
        d, dim = self.latent_dim, self.data_dim
        model = keras_vae.VAE(
            latent_dim=d, event_shape=(dim,), encoder=keras.layers.Identity(name="encoder"),
            decoder=keras.layers.Dense(dim, name="decoder"),
            posterior=DiagonalGaussianPosterior(d, min_scale=0.0, name="posterior"),
            likelihood=GaussianLikelihood((dim,), scale=self.noise_scale, name="likelihood"),
            objective=objective, seed=seed, **kwargs,
        )
        loc_kernel = self._loc_kernel()
        scale = scale_factor * np.sqrt(self.posterior_variance)
        kernel = np.concatenate([loc_kernel, np.zeros((dim, d))], axis=1)
        bias = np.concatenate([-self.b @ loc_kernel + loc_shift, np.log(np.expm1(scale))])
        model.posterior.dense.kernel.assign(kernel.astype("float32"))
        model.posterior.dense.bias.assign(bias.astype("float32"))
        model.decoder.kernel.assign(self.w.T.astype("float32"))
        model.decoder.bias.assign(self.b.astype("float32"))
        return model
