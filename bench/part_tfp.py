"""Part 2, TFP overhead: keras_vae's TFP distributions against hand-written log-densities.

`models.ClosedFormVAE` overrides only `compute_terms` with the closed-form
Normal / Bernoulli log-densities and Gaussian KL; everything else (train_step,
objective, metrics, optimizer) is shared. First the two are checked to compute the
same log-weights on the same noise; then their training throughput is compared,
interleaved (A B B A ...), for the seed MLP (ELBO, analytic KL) and the IWAE net (IWAE k=5,
where log p(z) and log q(z|x) are evaluated per sample), with XLA on and off.
At the default XLA setting a second, identical TFP model (`models.TFPLogProbVAE`,
a control: the same code as keras_vae.VAE) runs beside them, so the spread between
two identical models is on record next to the overhead.
Overhead = median over rounds of (closed-form throughput / TFP throughput) - 1
(wall clock); the same by process CPU time is recorded beside it (steadier when
the machine is shared).
"""

import common
import numpy as np

CASES = (
    ("seed MLP, ELBO, batch 128", "seed_mlp", "elbo", 1, 128),
    ("IWAE net, IWAE k=5, batch 20", "iwae_net", "iwae", 5, 20),
)


def plan(quick):
    return {"rounds": 2 if quick else 4, "steps": 100 if quick else 250}


def run(args):
    import kfit
    import models
    from keras_vae._backend import keras, tf

    p = plan(args.quick)
    x_train, _ = common.load_mnist()
    x = common.binarize(x_train, seed=0)
    _, spe = common.keras_settings(args)
    default_jit, _ = common.keras_settings(args)
    jits = (args.jit,) if args.jit is not None else (default_jit, not default_jit)
    out = {"protocol": {"rounds": p["rounds"], "steps": p["steps"], "steps_per_execution": spe},
           "cases": {}}
    for label, net, kind, k, batch in CASES:
        build = getattr(models, net)
        # The same numbers: same weights, same noise.
        a = build(models.make_objective(kind, k), seed=0)
        b = build(models.make_objective(kind, k), seed=0, cls=models.ClosedFormVAE)
        b.set_weights(a.get_weights())
        xb = tf.constant(x[:batch])
        ta = a.compute_terms(xb, seed=123)
        tb = b.compute_terms(xb, seed=123)
        diff = float(np.max(np.abs(ta.log_weights().numpy() - tb.log_weights().numpy())))
        kl_diff = float(np.max(np.abs(ta.kl.numpy() - tb.kl.numpy())))
        case = {"max_abs_diff_log_w": diff, "max_abs_diff_kl": kl_diff}
        for jit in jits:
            runners = {}
            variants = [("tfp", None), ("closed_form", models.ClosedFormVAE)]
            if jit == default_jit:  # a control: the same TFP model twice
                variants.append(("tfp_bernoulli_log_prob", models.TFPLogProbVAE))
            for name, cls in variants:
                m = build(models.make_objective(kind, k), seed=0, cls=cls)
                m.initialize_output_bias(x)
                kfit.compile_model(m, jit_compile=jit, steps_per_execution=spe)
                ds = kfit.index_dataset(x, batch)
                kfit.fit_steps(m, ds, 2 * spe)  # compile, warm up
                runners[name] = (m, ds)
            pairs, cpu_pairs, old_pairs = [], [], []
            for r in range(p["rounds"]):
                speed, cpu = {}, {}
                order = list(runners) if r % 2 == 0 else list(runners)[::-1]  # ABBA
                for name in order:
                    m, ds = runners[name]
                    speed[name] = p["steps"] * batch / kfit.fit_steps(m, ds, p["steps"])
                    cpu[name] = kfit.LAST_CPU_SECONDS[0]
                pairs.append((speed["closed_form"], speed["tfp"]))
                cpu_pairs.append((cpu["tfp"], cpu["closed_form"]))
                if "tfp_bernoulli_log_prob" in speed:
                    old_pairs.append((speed["closed_form"], speed["tfp_bernoulli_log_prob"]))
            ratio = common.ratio_summary(pairs)
            cpu_ratio = common.ratio_summary(cpu_pairs)
            case[f"jit={jit}"] = {
                "tfp_examples_per_s": round(common.median([b_ for _, b_ in pairs]), 1),
                "closed_form_examples_per_s": round(common.median([a_ for a_, _ in pairs]), 1),
                "overhead_pct": round(100 * (ratio["median"] - 1), 1),
                "ratio_closed_over_tfp": ratio,
                "overhead_by_cpu_time_pct": round(100 * (cpu_ratio["median"] - 1), 1),
                "ratio_by_cpu_time": cpu_ratio,
            }
            if old_pairs:
                r_old = common.ratio_summary(old_pairs)
                case[f"jit={jit}"]["tfp_control_identical"] = {
                    "examples_per_s": round(common.median([b_ for _, b_ in old_pairs]), 1),
                    "overhead_pct": round(100 * (r_old["median"] - 1), 1),
                    "ratio_closed_over_it": r_old,
                }
            common.log(f"TFP overhead, {label}, jit={jit}: {case[f'jit={jit}']}")
            keras.backend.clear_session()
        out["cases"][label] = case
    return out


def rows(result):
    out = []
    for label, case in result["cases"].items():
        for key, e in case.items():
            if not key.startswith("jit="):
                continue
            out.append((f"TFP overhead, {label}, {key} (ex/s)", e["tfp_examples_per_s"],
                        f"{e['closed_form_examples_per_s']} (hand-written)",
                        f"{e['overhead_pct']:+.1f} %", "<= 5 %", e["overhead_pct"] <= 5.0))
            old = e.get("tfp_control_identical")
            if old:
                out.append((f"... control: the same TFP model again, {key}",
                            old["examples_per_s"], "", f"{old['overhead_pct']:+.1f} %", "", None))
    return out
