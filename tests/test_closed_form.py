"""The bounds against the closed form of a linear-Gaussian VAE (log p(x) known exactly)."""

import numpy as np
import pytest

from keras_vae import objectives
from support.linear_gaussian import log_marginal, make_problem, make_vae, sample_data


@pytest.fixture(scope="module")
def problem():
    w, b, s = make_problem()
    x = sample_data(w, b, s, n=16)
    return w, b, s, x, log_marginal(x, w, b, s)


def test_exact_posterior_makes_every_log_weight_equal_log_px(problem):
    w, b, s, x, log_px = problem
    model = make_vae(w, b, s)
    terms = model.compute_terms(x, num_samples=50, seed=3)
    log_w = terms.log_weights().numpy()
    # q = p(z|x): log w = log p(x) for every single sample, not just on average.
    np.testing.assert_allclose(log_w, np.broadcast_to(log_px, log_w.shape), atol=2e-4)
    elbo = objectives.elbo_bound(terms.log_weights()).numpy()
    iwae = objectives.iwae_bound(terms.log_weights()).numpy()
    np.testing.assert_allclose(elbo, log_px, atol=2e-4)
    np.testing.assert_allclose(iwae, log_px, atol=2e-4)
    # The analytic-KL ELBO, E_q log p(x|z) - KL, is exact only in expectation (its
    # reconstruction term is Monte Carlo): within 4 standard errors of log p(x).
    terms = model.compute_terms(x, num_samples=4000, seed=4)
    recon = terms.log_likelihood.numpy()
    analytic = recon.mean(0) - terms.kl.numpy()
    stderr = recon.std(0) / np.sqrt(recon.shape[0])
    assert np.all(np.abs(analytic - log_px) < 4 * stderr + 1e-4)


def test_wrong_posterior_orders_the_bounds_and_iwae_approaches_log_px(problem):
    w, b, s, x, log_px = problem
    model = make_vae(w, b, s, loc_shift=0.6, scale_factor=1.8)
    replicates = 400
    expected = {}
    for k in (1, 4, 16, 64):
        terms = model.compute_terms(x, num_samples=replicates * k, seed=k)
        # MIWAE(R, k) is the mean of R independent IWAE_k estimates: E[IWAE_k].
        expected[k] = objectives.miwae_bound(terms.log_weights(), replicates).numpy()
    elbo = expected[1]
    gaps = {k: np.mean(log_px - v) for k, v in expected.items()}
    assert np.all(elbo < log_px)
    for k in (4, 16, 64):
        assert np.all(expected[k] <= log_px + 1e-3), k
        assert np.all(expected[k] >= elbo - 0.05), k
    # The gap to log p(x) shrinks monotonically and substantially with k.
    assert gaps[1] > gaps[4] > gaps[16] > gaps[64] > 0
    assert gaps[64] < 0.25 * gaps[1]
