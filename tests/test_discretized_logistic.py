"""The 8-bit likelihood: pmf, tails, an independent float64 reference, TFP's construction, draws."""

import math

import numpy as np
import pytest
from scipy import special, stats

import keras_vae
from keras_vae import discretized_logistic as dl
from keras_vae._backend import tfd

PIXELS = np.arange(256, dtype="float64")


def _numpy_pmf(loc, log_scale):
    """P(k), k = 0..255, of one discretized logistic in float64 (centred scale, edge tails)."""
    s = math.exp(max(log_scale, dl.MIN_LOG_SCALE))
    y = PIXELS / 127.5 - 1.0
    upper = np.where(PIXELS == 255, np.inf, y + 1 / 255)
    lower = np.where(PIXELS == 0, -np.inf, y - 1 / 255)
    # The survival function difference is the accurate one above the location.
    high = stats.logistic.sf(lower, loc, s) - stats.logistic.sf(upper, loc, s)
    low = stats.logistic.cdf(upper, loc, s) - stats.logistic.cdf(lower, loc, s)
    return np.where(y > loc, high, low)


def _numpy_log_prob(x, logits, locs, log_scales):
    """log p(x) per pixel, float64: x [P, C], logits [P, M], locs / log_scales [P, C, M]."""
    out = np.empty(len(x))
    with np.errstate(divide="ignore"):  # P = 0 in float64 gives -inf: left out by the callers
        return _numpy_log_prob_loop(x, logits, locs, log_scales, out)


def _numpy_log_prob_loop(x, logits, locs, log_scales, out):
    for p in range(len(x)):
        log_pi = logits[p] - special.logsumexp(logits[p])
        joint = np.array([sum(np.log(_numpy_pmf(locs[p, c, m], log_scales[p, c, m])
                                     [int(x[p, c])]) for c in range(x.shape[1]))
                          for m in range(logits.shape[1])])
        out[p] = special.logsumexp(log_pi + joint)
    return out


def _extreme_parameters(rng, num):
    locs = np.concatenate([[-3.0, -1.0, -0.999, 0.0, 0.5, 1.0, 1.002, 3.0],
                           rng.uniform(-1.2, 1.2, num - 8)])
    log_scales = np.concatenate([[-9.0, -7.0, -5.0, -2.0, 0.0, 2.0, 6.0, -6.5],
                                 rng.uniform(-7, 1, num - 8)])
    return locs, log_scales


def test_every_pixel_pmf_sums_to_one_including_extreme_parameters(rng):
    locs, log_scales = _extreme_parameters(rng, 40)
    logits = rng.normal(size=(40, 3)) * 3
    m_locs = np.stack([locs, locs[::-1], np.zeros(40)], -1)[:, None, :]
    m_scales = np.stack([log_scales, log_scales[::-1], -7 * np.ones(40)], -1)[:, None, :]
    dist = dl.DiscretizedLogisticMixture(logits, m_locs, m_scales)
    values = np.broadcast_to(PIXELS[:, None, None], (256, 40, 1)).astype("float32")
    log_p = dist.log_prob(values).numpy().astype("float64")
    assert np.all(np.isfinite(log_p))
    np.testing.assert_allclose(np.exp(log_p).sum(axis=0), 1.0, atol=1e-5)


def test_edge_bins_take_the_tails():
    loc, log_scale = 0.3, -1.5
    s = math.exp(log_scale)
    dist = dl.DiscretizedLogisticMixture([[0.0]], [[[loc]]], [[[log_scale]]])
    p0 = math.exp(float(dist.log_prob([[0.0]])[0]))
    p255 = math.exp(float(dist.log_prob([[255.0]])[0]))
    assert p0 == pytest.approx(stats.logistic.cdf(-1 + 1 / 255, loc, s), rel=1e-5)
    assert p255 == pytest.approx(stats.logistic.sf(1 - 1 / 255, loc, s), rel=1e-5)
    # A location far outside [-1, 1] puts (nearly) all the mass on the edge bin.
    far = dl.DiscretizedLogisticMixture([[0.0], [0.0]], [[[-4.0]], [[4.0]]], [[[-3.0]], [[-3.0]]])
    np.testing.assert_allclose(np.exp(far.log_prob([[0.0], [255.0]]).numpy()), 1.0, atol=1e-6)


def test_log_prob_equals_float64_numpy(rng):
    num, m, c = 30, 3, 2
    locs, log_scales = _extreme_parameters(rng, num)
    logits = rng.normal(size=(num, m)) * 2
    all_locs = np.stack([np.roll(locs, i) for i in range(c * m)], -1).reshape(num, c, m)
    all_scales = np.stack([np.roll(log_scales, 3 * i) for i in range(c * m)], -1).reshape(num, c, m)
    x = rng.integers(0, 256, size=(num, c)).astype("float64")
    x[:4] = [[0, 255], [255, 0], [128, 127], [1, 254]]
    got = dl.DiscretizedLogisticMixture(logits, all_locs, all_scales).log_prob(
        x.astype("float32")).numpy()
    want = _numpy_log_prob(x, logits, all_locs, all_scales)
    finite = want > -80  # float64 scipy differences lose everything beyond e^-80
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


