"""evaluation.ais / bdmc: AIS on the linear-Gaussian oracle (exact log p(x)), the reverse-AIS
upper bound on simulated data, the bookkeeping checked where every weight is exact, and the
CLI's --estimator ais (on a run trained with --posterior iaf)."""

import json

import numpy as np
import pytest

from keras_vae import cli, evaluation
from keras_vae.evaluation import ais, bdmc
from support.linear_gaussian import LinearGaussian

HMC = {"num_chains": 4, "leapfrog_steps": 5, "step_size": 0.1}


@pytest.fixture(scope="module")
def oracle():
    model = LinearGaussian()
    return model, model.vae()


def test_schedule():
    for kind in ais.SCHEDULES:
        betas = ais.schedule(50, kind)
        assert betas[0] == 0.0 and betas[-1] == 1.0 and len(betas) == 51
        assert np.all(np.diff(betas) > 0)
    np.testing.assert_allclose(ais.schedule(4, "linear"), [0, 0.25, 0.5, 0.75, 1])
    sigmoid = ais.schedule(10)
    raw = 1 / (1 + np.exp(-4 * (2 * np.linspace(0, 1, 11) - 1)))
    np.testing.assert_allclose(sigmoid, (raw - raw[0]) / (raw[-1] - raw[0]))
    with pytest.raises(ValueError, match="num_steps"):
        ais.schedule(0)
    with pytest.raises(ValueError, match="schedule"):
        ais.schedule(3, "cosine")


def test_exact_posterior_start_gives_exact_weights_both_ways(oracle):
    # With p_0 = q = p(z|x), l(z) = log p(x) for every z: every weight is exactly log p(x).
    lg, model = oracle
    x = lg.sample(7, seed=2)
    exact = lg.marginal_log_prob(x)
    hmc = {**HMC, "leapfrog_steps": 2}
    forward = evaluation.ais_log_likelihood(model, x, num_steps=6, initial="posterior",
                                            batch_size=4, chain_chunk=2, **hmc)
    np.testing.assert_allclose(forward.values, exact, atol=2e-4)
    z = lg.posterior_mean(x).astype("float32")
    reverse = evaluation.reverse_ais(model, x, z, num_steps=6, initial="posterior", **hmc)
    np.testing.assert_allclose(reverse.values, exact, atol=2e-4)
    summary = forward.summary()
    assert summary["protocol"]["num_steps"] == 6 and summary["protocol"]["schedule"] == "sigmoid"
    assert summary["protocol"]["direction"] == "forward" and summary["num_examples"] == 7


def test_ais_approaches_the_exact_log_likelihood_from_below(oracle):
    lg, model = oracle
    x = lg.sample(100, seed=3)
    exact = lg.marginal_log_prob(x)
    errors = {}
    for steps in (3, 30, 300):
        estimate = evaluation.ais_log_likelihood(model, x, num_steps=steps, seed=1, **HMC)
        diff = estimate.values - exact
        errors[steps] = float(np.mean(diff))
        # below in expectation: the mean error is not significantly positive
        assert errors[steps] < 2 * np.std(diff) / np.sqrt(len(diff)), (steps, errors)
        assert 0.3 < float(np.mean(estimate.acceptance)) <= 1.0
    assert abs(errors[300]) < abs(errors[30]) < abs(errors[3])
    assert abs(errors[300]) < 0.1, errors


def test_bdmc_sandwiches_the_exact_value_on_simulated_data(oracle):
    lg, model = oracle
    gaps = {}
    for steps in (10, 200):
        sandwich = evaluation.bdmc_gap(model, 60, seed=4, num_steps=steps, **HMC)
        exact = lg.marginal_log_prob(sandwich.x)
        n = len(exact)
        upper, lower = sandwich.upper - exact, sandwich.lower - exact
        assert np.mean(upper) > -2 * np.std(upper) / np.sqrt(n), (steps, np.mean(upper))
        assert np.mean(lower) < 2 * np.std(lower) / np.sqrt(n), (steps, np.mean(lower))
        gaps[steps] = sandwich.gap
    assert 0 < gaps[200] < gaps[10]
    assert sandwich.summary()["protocol"]["direction"] == "both"


def test_simulated_latents_are_the_ones_that_made_the_data(oracle):
    lg, model = oracle
    x, z = bdmc.simulate(model, 2000, seed=5)
    residual = x - (z @ lg.w.T + lg.b)
    np.testing.assert_allclose(residual.std(axis=0), lg.noise_scale, rtol=0.1)
    assert abs(np.corrcoef(residual[:, 0], z[:, 0])[0, 1]) < 0.1


def test_bad_settings(oracle):
    lg, model = oracle
    x = lg.sample(2)
    with pytest.raises(ValueError, match="num_chains"):
        evaluation.ais_log_likelihood(model, x, num_steps=2, num_chains=0)
    with pytest.raises(ValueError, match="step_size"):
        evaluation.ais_log_likelihood(model, x, num_steps=2, step_size=0)
    with pytest.raises(ValueError, match="initial"):
        evaluation.ais_log_likelihood(model, x, num_steps=2, initial="uniform")
    with pytest.raises(ValueError, match="one row each"):
        evaluation.reverse_ais(model, x, np.zeros((3, 3), "float32"), num_steps=2)


def test_cli_trains_an_iaf_run_and_evaluates_it_with_ais(tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", "--out", str(run), "--posterior", "iaf", "--train-examples", "100",
                     "--test-examples", "20", "--batch-size", "50", "--epochs", "1",
                     "--seed", "3", "--no-jit", "--no-pictures", "--verbose", "0"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["posterior"] == "iaf"
    assert cli.main(["evaluate", str(run), "--k", "10", "--examples", "4", "--snr-estimates",
                     "0", "--estimator", "ais", "--ais-steps", "5", "--ais-chains", "2",
                     "--ais-leapfrog", "2"]) == 0
    report = json.loads((run / "metrics.json").read_text())
    assert report["log_likelihood"]["estimator"] == "is" and report["log_likelihood"]["k"] == 10
    protocol = report["ais"]["protocol"]
    assert (protocol["num_steps"], protocol["num_chains"], protocol["leapfrog_steps"]) == (5, 2, 2)
    assert np.isfinite(report["ais"]["nll"]) and report["ais"]["num_examples"] == 4
