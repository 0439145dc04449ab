"""Part pixels: Fashion-MNIST at 8 bits, bits/dim of the 'conv8' VAE beside independent baselines.

The data are the 8-bit images of keras_vae.data.load("fashion_mnist",
likelihood="discretized_logistic") (pixels 0..255, no binarisation). Figures, all on the
first N test images, in bits/dim = NLL / (784 ln 2):

```none
uniform       8 bits/dim: every value 1/256 (exact)
histogram     per-pixel independent 256-way histogram of the training set, add-one
              smoothed, computed in numpy (a baseline independent of keras_vae)
conv8 VAE     'conv8' encoder/decoder with the discretized_logistic likelihood (M = 5),
              ELBO, Adam 1e-3, batch 100, STEPS steps; importance-sampled NLL (k = K)
              and the ELBO
```

It also times log p(x|z) of the decoder's mixture as keras_vae computes it against TFP's
MixtureSameFamily(Categorical, QuantizedDistribution(Logistic)) construction on the same
parameters (one batch of 100 images, the median of repeated calls) and reports the
largest difference of the two.
"""

import math
import time

import numpy as np

import common

STEPS, QUICK_STEPS = 2000, 150
K, QUICK_K = 100, 20
EXAMPLES, QUICK_EXAMPLES = 500, 100


def histogram_bits_per_dim(x_train, x_test):
    """Per-pixel 256-way histograms (add-one) of x_train; the test bits/dim, numpy only."""
    train = x_train.reshape(len(x_train), -1).astype("int64")
    test = x_test.reshape(len(x_test), -1).astype("int64")
    dims = train.shape[1]
    counts = np.ones((dims, 256))
    for d in range(dims):
        counts[d] += np.bincount(train[:, d], minlength=256)
    log_p = np.log(counts / counts.sum(axis=1, keepdims=True))
    nll = -log_p[np.arange(dims)[None, :], test].sum(axis=1)
    return float(nll.mean() / (dims * math.log(2.0)))


def _time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return common.median(times)


def compare_with_tfp(model, x, repeats):
    """(max |difference|, ms of keras_vae, ms of the TFP construction) of log p(x|z) [B]."""
    from keras_vae._backend import tf, tfd
    from keras_vae.discretized_logistic import (MIN_LOG_SCALE, DiscretizedLogisticMixture,
                                                stacked_parameters)

    p = model.decoder_parameters(model.encode(x).mean())
    logits, locs, log_scales = stacked_parameters(p)
    ours = tfd.Independent(DiscretizedLogisticMixture(logits, locs, log_scales), 2)
    # TFP's bin k is (k - 1, k]: the logistic in pixel units, shifted by -1/2.
    quantized = tfd.QuantizedDistribution(
        tfd.Logistic(loc=(locs[..., 0, :] + 1) * 127.5 - 0.5,
                     scale=tf.exp(tf.maximum(log_scales[..., 0, :], MIN_LOG_SCALE)) * 127.5),
        low=0.0, high=255.0)
    theirs = tfd.Independent(tfd.MixtureSameFamily(tfd.Categorical(logits=logits), quantized), 2)
    x = tf.constant(x)
    ours_fn = tf.function(lambda: ours.log_prob(x))
    theirs_fn = tf.function(lambda: theirs.log_prob(x[..., 0]))
    difference = float(tf.reduce_max(tf.abs(ours_fn() - theirs_fn())))
    return difference, 1000 * _time(ours_fn, repeats), 1000 * _time(theirs_fn, repeats)


def run(args):
    import kfit
    from keras_vae import VAE, data, evaluation
    from keras_vae.evaluation.results import bits_per_dim

    steps = QUICK_STEPS if args.quick else STEPS
    k = QUICK_K if args.quick else K
    n = QUICK_EXAMPLES if args.quick else EXAMPLES
    ds = data.load("fashion_mnist", likelihood="discretized_logistic")
    x_train, x_test = ds.x_train, ds.x_test[:n]
    model = VAE(encoder="conv8", likelihood="discretized_logistic", seed=0)
    jit, spe = common.keras_settings(args)
    kfit.compile_model(model, jit_compile=jit, steps_per_execution=spe)
    start = time.perf_counter()
    kfit.fit_steps(model, kfit.index_dataset(x_train, 100), steps)
    train_s = time.perf_counter() - start
    ll = evaluation.log_likelihood(model, x_test, k=k, seed=1)
    bnds = evaluation.bounds(model, x_test, k=1, seed=2)
    dims = int(np.prod(x_test.shape[1:]))
    difference, ours_ms, tfp_ms = compare_with_tfp(model, x_test[:100], 3 if args.quick else 10)
    out = {
        "protocol": {"data": "fashion_mnist 8-bit (0..255)", "preset": "conv8",
                     "likelihood": "discretized_logistic (M=5)", "objective": "elbo",
                     "optimizer": "Adam 1e-3", "batch_size": 100, "steps": steps,
                     "epochs": round(steps * 100 / len(x_train), 2), "k": k,
                     "test_examples": n, "dims": dims},
        "train_s": round(train_s, 1),
        "vae_bits_per_dim": round(bits_per_dim(ll.nll, dims), 4),
        "vae_bits_per_dim_standard_error": round(ll.standard_error / (dims * math.log(2)), 4),
        "vae_elbo_bits_per_dim": round(bits_per_dim(-float(np.mean(bnds.elbo)), dims), 4),
        "histogram_bits_per_dim": round(histogram_bits_per_dim(x_train, x_test), 4),
        "uniform_bits_per_dim": 8.0,
        "tfp_max_abs_difference_nats": difference,
        "log_prob_ms_keras_vae": round(ours_ms, 2),
        "log_prob_ms_tfp_quantized": round(tfp_ms, 2),
    }
    common.log(f"pixels: {out}")
    return out


def rows(result):
    p = result["protocol"]
    budget = f"{p['steps']} steps of batch {p['batch_size']} ({p['epochs']} epochs)"
    return [
        (f"Fashion-MNIST 8-bit bits/dim, conv8 VAE, {budget}, IS k={p['k']}, "
         f"{p['test_examples']} test images", result["vae_bits_per_dim"],
         f"histogram {result['histogram_bits_per_dim']}, uniform 8", "", "< histogram",
         result["vae_bits_per_dim"] < result["histogram_bits_per_dim"]),
        ("discretized logistic log p(x|z), batch 100: keras_vae vs TFP QuantizedDistribution",
         f"{result['log_prob_ms_keras_vae']} ms",
         f"{result['log_prob_ms_tfp_quantized']} ms (max diff "
         f"{result['tfp_max_abs_difference_nats']:.2g} nats)",
         round(result["log_prob_ms_tfp_quantized"] / result["log_prob_ms_keras_vae"], 2),
         "exact", result["tfp_max_abs_difference_nats"] < 1e-2),
    ]
