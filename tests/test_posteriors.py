"""posteriors: the diagonal-Gaussian head and the one reparameterised draw."""

import numpy as np
import pytest

from keras_vae import posteriors
from keras_vae._backend import keras


def test_sample_is_loc_plus_scale_times_the_seeded_noise():
    head = posteriors.DiagonalGaussianPosterior(3)
    loc, scale = head(np.random.default_rng(0).normal(size=(4, 5)).astype("float32"))
    z = head.sample((loc, scale), 2, seed=7)
    eps = keras.random.normal((2, 4, 3), seed=7)
    assert z.shape == (2, 4, 3)
    np.testing.assert_array_equal(z.numpy(), (loc + scale * eps).numpy())
    one = head.sample((loc, scale), seed=7)  # no sample axis
    assert one.shape == (4, 3)
    assert np.all(scale.numpy() > 0)


def test_reparameterize_and_distribution_agree():
    head = posteriors.DiagonalGaussianPosterior(2, min_scale=0.1)
    params = head(np.ones((1, 4), "float32"))
    q = head.distribution(params)
    assert q.event_shape == (2,) and q.batch_shape == (1,)
    z = posteriors.reparameterize(params[0], params[1], np.zeros((1, 2), "float32"))
    np.testing.assert_allclose(z.numpy(), q.mean().numpy())


def test_get_and_bad_arguments():
    assert isinstance(posteriors.get(None, 4), posteriors.DiagonalGaussianPosterior)
    head = posteriors.DiagonalGaussianPosterior(4)
    assert posteriors.get(head, 4) is head
    with pytest.raises(ValueError, match="latent_dim"):
        posteriors.DiagonalGaussianPosterior(0)
    with pytest.raises(ValueError, match="min_scale"):
        posteriors.DiagonalGaussianPosterior(2, min_scale=-1)
