"""Part 3, evaluation: MNIST test log-likelihood with k = 5000 (Burda et al.): wall time, peak RSS.

The model is the IWAE paper's net, briefly trained (the time of the estimate does
not depend on the weights). The test set is binarised once with keras_vae.data's
fixed seed. `keras_vae.evaluation.log_likelihood(model, x, k=5000)` runs with its
defaults (batch_size=20, chunk_size=500; log p(x|z) through the fused Bernoulli
kernel of `keras_vae.evaluation.bernoulli_sums`, which covers this model) on the
first N test images (N = 10,000 unless --eval-examples says otherwise; the
extrapolation to 10,000 is stated).
Peak RSS: the process's (ru_maxrss, which includes TF's runtime and the short
training) and the peak sampled every 20 ms during the estimate itself.

The breakdown (after the estimate, same process and threads): wall ms per image at
k = 5000 of one chunk (20 images x 500 draws) as the estimate runs it, of the decoder
alone on those draws, of the fused log p(x|z) kernel alone on its logits, and the rest
(encoder, draws, log q, log p(z), the running sums); with the decoder's matmul FLOPs
and the rate they ran at.
"""

import threading
import time

import common

K = 5000
FULL = 10000


def _rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class RssSampler:
    def __init__(self, period=0.02):
        self.period, self.peak, self._stop = period, _rss_mib(), threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, _rss_mib())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def run(args):
    import kfit
    import models
    from keras_vae import data, evaluation
    from keras_vae.evaluation import bernoulli_sums

    n = args.eval_examples or (200 if args.quick else FULL)
    x_train, x_test = common.load_mnist()
    model = models.iwae_net(models.make_objective("elbo", 1), seed=0)
    model.initialize_output_bias(x_train)
    jit, spe = common.keras_settings(args)
    kfit.compile_model(model, jit_compile=jit, steps_per_execution=spe)
    train_steps = 200 if args.quick else 1000
    kfit.fit_steps(model, kfit.index_dataset(x_train, 100, dynamic=True), train_steps)
    x = data.binarize(x_test[:n])

    # warm-up: trace the chunk function (its own tf.function, traced per call of log_likelihood)
    evaluation.log_likelihood(model, x[:20], k=500)
    rss_before = _rss_mib()
    with RssSampler() as sampler:
        start = time.perf_counter()
        ll = evaluation.log_likelihood(model, x, k=K)
        seconds = time.perf_counter() - start
    per_s = n / seconds
    out = {
        "protocol": {"k": K, "examples": n, "batch_size": 20, "chunk_size": 500,
                     "model": "IWAE net (784-200-200-50 tanh) after "
                              f"{train_steps} ELBO steps of batch 100",
                     "test_binarisation": "keras_vae.data.binarize (fixed seed)",
                     "fused_bernoulli_path": bernoulli_sums.covers(model)},
        "examples": n,
        "wall_s": round(seconds, 1),
        "images_per_s": round(per_s, 2),
        "extrapolated_10000_s": round(FULL / per_s, 1),
        "measured_full": n >= FULL,
        "nll_nats": round(ll.nll, 3),
        "nll_standard_error": round(ll.standard_error, 3),
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_during_mib": round(sampler.peak, 1),
        "process_peak_rss_mib": round(common.peak_rss_mib(), 1),
    }
    out["breakdown_ms_per_image"] = _breakdown(model, x[:20])
    common.log(f"eval: {out}")
    return out


def _breakdown(model, x, draws=500, repeats=10):
    """Wall ms per image at k = K of the chunk and its two big parts (see the module)."""
    from keras_vae._backend import keras, tf
    from keras_vae.evaluation import bernoulli_sums, streaming

    x = tf.constant(x, "float32")
    chunk = streaming._chunk_function(model, keras.random.SeedGenerator(0))
    z = model._posterior_draws(x, draws, False, 0, stop=False)["z"]
    decoder = tf.function(lambda z: model._decoder_outputs(z, training=False))
    logits = decoder(z)

    def per_image(fn):
        fn()  # trace / warm up
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) / repeats * 1000.0 * (K // draws) / len(x)

    total = per_image(lambda: [t.numpy() for t in chunk(x, draws)])
    decode = per_image(lambda: decoder(z).numpy())
    kernel = per_image(lambda: bernoulli_sums.log_likelihood(logits, x).numpy())
    dense = [v for v in model.decoder.trainable_variables if len(v.shape) == 2]
    flops = 2.0 * K * sum(int(v.shape[0]) * int(v.shape[1]) for v in dense)  # per image
    return {"chunk": round(total, 2), "decoder": round(decode, 2),
            "log_likelihood_kernel": round(kernel, 2),
            "rest": round(total - decode - kernel, 2),
            "decoder_matmul_gflop": round(flops / 1e9, 3),
            "decoder_gflops": round(flops / 1e9 / (decode / 1000.0), 1)}


def rows(result):
    t = result["extrapolated_10000_s"]
    how = "measured" if result["measured_full"] else f"extrapolated from {result['examples']}"
    peak = result["process_peak_rss_mib"]
    return [
        (f"NLL k=5000, 10,000 test images: wall ({how})", f"{t / 60:.1f} min",
         f"{result['images_per_s']} img/s", "", "<= 3 min", t <= 180),
        ("NLL k=5000: peak RSS (process)", f"{peak / 1024:.2f} GiB",
         f"{result['peak_rss_during_mib'] / 1024:.2f} GiB during the estimate", "", "<= 2 GiB",
         peak <= 2048),
    ] + _breakdown_rows(result)


def _breakdown_rows(result):
    b = result.get("breakdown_ms_per_image")
    if not b:
        return []
    return [("NLL k=5000 per image, wall ms: chunk / decoder / log p(x|z) kernel / rest",
             f"{b['chunk']} / {b['decoder']} / {b['log_likelihood_kernel']} / {b['rest']}",
             f"decoder matmuls {b['decoder_matmul_gflop']} GFLOP at {b['decoder_gflops']} "
             "GFLOP/s", "", "", None)]
