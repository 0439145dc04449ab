"""A linear-Gaussian VAE with a closed-form marginal, for exact checks of the bounds.

p(z) = N(0, I_d),  p(x|z) = N(W z + b, s^2 I_D)  =>  log p(x) = log N(x; b, W W^T + s^2 I).

With W's columns orthogonal (W = Q diag(lam)), the exact posterior is diagonal:
Sigma = diag(1 / (1 + lam^2 / s^2)),  mu = Sigma W^T (x - b) / s^2,
so the package's diagonal-Gaussian posterior head can represent it exactly.
"""

import numpy as np

import keras_vae
from keras_vae._backend import keras


def make_problem(dim_x=6, dim_z=3, noise_scale=0.7, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim_x, dim_z)))
    lam = rng.uniform(0.8, 2.0, size=dim_z)
    w = q * lam  # orthogonal columns
    b = rng.normal(size=dim_x)
    return w, b, noise_scale


def log_marginal(x, w, b, s):
    """log N(x; b, W W^T + s^2 I) in float64 numpy: the exact log p(x), per row of x."""
    x = np.asarray(x, np.float64)
    cov = w @ w.T + s**2 * np.eye(w.shape[0])
    _, logdet = np.linalg.slogdet(cov)
    diff = x - b
    maha = np.einsum("bi,ij,bj->b", diff, np.linalg.inv(cov), diff)
    return -0.5 * (maha + logdet + w.shape[0] * np.log(2 * np.pi))


def exact_posterior(w, b, s):
    """(A, c, sigma): loc = x @ A + c and scale sigma of the exact posterior."""
    precision = 1.0 + np.sum(w**2, axis=0) / s**2
    sigma2 = 1.0 / precision
    a = (w * sigma2) / s**2  # [D, d]: loc = (x - b) @ A
    return a, -b @ a, np.sqrt(sigma2)


def _inverse_softplus(y):
    return np.log(np.expm1(y))


def make_vae(w, b, s, loc_shift=0.0, scale_factor=1.0, objective="elbo", **kwargs):
    """A keras_vae.VAE whose decoder is (W, b, s) and whose encoder gives the exact
    posterior, or a wrong one (loc + loc_shift, scale * scale_factor)."""
    dim_x, dim_z = w.shape
    a, c, sigma = exact_posterior(w, b, s)
    encoder = keras.Sequential([keras.Input((dim_x,)), keras.layers.Identity()], name="encoder")
    decoder = keras.Sequential([keras.Input((dim_z,)), keras.layers.Dense(dim_x)], name="decoder")
    posterior = keras_vae.posteriors.DiagonalGaussianPosterior(dim_z, min_scale=0.0)
    model = keras_vae.VAE(
        latent_dim=dim_z, event_shape=(dim_x,), encoder=encoder, decoder=decoder,
        posterior=posterior, likelihood=keras_vae.likelihoods.GaussianLikelihood((dim_x,), s),
        objective=objective, **kwargs,
    )
    decoder.layers[-1].kernel.assign(w.T.astype("float32"))
    decoder.layers[-1].bias.assign(b.astype("float32"))
    kernel = np.concatenate([a, np.zeros_like(a)], axis=1)
    bias = np.concatenate([c + loc_shift, _inverse_softplus(sigma * scale_factor)])
    posterior.dense.kernel.assign(kernel.astype("float32"))
    posterior.dense.bias.assign(bias.astype("float32"))
    return model


def sample_data(w, b, s, n, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, w.shape[1]))
    return (z @ w.T + b + s * rng.normal(size=(n, w.shape[0]))).astype("float32")
