"""keras_vae.comparison on data that are not images: metrics only, the evaluation's numbers.

The pictures are checked with real models in test_baselines.py.
"""

import json

import pytest

from keras_vae import comparison, evaluation
from support.linear_gaussian import LinearGaussian


@pytest.fixture(scope="module")
def problem():
    lg = LinearGaussian(column_norms=(2.0, 1.0), data_dim=7, noise_scale=0.5, seed=2)
    return lg, lg.sample(30, seed=4)


def test_log_likelihood_is_the_mean_of_the_evaluation_estimate(problem):
    lg, x = problem
    model = lg.vae(loc_shift=0.2)
    mean = comparison.log_likelihood(model, x, k=40, batch_size=8, seed=5)
    expected = evaluation.log_likelihood(model, x, k=40, batch_size=8, seed=5).mean
    assert mean == pytest.approx(expected, rel=1e-12)
    # q is close to the exact posterior: close to the closed form.
    assert mean == pytest.approx(lg.marginal_log_prob(x).mean(), abs=0.1)


def test_vectors_get_metrics_and_no_pictures(problem, tmp_path):
    lg, x = problem
    report = comparison.compare({"exact": lg.vae(), "wrong": lg.vae(loc_shift=0.5)}, x,
                                tmp_path / "out", seed=1, num_samples=4, steps=3, k=20,
                                batch_size=10, pair=(0, 5))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.json"]
    assert set(report["files"]) == {"metrics"}
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["pair"] == [0, 5] and written["num_test_examples"] == 30
    exact, wrong = written["metrics"]["exact"], written["metrics"]["wrong"]
    assert exact["kind"] == "VAE" and exact["latent_dim"] == 2
    assert exact["reconstruction_bce"] is None  # Gaussian data, not in [0, 1]
    assert exact["log_likelihood_k"] == 20
    assert exact["test_log_likelihood"] > wrong["test_log_likelihood"]


def test_compare_refuses_what_it_cannot_report(problem, tmp_path):
    lg, x = problem
    with pytest.raises(ValueError, match="at least one model"):
        comparison.compare({}, x, tmp_path)
    with pytest.raises(ValueError, match="at least 2 test examples"):
        comparison.compare({"vae": lg.vae()}, x[:1], tmp_path)
