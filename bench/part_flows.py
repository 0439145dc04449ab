"""Part flows: IAF vs diagonal q(z|x) at an equal budget, AIS vs IS(k=5000), the BDMC gap.

1. The IWAE paper's net (784-200-200-50 tanh, MNIST, dynamic binarisation) trained with
   IWAE(k=5), batch 100, Adam 1e-3, for the same number of steps with the diagonal
   Gaussian posterior and with `posterior="iaf"` (2 steps, MADE 64 hidden, context 32);
   test NLL by importance sampling with k=5000 on the first N test images (binarised
   once with keras_vae.data's fixed seed), and the training wall time of each.
2. On the diagonal model: AIS (`evaluation.ais_log_likelihood`, prior start, sigmoid
   schedule, HMC with adaptive step size) on the first M of those images beside IS with
   k=5000 on the same images, with the time of each; AIS >= IS minus noise is what the
   literature reports (Wu et al., 2017).
3. The BDMC gap (`evaluation.bdmc_gap`) of the same AIS settings on data simulated
   from the diagonal model: the AIS lower and reverse-AIS upper bounds.
"""

import time

import common

FULL = {"train_steps": 6000, "nll_examples": 200, "ais_examples": 40, "bdmc_examples": 16,
        "ais": {"num_steps": 1000, "num_chains": 8, "leapfrog_steps": 10, "step_size": 0.05}}
QUICK = {"train_steps": 100, "nll_examples": 20, "ais_examples": 10, "bdmc_examples": 5,
         "ais": {"num_steps": 50, "num_chains": 4, "leapfrog_steps": 5, "step_size": 0.05}}
K = 5000


def _train(posterior, x_train, steps):
    import kfit
    import keras_vae
    from keras_vae._backend import keras

    keras.utils.set_random_seed(0)
    model = keras_vae.VAE(event_shape=(28, 28, 1), encoder="iwae", posterior=posterior,
                          objective=keras_vae.IWAE(k=5), seed=0)
    model.initialize_output_bias(x_train)
    kfit.compile_model(model, jit_compile=False, steps_per_execution=10)
    wall = kfit.fit_steps(model, kfit.index_dataset(x_train, 100, dynamic=True), steps)
    return model, wall


def _nll(model, x):
    from keras_vae import evaluation

    start = time.perf_counter()
    ll = evaluation.log_likelihood(model, x, k=K)
    return ll, time.perf_counter() - start


def run(args):
    import numpy as np

    from keras_vae import data, evaluation

    size = QUICK if args.quick else FULL
    x_train, x_test = common.load_mnist()
    x = data.binarize(x_test[:size["nll_examples"]])
    out = {"protocol": {**size, "k": K, "objective": "IWAE(k=5), batch 100, Adam 1e-3",
                        "iaf": "num_steps=2, hidden_units=(64,), context_units=32"}}
    models = {}
    for posterior in ("diagonal_gaussian", "iaf"):
        model, wall = _train(posterior, x_train, size["train_steps"])
        ll, seconds = _nll(model, x)
        models[posterior] = (model, ll)
        out[posterior] = {"train_wall_s": round(wall, 1), "nll": round(ll.nll, 3),
                          "nll_standard_error": round(ll.standard_error, 3),
                          "is_wall_s": round(seconds, 1)}
        common.log(f"flows: {posterior}: {out[posterior]}")
    model, ll = models["diagonal_gaussian"]
    m = size["ais_examples"]
    start = time.perf_counter()
    ais = evaluation.ais_log_likelihood(model, x[:m], batch_size=m, **size["ais"])
    ais_wall = time.perf_counter() - start
    is_subset = ll.values[:m]
    _, is_wall = _nll(model, x[:m])
    diff = ais.values - is_subset
    out["ais_vs_is"] = {"examples": m, "ais_nll": round(ais.nll, 3),
                        "is_nll": round(-float(np.mean(is_subset)), 3),
                        "ais_minus_is": round(float(np.mean(diff)), 3),
                        "ais_minus_is_se": round(float(np.std(diff, ddof=1) / np.sqrt(m)), 3),
                        "ais_wall_s": round(ais_wall, 1), "is_wall_s": round(is_wall, 1),
                        "acceptance": round(float(np.mean(ais.acceptance)), 3),
                        "step_size": round(float(np.mean(ais.step_size)), 4)}
    common.log(f"flows: AIS vs IS: {out['ais_vs_is']}")
    start = time.perf_counter()
    sandwich = evaluation.bdmc_gap(model, size["bdmc_examples"], seed=1,
                                   batch_size=size["bdmc_examples"], **size["ais"])
    out["bdmc"] = {**{k: round(v, 3) for k, v in sandwich.summary().items()
                      if k in ("lower_mean", "upper_mean", "gap")},
                   "examples": size["bdmc_examples"],
                   "wall_s": round(time.perf_counter() - start, 1)}
    common.log(f"flows: BDMC: {out['bdmc']}")
    return out


def rows(result):
    diag, iaf, ais, bdmc = (result[k] for k in ("diagonal_gaussian", "iaf", "ais_vs_is", "bdmc"))
    steps = result["protocol"]["train_steps"]
    n = result["protocol"]["nll_examples"]
    a = result["protocol"]["ais"]
    return [
        (f"test NLL k=5000 ({n} images), IWAE net, {steps} steps: IAF vs diagonal q",
         f"{iaf['nll']:.2f} nats ({iaf['train_wall_s']:.0f} s)",
         f"{diag['nll']:.2f} nats ({diag['train_wall_s']:.0f} s)",
         round(iaf["nll"] - diag["nll"], 2), "IAF <= diagonal", iaf["nll"] <= diag["nll"]),
        (f"AIS (T={a['num_steps']}, C={a['num_chains']}, L={a['leapfrog_steps']}) vs IS "
         f"k=5000, {ais['examples']} images",
         f"{ais['ais_nll']:.2f} nats ({ais['ais_wall_s']:.0f} s)",
         f"{ais['is_nll']:.2f} nats ({ais['is_wall_s']:.0f} s)",
         f"{ais['ais_minus_is']:+.2f} +- {ais['ais_minus_is_se']:.2f}", "AIS >= IS - 2 SE",
         ais["ais_minus_is"] >= -2 * ais["ais_minus_is_se"]),
        (f"BDMC gap on {bdmc['examples']} simulated images (same AIS settings)",
         f"{bdmc['gap']:.2f} nats", f"lower {bdmc['lower_mean']:.2f}, upper "
         f"{bdmc['upper_mean']:.2f}", "", ">= 0", bdmc["gap"] >= 0),
    ]
