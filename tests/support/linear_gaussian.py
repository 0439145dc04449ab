r"""The reference oracle: a linear-Gaussian VAE whose marginal and posterior are closed forms.

```none
z ~ N(0, I_d),   x | z ~ N(W z + b, s^2 I_D)
p(x)   = N(x; b, W W^T + s^2 I_D)
p(z|x) = N(z; Sigma W^T (x - b) / s^2, Sigma),   Sigma = (I + W^T W / s^2)^-1
```

W has orthogonal columns with norms c_j, so Sigma = diag(s^2 / (s^2 + c_j^2)) is
diagonal and the package's diagonal-Gaussian posterior head can represent the
exact posterior. A column with c_j = 0 is a dead unit: E[z_j|x] = 0 for every x.
For x ~ p(x), Var_x(E[z_j|x]) = c_j^2 / (c_j^2 + s^2). Every closed form is float64
numpy, independent of the package; the Keras model is

```none
encoder = identity,  posterior head = one Dense layer (the exact or a deliberately
wrong posterior),    decoder = Dense(W, b),    likelihood = Gaussian, fixed scale s
```

`LinearGaussian.correlated()` gives columns at a common cosine instead: the posterior
covariance (`posterior_covariance`) is then full, and `best_diagonal_gap` is the least
ELBO gap any diagonal q can reach (the flow posteriors' test).

Two ways in: the class `LinearGaussian` (by column norms, or `from_weights(w, b, s)`),
and the functions `make_problem`, `log_marginal`, `sample_data`, `make_vae` over
arrays (w, b, s), which are the class's closed forms.

The conditional model (`LinearGaussian.conditional`, a `ConditionalLinearGaussian`)
adds a class y in 0..C-1 (one-hot c) that shifts the data and the prior's location:

```none
z | y ~ N(m_y, diag(t^2)),   x | z, y ~ N(W z + b + a_y, s^2 I_D)
p(x|y)   = N(x; W m_y + b + a_y, W diag(t^2) W^T + s^2 I_D)
p(z|x,y) = N(z; Sigma_t (m_y / t^2 + W^T (x - b - a_y) / s^2), Sigma_t),
           Sigma_t = diag(1 / (1 / t^2 + c_j^2 / s^2))
```

Sigma_t does not depend on y, so a Dense head on concat(x, one_hot(y)) is the
exact posterior; m = 0, t = 1 is the standard-normal prior.
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
        column_norms = np.asarray(column_norms, "float64")
        q, _ = np.linalg.qr(rng.normal(size=(int(data_dim), int(data_dim))))
        self._set(q[:, : len(column_norms)] * column_norms, rng.normal(size=int(data_dim)),
                  noise_scale)

    @classmethod
    def from_weights(cls, w, b, noise_scale):
        """The model of given W [D, d] (orthogonal columns), b [D] and s."""
        model = cls.__new__(cls)
        model._set(np.asarray(w, "float64"), np.asarray(b, "float64"), noise_scale)
        return model

    def _set(self, w, b, noise_scale):
        self.w = w  # [D, d]
        self.b = b  # [D]
        self.noise_scale = float(noise_scale)
        self.data_dim, self.latent_dim = w.shape
        self.column_norms = np.sqrt(np.sum(w ** 2, axis=0))

    @classmethod
    def correlated(cls, latent_dim=2, data_dim=4, column_norm=2.0, cosine=0.9,
                   noise_scale=0.5, seed=0):
        """A model whose posterior is correlated: unit columns at a given cosine, times c.

        Columns j = 0..d-1 share one direction with weight sqrt(cosine) and have
        their own orthogonal direction with weight sqrt(1 - cosine), so every pair
        of columns has this cosine; the posterior precision I + W^T W / s^2 is then
        not diagonal.
        """
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(int(data_dim), int(latent_dim) + 1)))
        w = np.sqrt(cosine) * q[:, :1] + np.sqrt(1.0 - cosine) * q[:, 1:]
        return cls.from_weights(column_norm * w, rng.normal(size=int(data_dim)), noise_scale)

    @property
    def posterior_covariance(self):
        """Sigma = (I + W^T W / s^2)^-1 [d, d], whatever the columns (float64)."""
        precision = np.eye(self.latent_dim) + self.w.T @ self.w / self.noise_scale ** 2
        return np.linalg.inv(precision)

    @property
    def best_diagonal_gap(self):
        """min over diagonal Gaussians q of KL(q || p(z|x)), the same for every x (nats).

        The best q has variances 1 / Lambda_jj (Lambda = Sigma^-1), so the least ELBO
        gap a diagonal posterior can reach is 0.5 (sum_j log Lambda_jj - log det Lambda).
        """
        precision = np.linalg.inv(self.posterior_covariance)
        _, logdet = np.linalg.slogdet(precision)
        return 0.5 * (np.sum(np.log(np.diag(precision))) - logdet)

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

    def conditional(self, shift, prior_loc=None, prior_scale=1.0):
        """The conditional model with data shifts a_y = shift[y] [C, D] (see the module)."""
        return ConditionalLinearGaussian(self, shift, prior_loc, prior_scale)

    def vae(self, loc_shift=0.0, scale_factor=1.0, objective="elbo", seed=0, posterior=None,
            **kwargs):
        """A `keras_vae.VAE` with these weights.

        loc_shift = 0 and scale_factor = 1 give the exact posterior (orthogonal
        columns); otherwise q(z|x) = N(E[z|x] + loc_shift, (scale_factor^2) Sigma).
        With `posterior` (a head) the decoder is set and the head is left as built.
        """
        d, dim = self.latent_dim, self.data_dim
        model = keras_vae.VAE(
            latent_dim=d, event_shape=(dim,), encoder=keras.layers.Identity(name="encoder"),
            decoder=keras.layers.Dense(dim, name="decoder"),
            posterior=posterior or DiagonalGaussianPosterior(d, min_scale=0.0, name="posterior"),
            likelihood=GaussianLikelihood((dim,), scale=self.noise_scale, name="likelihood"),
            objective=objective, seed=seed, **kwargs,
        )
        model.decoder.kernel.assign(self.w.T.astype("float32"))
        model.decoder.bias.assign(self.b.astype("float32"))
        if posterior is not None:
            return model
        loc_kernel = self._loc_kernel()
        scale = scale_factor * np.sqrt(self.posterior_variance)
        kernel = np.concatenate([loc_kernel, np.zeros((dim, d))], axis=1)
        bias = np.concatenate([-self.b @ loc_kernel + loc_shift, np.log(np.expm1(scale))])
        model.posterior.dense.kernel.assign(kernel.astype("float32"))
        model.posterior.dense.bias.assign(bias.astype("float32"))
        return model


class ConditionalLinearGaussian:
    """The linear-Gaussian model with a class y: shifted data, a prior location per class.

    Args:
      base: the `LinearGaussian` (W, b, s).
      shift: a_y, [C, D].
      prior_loc: m_y, [C, d] (default zeros).
      prior_scale: t, a scalar or [d], the same for every class.
    """

    def __init__(self, base, shift, prior_loc=None, prior_scale=1.0):
        self.base = base
        self.shift = np.asarray(shift, "float64")
        self.num_classes = self.shift.shape[0]
        d = base.latent_dim
        self.prior_loc = (np.zeros((self.num_classes, d)) if prior_loc is None
                          else np.asarray(prior_loc, "float64"))
        self.prior_scale = np.broadcast_to(np.asarray(prior_scale, "float64"), (d,)).copy()

    @property
    def posterior_variance(self):
        """diag(Sigma_t) [d], the same for every class."""
        return 1.0 / (1.0 / self.prior_scale ** 2
                      + self.base.column_norms ** 2 / self.base.noise_scale ** 2)

    def marginal_log_prob(self, x, y):
        """log p(x|y), float64 [N], for x [N, D] and integer labels y [N]."""
        x, y = np.asarray(x, "float64"), np.asarray(y)
        w, b, s2 = self.base.w, self.base.b, self.base.noise_scale ** 2
        cov = (w * self.prior_scale ** 2) @ w.T + s2 * np.eye(self.base.data_dim)
        _, logdet = np.linalg.slogdet(cov)
        diff = x - (self.prior_loc[y] @ w.T + b + self.shift[y])
        maha = np.einsum("nd,nd->n", diff, np.linalg.solve(cov, diff.T).T)
        return -0.5 * (self.base.data_dim * np.log(2 * np.pi) + logdet + maha)

    def sample(self, n, seed=1):
        """(x float32 [n, D], y int64 [n]) with y uniform over the classes."""
        rng = np.random.default_rng(seed)
        y = rng.integers(0, self.num_classes, n)
        z = self.prior_loc[y] + self.prior_scale * rng.normal(size=(n, self.base.latent_dim))
        noise = self.base.noise_scale * rng.normal(size=(n, self.base.data_dim))
        return (z @ self.base.w.T + self.base.b + self.shift[y] + noise).astype("float32"), y

    def vae(self, conditional_prior=False, loc_shift=0.0, objective="elbo", seed=0, **kwargs):
        """A conditional `keras_vae.VAE` (num_classes=C) with these weights and exact q.

        Without `conditional_prior` the model's prior is N(0, I): use m = 0, t = 1.
        q(z|x, y) = N(E[z|x, y] + loc_shift, Sigma_t).
        """
        base, d, dim = self.base, self.base.latent_dim, self.base.data_dim
        model = keras_vae.VAE(
            latent_dim=d, event_shape=(dim,), encoder=keras.layers.Identity(name="encoder"),
            decoder=keras.layers.Dense(dim, name="decoder"),
            posterior=DiagonalGaussianPosterior(d, min_scale=0.0, name="posterior"),
            likelihood=GaussianLikelihood((dim,), scale=base.noise_scale, name="likelihood"),
            objective=objective, seed=seed, num_classes=self.num_classes,
            conditional_prior=conditional_prior, **kwargs,
        )
        var, s2 = self.posterior_variance, base.noise_scale ** 2
        x_kernel = base.w * var / s2                                        # [D, d]
        c_kernel = self.prior_loc * var / self.prior_scale ** 2 - self.shift @ x_kernel
        kernel = np.block([[x_kernel, np.zeros((dim, d))], [c_kernel, np.zeros_like(c_kernel)]])
        bias = np.concatenate([-base.b @ x_kernel + loc_shift, np.log(np.expm1(np.sqrt(var)))])
        model.posterior.dense.kernel.assign(kernel.astype("float32"))
        model.posterior.dense.bias.assign(bias.astype("float32"))
        model.decoder.kernel.assign(np.concatenate([base.w.T, self.shift]).astype("float32"))
        model.decoder.bias.assign(base.b.astype("float32"))
        if conditional_prior:
            raw = np.log(np.expm1(self.prior_scale - model.prior.min_scale))
            model.prior.loc.assign(self.prior_loc.astype("float32"))
            model.prior.raw_scale.assign(np.tile(raw, (self.num_classes, 1)).astype("float32"))
        return model


def make_problem(dim_x=6, dim_z=3, noise_scale=0.7, seed=0):
    """(W, b, s): W [dim_x, dim_z] with orthogonal columns of norms in [0.8, 2], b [dim_x]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim_x, dim_z)))
    lam = rng.uniform(0.8, 2.0, size=dim_z)
    return q * lam, rng.normal(size=dim_x), noise_scale


def log_marginal(x, w, b, s):
    """The exact log p(x) per row of x, float64 [N]."""
    return LinearGaussian.from_weights(w, b, s).marginal_log_prob(x)


def sample_data(w, b, s, n, seed=1):
    """x ~ p(x), float32 [n, D]."""
    return LinearGaussian.from_weights(w, b, s).sample(n, seed=seed)


def make_vae(w, b, s, loc_shift=0.0, scale_factor=1.0, objective="elbo", seed=None, **kwargs):
    """A `keras_vae.VAE` whose decoder is (W, b, s) and whose encoder gives the exact
    posterior, or a wrong one (loc + loc_shift, scale * scale_factor)."""
    return LinearGaussian.from_weights(w, b, s).vae(loc_shift, scale_factor, objective,
                                                    seed=seed, **kwargs)
