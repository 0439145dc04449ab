"""keras_vae.batches: batches gathered and binarised inside the compiled step.

The in-step draws are checked as Bernoulli(x) by statistics (mean, independence
across steps and across examples, each with a bound from the sample size), as
deterministic functions of (seed, epoch, step), and as the very batches of
`data.training_stream`; `model.fit` on arrays and on a `Batches` trains exactly as
on the same batches given as a tf.data pipeline.
"""

import numpy as np
import pytest

import keras_vae
from keras_vae import batches, data
from keras_vae._backend import keras, tf

B, D, STEPS = 8, 64, 200


def _draws(source, epochs=1, compiled=True):
    """[epochs * steps, B, D] in-step batches of `source` (through a compiled function)."""
    source.bind()
    fn = tf.function(source.batch, jit_compile=True) if compiled else source.batch
    out = []
    for epoch in range(epochs):
        source.set_epoch(epoch)
        for positions in source.dataset():
            out.append(np.asarray(fn(positions[batches.POSITIONS])).reshape(
                len(positions[batches.POSITIONS]), -1))
    return np.stack(out)


@pytest.fixture(scope="module")
def grey():
    # Every example has the same grey values p in (0.05, 0.95), so draws at the same
    # pixel are identically distributed across examples and steps.
    p = np.linspace(0.05, 0.95, D, dtype="float32")
    return np.tile(p, (B * STEPS, 1)).reshape(B * STEPS, 8, 8, 1), p


def test_in_step_binarisation_is_bernoulli_of_x(grey):
    x, p = grey
    draws = _draws(batches.Batches(x, B, seed=3, dynamic=True, shuffle=False))
    assert draws.shape == (STEPS, B, D) and set(np.unique(draws)) == {0.0, 1.0}
    n = STEPS * B
    # The mean over all uses of a pixel: within 5 standard errors of p.
    mean = draws.reshape(n, D).mean(axis=0)
    np.testing.assert_array_less(np.abs(mean - p), 5 * np.sqrt(p * (1 - p) / n))
    centred = (draws - p) / np.sqrt(p * (1 - p))
    # Independence: the correlation of a pixel's draw with the next step's (same example)
    # and with the next example's (same step) is ~N(0, 1/m) over m pairs: |r| < 5/sqrt(m).
    for a, b in ((centred[1:], centred[:-1]), (centred[:, 1:], centred[:, :-1])):
        r = float(np.mean(a * b))
        assert abs(r) < 5 / np.sqrt(a.size), r
    # And no pixel is tied to another of the same draw.
    r_pixels = float(np.mean(centred[..., 1:] * centred[..., :-1]))
    assert abs(r_pixels) < 5 / np.sqrt(centred[..., 1:].size)


def test_draws_are_a_function_of_seed_epoch_and_step(grey):
    x, _ = grey
    x = x[: B * 10]
    make = lambda seed: batches.Batches(x, B, seed=seed, dynamic=True)  # noqa: E731
    first, again, other = _draws(make(1), 2), _draws(make(1), 2), _draws(make(2), 2)
    np.testing.assert_array_equal(first, again)
    assert np.mean(first != other) > 0.2
    assert np.mean(first[:10] != first[10:]) > 0.2  # each epoch draws afresh


def test_the_batches_are_those_of_training_stream():
    rng = np.random.default_rng(0)
    x = rng.random((45, 4, 4, 1)).astype("float32")
    y = np.arange(45) % 3
    source = batches.Batches(x, 10, seed=11, y=y, dynamic=True, drop_remainder=True)
    stream, steps = data.training_stream(x, 10, 11, 0, 3, dynamic=True, labels=y)
    assert steps == source.steps == 4
    expected = list(stream.as_numpy_iterator())
    source.bind()
    got = []
    for epoch in range(3):
        source.set_epoch(epoch)
        got += [source.batch(e[batches.POSITIONS]) for e in source.dataset()]
    assert len(got) == len(expected) == 12
    for (gx, gy), (ex, ey) in zip(got, expected):
        np.testing.assert_array_equal(gx.numpy(), ex)
        np.testing.assert_array_equal(gy.numpy(), ey)


def test_bad_arguments():
    x = np.full((10, 2), 0.5, "float32")
    with pytest.raises(ValueError, match="batch_size"):
        batches.Batches(x, 11)
    with pytest.raises(ValueError, match="labels"):
        batches.Batches(x, 2, y=np.zeros(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        batches.Batches(x + 1, 2, dynamic=True)


def _model():
    keras.utils.set_random_seed(0)
    model = keras_vae.VAE(encoder="mlp", latent_dim=2, event_shape=(4, 4, 1), seed=0)
    model.compile(optimizer="adam", steps_per_execution=4, jit_compile=False)
    return model


def test_fit_on_arrays_gathers_in_step_like_keras_batches():
    rng = np.random.default_rng(1)
    x = (rng.random((42, 4, 4, 1)) < 0.4).astype("float32")  # 42 = 5 batches of 8 + 2
    in_step = _model()
    history = in_step.fit(x, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert isinstance(in_step._in_step_batches, batches.Batches)
    pipeline = _model()
    reference = pipeline.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=2,
                             verbose=0).history
    assert int(in_step.optimizer.iterations) == int(pipeline.optimizer.iterations) == 12
    np.testing.assert_allclose(history["loss"], reference["loss"], rtol=1e-5)
    for a, b in zip(in_step.get_weights(), pipeline.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
