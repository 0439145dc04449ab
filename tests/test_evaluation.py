"""keras_vae.evaluation against closed forms (a linear-Gaussian VAE, float64 numpy references)."""

import json
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

import keras_vae
from keras_vae import data as data_lib
from keras_vae import evaluation
from keras_vae._backend import keras
from support.linear_gaussian import LinearGaussian


@pytest.fixture(scope="module")
def linear_gaussian():
    return LinearGaussian(column_norms=(2.0, 1.0, 0.5), data_dim=8, noise_scale=0.5, seed=0)


@pytest.fixture(scope="module")
def x_lg(linear_gaussian):
    return linear_gaussian.sample(100, seed=1)


def _numpy_log_weights(model, x, chunks, seed):
    """log w [k, N] drawn exactly as the evaluation draws them: one SeedGenerator, chunk by chunk."""
    generator = keras.random.SeedGenerator(seed)
    parts = [model.compute_terms(x, num_samples=c, seed=generator).log_weights().numpy()
             for c in chunks]
    return np.concatenate(parts).astype("float64")


# --------------------------------------------------------------------------- log-likelihood


def test_log_likelihood_matches_closed_form_within_three_standard_errors(linear_gaussian, x_lg):
    exact = linear_gaussian.marginal_log_prob(x_lg)
    model = linear_gaussian.vae(loc_shift=0.3, scale_factor=1.3)  # q is not the posterior
    result = evaluation.log_likelihood(model, x_lg, k=5000, batch_size=100, chunk_size=1000,
                                       seed=0)
    assert result.values.shape == (100,) and result.k == 5000
    error = result.values - exact
    monte_carlo_se = error.std(ddof=1) / np.sqrt(len(error))
    assert abs(error.mean()) < 3 * monte_carlo_se + 1e-4
    assert np.abs(error).max() < 0.2  # each example, not only on average
    # The reported mean and standard error are those of the examples' values.
    assert result.mean == pytest.approx(exact.mean(), abs=3 * monte_carlo_se + 1e-4)
    assert result.standard_error == pytest.approx(
        exact.std(ddof=1) / np.sqrt(len(exact)), rel=0.02)
    assert result.nll == pytest.approx(-result.mean)


def test_log_likelihood_is_exact_with_the_exact_posterior(linear_gaussian, x_lg):
    model = linear_gaussian.vae()
    result = evaluation.log_likelihood(model, x_lg, k=7, chunk_size=3)
    np.testing.assert_allclose(result.values, linear_gaussian.marginal_log_prob(x_lg),
                               atol=2e-4)


def test_streaming_over_chunks_equals_the_log_mean_exp_of_all_weights(linear_gaussian, x_lg):
    model = linear_gaussian.vae(loc_shift=0.5, scale_factor=0.8)
    x = x_lg[:16]
    result = evaluation.log_likelihood(model, x, k=50, batch_size=16, chunk_size=20, seed=3)
    log_w = _numpy_log_weights(model, x, [20, 20, 10], seed=3)  # [50, 16]
    top = log_w.max(axis=0)
    reference = top + np.log(np.mean(np.exp(log_w - top), axis=0))
    np.testing.assert_allclose(result.values, reference, rtol=1e-5, atol=1e-5)
    weights = np.exp(log_w - top)
    weights /= weights.sum(axis=0)
    np.testing.assert_allclose(result.ess, 1.0 / np.sum(weights ** 2, axis=0), rtol=1e-4)


def test_log_likelihood_is_reproducible_and_takes_a_dataset(linear_gaussian, x_lg):
    import tensorflow as tf

    model = linear_gaussian.vae(loc_shift=0.3)
    a = evaluation.log_likelihood(model, x_lg[:20], k=64, batch_size=10, chunk_size=16, seed=5)
    b = evaluation.log_likelihood(model, x_lg[:20], k=64, batch_size=10, chunk_size=16, seed=5)
    c = evaluation.log_likelihood(model, x_lg[:20], k=64, batch_size=10, chunk_size=16, seed=6)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    batches = tf.data.Dataset.from_tensor_slices((x_lg[:20], np.zeros(20))).batch(10)
    d = evaluation.log_likelihood(model, batches, k=64, chunk_size=16, seed=5)
    np.testing.assert_allclose(d.values, a.values, rtol=1e-6)


def _peak_rss_increase(run):
    """Bytes the resident set's high-water mark rose above the current RSS during run()."""
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    before = status("VmRSS")
    run()
    return status("VmHWM") - before


