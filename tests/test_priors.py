"""priors: sampling at a temperature through the shared reparameterised draw."""

import numpy as np
import pytest

from keras_vae import priors
from keras_vae._backend import keras


def test_standard_normal_sample_is_temperature_times_noise():
    prior = priors.StandardNormalPrior(3)
    z = prior.sample(5, temperature=0.5, seed=3)
    eps = keras.random.normal((5, 3), seed=3)
    np.testing.assert_allclose(z.numpy(), 0.5 * eps.numpy(), rtol=1e-6)
    assert prior.distribution().event_shape == (3,)


def test_mixture_sample_at_zero_temperature_is_a_component_location():
    prior = priors.MixtureOfGaussiansPrior(2, num_components=4)
    prior.build()
    z = prior.sample(16, temperature=0.0, seed=1).numpy()
    locs = prior.loc.numpy()
    assert z.shape == (16, 2)
    assert all(np.min(np.abs(locs - row).sum(axis=1)) < 1e-6 for row in z)


def test_vamp_needs_the_encoder_and_get_refuses_other_layers():
    prior = priors.VampPrior(2, (3,), num_components=2)
    prior.build()
    with pytest.raises(ValueError, match="encode"):
        prior.distribution()
    with pytest.raises(TypeError, match="Prior"):
        priors.get(keras.layers.Dense(2), 2, (3,))
    assert isinstance(priors.get(None, 2, (3,)), priors.StandardNormalPrior)


def _noise_by_component(z, loc, scale):
    """The component of each draw (the nearest of well-separated locations) and its noise."""
    index = np.argmin(((z[:, None, :] - loc[None]) ** 2).sum(-1), axis=1)
    return index, (z - loc[index]) / scale[index]


def _assert_noise_independent_of_component(index, eps, num_components):
    """Per component: noise mean within 5 SE of 0 and spread within 5 SE of 1."""
    for c in range(num_components):
        e = eps[index == c]
        n = e.size
        assert n > 1000, f"component {c} drawn {e.shape[0]} times of {len(index)}"
        se_mean, se_std = 1.0 / np.sqrt(n), 1.0 / np.sqrt(2.0 * n)
        assert abs(e.mean()) < 5 * se_mean, f"component {c}: noise mean {e.mean():.4f}"
        assert abs(e.std() - 1.0) < 5 * se_std, (
            f"component {c}: noise spread {e.std():.4f}, {abs(e.std() - 1) / se_std:.1f} "
            "standard errors from 1 (component draw and noise share a seed)"
        )


def test_mixture_noise_is_independent_of_the_component_for_an_int_seed():
    """20,000 draws from 10 well-separated components at seed=7 (the issue's check)."""
    prior = priors.MixtureOfGaussiansPrior(2, num_components=10)
    prior.build()
    loc = np.stack([np.arange(10) * 50.0, np.zeros(10)], axis=1).astype("float32")
    prior.loc.assign(loc)
    z = prior.sample(20000, seed=7).numpy().astype("float64")
    index, eps = _noise_by_component(z, loc, np.ones_like(loc))
    _assert_noise_independent_of_component(index, eps, 10)
    np.testing.assert_array_equal(prior.sample(50, seed=7).numpy(), z[:50])  # still seeded


def test_vamp_noise_is_independent_of_the_component_for_an_int_seed():
    from keras_vae._backend import tfd

    loc = np.stack([np.arange(10) * 50.0, np.zeros(10)], axis=1).astype("float32")
    scale = np.full_like(loc, 2.0)

    def encode(u):  # q(z | u_c): one well-separated Gaussian per pseudo-input
        return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)

    prior = priors.VampPrior(2, (3,), num_components=10)
    prior.build()
    z = prior.sample(20000, seed=7, encode=encode).numpy().astype("float64")
    index, eps = _noise_by_component(z, loc, scale)
    _assert_noise_independent_of_component(index, eps, 10)


def test_draw_seeds_gives_distinct_streams_for_an_int_seed():
    seeds = priors.draw_seeds(7)
    first = keras.random.normal((4,), seed=seeds).numpy()
    second = keras.random.normal((4,), seed=seeds).numpy()
    np.testing.assert_array_equal(first, keras.random.normal((4,), seed=7).numpy())
    assert not np.allclose(first, second)
    generator = keras.random.SeedGenerator(1)
    assert priors.draw_seeds(generator) is generator and priors.draw_seeds(None) is None