def test_log_prob_equals_tfp_quantized_logistic_mixture(rng):
    num, m = 50, 4
    logits = rng.normal(size=(num, m))
    locs = rng.uniform(-1.1, 1.1, size=(num, m))
    log_scales = rng.uniform(-4, 0, size=(num, m))
    x = rng.integers(0, 256, size=(num,)).astype("float32")
    ours = dl.DiscretizedLogisticMixture(logits, locs[:, None], log_scales[:, None])
    # TFP: bin k of QuantizedDistribution is (k - 1, k], so shift the pixel-unit logistic by -1/2.
    quantized = tfd.QuantizedDistribution(
        tfd.Logistic(loc=(locs + 1) * 127.5 - 0.5, scale=np.exp(log_scales) * 127.5),
        low=0.0, high=255.0)
    theirs = tfd.MixtureSameFamily(tfd.Categorical(logits=logits), quantized)
    np.testing.assert_allclose(ours.log_prob(x[:, None]).numpy(), theirs.log_prob(x).numpy(),
                               rtol=2e-4, atol=2e-4)


def test_mean_is_the_pmf_mean(rng):
    locs, log_scales = _extreme_parameters(rng, 12)
    dist = dl.DiscretizedLogisticMixture(np.zeros((12, 1)), locs[:, None, None],
                                         log_scales[:, None, None])
    want = [(PIXELS * _numpy_pmf(a, b)).sum() for a, b in zip(locs, log_scales)]
    np.testing.assert_allclose(dist.mean().numpy()[:, 0], want, atol=2e-3)


def _pmf_of(logits, locs, log_scales):
    pi = np.exp(logits - special.logsumexp(logits))
    return sum(p * _numpy_pmf(a, b) for p, a, b in zip(pi, locs, log_scales))


def _chi_square_p(samples, pmf):
    counts = np.bincount(samples.astype(int), minlength=256)
    keep = pmf * len(samples) >= 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(pmf[keep], pmf[~keep].sum()) * len(samples)
    if expected[-1] < 5:  # fold the sparse rest into the last big bin
        observed[-2] += observed[-1]
        expected[-2] += expected[-1]
        observed, expected = observed[:-1], expected[:-1]
    return stats.chisquare(observed, expected * observed.sum() / expected.sum()).pvalue


@pytest.mark.parametrize("case", [
    ([0.0, 1.0, -1.0], [-0.6, 0.2, 0.9], [-2.5, -3.0, -1.0]),
    ([2.0], [-0.98], [-3.5]),          # mass on the edge bin 0
    ([0.0, 0.0], [0.995, 0.0], [-6.0, -7.5]),   # a narrow component at 255 and at 127.5
])
def test_draw_pixels_and_sample_frequencies_match_the_pmf(case):
    logits, locs, log_scales = (np.array(v) for v in case)
    n = 20000
    pmf = _pmf_of(logits, locs, log_scales)
    layer = keras_vae.VAE(encoder="conv8", likelihood="discretized_logistic").likelihood
    params = dl.flat_parameters(np.tile(logits, (n, 1)).astype("float32"),
                                np.tile(locs, (n, 1, 1)).astype("float32"),
                                np.tile(log_scales, (n, 1, 1)).astype("float32"))
    uniform = np.random.default_rng(5).random((n, 1, 2), dtype="float32")
    drawn = layer.draw_pixels(params, uniform).numpy()[:, 0]
    sampled = dl.DiscretizedLogisticMixture(logits, locs[None], log_scales[None]).sample(
        n, seed=(3, 4)).numpy()[:, 0]
    for values in (drawn, sampled):
        assert np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255
        assert _chi_square_p(values, pmf) > 1e-3


def test_likelihood_layer_reads_both_decoder_layouts_and_matches_numpy(rng):
    for channels, m in ((1, 1), (1, 3), (3, 2)):
        layer = dl.DiscretizedLogisticLikelihood((4, 4, channels))
        layer.build(None)
        width = channels if m == 1 else dl.parameter_channels(channels, m)
        outputs = rng.normal(size=(2, 4, 4, width)).astype("float32")
        if m == 1:
            outputs = outputs * 40 + 100  # pixel units
        x = rng.integers(0, 256, size=(2, 4, 4, channels)).astype("float32")
        got = layer.distribution(outputs).log_prob(x).numpy()
        p = layer.parameters(outputs)  # image-shaped entries, the exporters' dict
        assert len(p) == 3 * m and all(v.shape == (2, 4, 4, channels) for v in p.values())
        flat = [np.asarray(v, "float64").reshape((32,) + v.shape[3:])
                for v in dl.stacked_parameters(p)]
        want = _numpy_log_prob(x.reshape(32, channels), *flat).reshape(2, 16).sum(-1)
        np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ValueError, match="channels per pixel"):
        layer.distribution(np.zeros((1, 4, 4, 5), "float32"))


def test_bad_pixel_values_get_clear_errors():
    model = keras_vae.VAE(encoder="conv8", likelihood="discretized_logistic")
    good = np.zeros((2, 28, 28, 1), "float32")
    model.validate_inputs(good)
    for bad, match in ((good + 256, "outside the support"), (good - 1, "outside the support"),
                       (good + 3.5, "non-integer"), (good + 0.5, "non-integer")):
        with pytest.raises(ValueError, match=match):
            model.validate_inputs(bad)
    with pytest.raises(ValueError, match="non-integer"):
        keras_vae.data.check_images(np.full((2, 4, 4), 0.25), likelihood="discretized_logistic")
    with pytest.raises(ValueError, match="integers in"):
        keras_vae.data.check_images(np.full((2, 4, 4), 300), likelihood="discretized_logistic")
    with pytest.raises(ValueError, match="height, width, channels"):
        dl.DiscretizedLogisticLikelihood((784,))