_PEAK_MEMORY_SCRIPT = """
import json
from keras_vae import evaluation
from support.linear_gaussian import LinearGaussian
from test_evaluation import _peak_rss_increase

lg = LinearGaussian(column_norms=(2.0, 1.0, 0.5), data_dim=200, seed=0)
model = lg.vae(loc_shift=0.3)
x = lg.sample(40)

def run(k, chunk):
    return lambda: evaluation.log_likelihood(model, x, k=k, batch_size=40, chunk_size=chunk)

run(100, 100)()  # traces the function, warms the allocator
print(json.dumps([_peak_rss_increase(run(100, 100)), _peak_rss_increase(run(5000, 100)),
                  _peak_rss_increase(run(5000, 5000))]))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_peak_memory_does_not_grow_with_k_at_a_fixed_chunk():
    # 200-dimensional data, 40 examples: one unchunked pass of k=5000 holds
    # 5000 * 40 * 200 float32 = 160 MB per [k, B, D] tensor; a chunk of 100, 3.2 MB.
    # Measured in a fresh process: in the test session's one, memory that earlier tests
    # freed is reused by the allocator and the high-water mark does not move.
    tests = pathlib.Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get(
        "PYTHONPATH", "")]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", _PEAK_MEMORY_SCRIPT], cwd=tests, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    small, large, unchunked = json.loads(done.stdout.strip().splitlines()[-1])
    assert large < small + 16e6, (small, large)
    # The measurement can see growth: the same k=5000 in one chunk needs far more.
    assert unchunked > large + 100e6, (large, unchunked)


# --------------------------------------------------------------------------- ESS, bounds


def test_ess_is_k_for_the_exact_posterior_and_less_for_a_wrong_one(linear_gaussian, x_lg):
    exact = evaluation.effective_sample_size(linear_gaussian.vae(), x_lg, k=100, chunk_size=30)
    np.testing.assert_allclose(exact.values, 100.0, rtol=1e-3)
    wrong = evaluation.effective_sample_size(linear_gaussian.vae(loc_shift=0.5, scale_factor=0.7),
                                             x_lg, k=100)
    assert wrong.values.shape == (100,)
    assert np.all(wrong.values >= 1.0 - 1e-9) and np.all(wrong.values <= 100.0 + 1e-6)
    assert wrong.mean < 90.0
    summary = wrong.summary()
    assert summary["k"] == 100 and summary["mean_fraction"] == pytest.approx(wrong.mean / 100)


def test_bounds_match_the_closed_form_elbo_and_kl(linear_gaussian, x_lg):
    shift, factor = 0.3, 1.3
    model = linear_gaussian.vae(loc_shift=shift, scale_factor=factor)
    result = evaluation.bounds(model, x_lg, k=200, chunk_size=100)
    # Closed forms for q = N(mu, diag(sigma^2)), in float64.
    lg = linear_gaussian
    mu = lg.posterior_mean(x_lg) + shift
    var = factor ** 2 * lg.posterior_variance
    s2 = lg.noise_scale ** 2
    residual = x_lg - lg.b - mu @ lg.w.T
    reconstruction = (-0.5 * lg.data_dim * np.log(2 * np.pi * s2)
                      - (np.sum(residual ** 2, 1) + np.sum(lg.column_norms ** 2 * var)) / (2 * s2))
    kl = 0.5 * np.sum(var + mu ** 2 - 1.0 - np.log(var), axis=1)
    np.testing.assert_allclose(result.kl, kl, rtol=1e-4, atol=1e-4)  # analytic KL
    # The reconstruction is a Monte-Carlo mean over 200 draws per example.
    error = result.reconstruction - reconstruction
    assert abs(error.mean()) < 3 * error.std(ddof=1) / np.sqrt(len(error)) + 1e-4
    np.testing.assert_allclose(result.elbo, result.reconstruction - result.kl, rtol=1e-6)
    exact = lg.marginal_log_prob(x_lg)
    # ELBO < IWAE_200 <= log p(x) (up to the Monte-Carlo error of IWAE_200).
    assert np.mean(result.elbo) < np.mean(result.iwae) - 0.5
    iwae_gap = result.iwae - exact
    assert np.mean(iwae_gap) < 3 * iwae_gap.std(ddof=1) / np.sqrt(len(iwae_gap))
    summary = result.summary()
    assert set(summary) >= {"elbo", "iwae_200", "kl", "reconstruction", "elbo_standard_error"}


def test_bounds_default_to_the_objectives_samples_and_monte_carlo_kl(linear_gaussian, x_lg):
    model = linear_gaussian.vae(objective=keras_vae.IWAE(k=5), analytic_kl=False)
    result = evaluation.bounds(model, x_lg[:10])
    assert result.k == 5 and "iwae_5" in result.summary()
    # Monte-Carlo KL of the exact posterior: log q - log p averaged, not the analytic value.
    mu = linear_gaussian.posterior_mean(x_lg[:10])
    var = linear_gaussian.posterior_variance
    analytic = 0.5 * np.sum(var + mu ** 2 - 1.0 - np.log(var), axis=1)
    assert not np.allclose(result.kl, analytic, atol=1e-5)
    assert abs(np.mean(result.kl - analytic)) < 1.0


# --------------------------------------------------------------------------- active units


def test_active_units_finds_the_live_units():
    # Units 3, 4 are dead (c = 0), unit 2 nearly (Var_x E[z|x] = 0.0036 < 0.01).
    lg = LinearGaussian(column_norms=(2.0, 1.0, 0.03, 0.0, 0.0), data_dim=8, seed=2)
    x = lg.sample(3000, seed=4)
    result = evaluation.active_units(lg.vae(), x)
    c2 = lg.column_norms ** 2
    expected = c2 / (c2 + lg.noise_scale ** 2)
    np.testing.assert_allclose(result.variances[:2], expected[:2], rtol=0.1)
    assert result.variances[2] == pytest.approx(expected[2], rel=0.2)
    np.testing.assert_allclose(result.variances[3:], 0.0, atol=1e-10)
    assert result.count == 2
    np.testing.assert_array_equal(result.active, [True, True, False, False, False])
    assert evaluation.active_units(lg.vae(), x, threshold=0.001).count == 3


def test_posterior_collapse_warns_when_nothing_is_active():
    lg = LinearGaussian(column_norms=(0.0, 0.0), data_dim=6, seed=3)
    model = lg.vae()  # q(z|x) = p(z) for every x
    x = lg.sample(50)
    units = evaluation.active_units(model, x)
    kl = float(np.mean(evaluation.bounds(model, x, k=1).kl))
    assert units.count == 0 and kl == pytest.approx(0.0, abs=1e-5)
    with pytest.warns(evaluation.PosteriorCollapseWarning, match="no latent unit is active"):
        message = evaluation.check_posterior_collapse(units, kl)
    assert "KL" in message


def test_no_collapse_warning_for_a_healthy_model(linear_gaussian, x_lg):
    model = linear_gaussian.vae()
    units = evaluation.active_units(model, x_lg)
    with warnings.catch_warnings():
        warnings.simplefilter("error", evaluation.PosteriorCollapseWarning)
        assert evaluation.check_posterior_collapse(units, 2.0) is None
    with pytest.warns(evaluation.PosteriorCollapseWarning, match="mean KL"):
        evaluation.check_posterior_collapse(units, 1e-4)


# --------------------------------------------------------------------------- gradient SNR


def test_iwae_encoder_snr_falls_and_decoder_snr_rises_with_k(linear_gaussian):
    model = linear_gaussian.vae(loc_shift=0.3, scale_factor=1.3)
    x = linear_gaussian.sample(10, seed=7)
    snr = {k: evaluation.gradient_snr(model, x, objective=keras_vae.IWAE(k=k),
                                      num_estimates=100, seed=0)
           for k in (1, 8, 64)}
    encoder = [snr[k].encoder for k in (1, 8, 64)]
    decoder = [snr[k].decoder for k in (1, 8, 64)]
    assert encoder[0] > encoder[1] > encoder[2], encoder  # Rainforth et al.: O(1/sqrt(k))
    assert decoder[0] < decoder[1] < decoder[2], decoder  # O(sqrt(k))
    assert encoder[0] / encoder[2] > 3 and decoder[2] / decoder[0] > 2
    # The encoder's parameters: the posterior head's kernel and bias (8*6 + 6).
    assert snr[1].encoder_values.size == 8 * 6 + 6
    assert snr[1].decoder_values.size == 3 * 8 + 8
    # DReG (Tucker et al., 2019) removes the encoder's decline.
    dreg = [evaluation.gradient_snr(model, x, objective=keras_vae.IWAE(k=k), num_estimates=100,
                                    gradient_estimator="dreg").encoder for k in (1, 64)]
    assert dreg[1] > dreg[0] > encoder[0]
    assert model.gradient_estimator == "standard"  # restored


def test_gradient_snr_is_infinite_free_and_matches_a_numpy_reference(linear_gaussian):
    model = linear_gaussian.vae(loc_shift=0.3)
    x = linear_gaussian.sample(4, seed=8)
    result = evaluation.gradient_snr(model, x, objective="elbo", num_estimates=5, seed=1)
    # Recompute the same 5 gradient estimates by hand (same seeds, same order).
    import tensorflow as tf

    generator = keras.random.SeedGenerator(1)
    decoder_vars = model.decoder.trainable_variables
    grads = []
    for _ in range(5):
        with tf.GradientTape() as tape:
            terms = model.compute_terms(x, num_samples=1, seed=generator)
            value = tf.reduce_mean(model.objective.surrogates(terms)[0])
        grads.append(np.concatenate([g.numpy().ravel() for g in tape.gradient(value,
                                                                              decoder_vars)]))
    grads = np.stack(grads).astype("float64")
    reference = np.abs(grads.mean(0)) / grads.std(0, ddof=1)
    np.testing.assert_allclose(result.decoder_values, reference, rtol=1e-3)


# --------------------------------------------------------------------------- the report


def _tiny_mnist_vae():
    encoder = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(16, activation="tanh")], name="encoder")
    decoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(784, name="logits"),
                                keras.layers.Reshape((28, 28, 1))], name="decoder")
    return keras_vae.VAE(latent_dim=4, encoder=encoder, decoder=decoder,
                         objective=keras_vae.IWAE(k=5), seed=0)


def test_evaluate_model_writes_a_json_report_with_every_figure(tmp_path):
    dataset = data_lib.load("embedded", binarization="dynamic")
    x = dataset.x_test[:40]
    model = _tiny_mnist_vae()
    model.initialize_output_bias(dataset.x_train)
    path = tmp_path / "reports" / "eval.json"
    report = evaluation.evaluate_model(model, x, k=200, seed=0, chunk_size=50, snr_estimates=4,
                                       report_path=path, protocol=dataset.protocol, verbose=0,
                                       include_per_example=True)
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(report))
    ll = written["log_likelihood"]
    assert ll["k"] == 200 and ll["num_examples"] == 40 and ll["nll"] == -ll["mean"]
    assert np.isfinite(ll["mean"]) and ll["standard_error"] > 0
    assert len(written["per_example"]["log_likelihood"]) == 40
    bnds = written["bounds"]
    assert bnds["k"] == 5 and {"elbo", "iwae_5", "kl", "reconstruction"} <= set(bnds)
    assert bnds["elbo"] == pytest.approx(bnds["reconstruction"] - bnds["kl"], rel=1e-6)
    assert bnds["elbo"] < ll["mean"]  # IWAE_200 is above the ELBO
    assert 1 <= written["effective_sample_size"]["mean"] <= 200
    assert written["active_units"]["latent_dim"] == 4
    assert written["posterior_collapse"]["collapsed"] == (written["active_units"]["count"] == 0)
    snr = written["gradient_snr"]
    assert snr["num_estimates"] == 4 and snr["encoder_parameters"] == 784 * 16 + 16 + 16 * 8 + 8
    protocol = written["protocol"]
    assert protocol["k"] == 200 and protocol["seed"] == 0
    assert protocol["data"]["test_binarization_seed"] == data_lib.TEST_BINARIZATION_SEED
    assert protocol["data"]["binarization"] == "dynamic"
    assert protocol["model_config"]["latent_dim"] == 4
    assert written["versions"]["keras"] == keras.__version__
    # The report's numbers are the functions' numbers with the same seed.
    again = evaluation.log_likelihood(model, x, k=200, chunk_size=50, seed=0)
    assert again.mean == pytest.approx(ll["mean"], rel=1e-6)


def test_evaluate_model_warns_on_posterior_collapse():
    lg = LinearGaussian(column_norms=(0.0, 0.0), data_dim=6, seed=3)
    with pytest.warns(evaluation.PosteriorCollapseWarning):
        report = evaluation.evaluate_model(lg.vae(), lg.sample(30), k=20, snr_estimates=0,
                                           verbose=0)
    collapse = report["posterior_collapse"]
    assert collapse["collapsed"] and collapse["active_units"] == 0
    assert collapse["message"].startswith("keras_vae: posterior collapse")
    assert collapse["mean_kl"] == pytest.approx(0.0, abs=1e-5)
    assert report["gradient_snr"] is None


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 0}, "k must be a positive integer"),
    ({"chunk_size": 0}, "chunk_size must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_log_likelihood_rejects_bad_arguments(linear_gaussian, x_lg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluation.log_likelihood(linear_gaussian.vae(), x_lg, **kwargs)


def test_evaluation_rejects_data_that_do_not_fit_the_model(linear_gaussian, x_lg):
    model = linear_gaussian.vae()
    with pytest.raises(ValueError, match="shape"):
        evaluation.log_likelihood(model, x_lg[:, :5], k=2)
    bad = x_lg.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluation.active_units(model, bad)
    with pytest.raises(ValueError, match="num_estimates"):
        evaluation.gradient_snr(model, x_lg[:4], num_estimates=1)
    with pytest.raises(ValueError, match="gradient_estimator"):
        evaluation.gradient_snr(model, x_lg[:4], gradient_estimator="reinforce")
    with pytest.raises(ValueError, match="empty"):
        evaluation.log_likelihood(model, x_lg[:0], k=2)
