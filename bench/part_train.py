"""Part 1, training throughput: keras_vae against a PyTorch reference loop of the same nets.

(a) Choose keras_vae's settings by measurement: the defaults against steps_per_execution
    1, 10, 200 and jit_compile=False, seed MLP, interleaved rounds; and PyTorch's
    thread count in {1, cores}. Every keras_vae figure is plain `model.fit(x,
    batch_size=B)` on an array, the library's default path (in-step batches).
(b) Seed MLP 784-200-10, batch 128, statically binarised MNIST, Adam(1e-3):
    keras_vae (best settings) vs PyTorch, A/B/A/B, median of the per-round ratios.
(c) The IWAE paper's net (784-200-200-50, tanh), IWAE_k at k = 1, 5, 50, batch 20
    (the paper's): keras_vae (jit on and off) vs PyTorch IWAE, interleaved.
(e) Where the seed MLP's step time goes (`step_breakdown`).
(d) IWAE k = 50 against the compute-bound ideal: one compiled loop (XLA or not,
    the faster) doing the encoder's forward+backward on B rows, the decoder's
    forward+backward on k*B rows (the decoder "k times", batched) with the
    Bernoulli log-likelihood of its outputs, and the Adam update, nothing else;
    the ratio keras_vae step / ideal step. The same without the likelihood
    (matmuls, tanh and Adam only) is reported beside it.
"""

import time

import common
import numpy as np

SEED_BATCH = 128
IWAE_BATCH = 20
IWAE_KS = (1, 5, 50)


def plan(quick):
    if quick:
        return {"sweep_rounds": 1, "rounds": 2, "seed_steps": 100,
                "iwae_steps": {1: 200, 5: 100, 50: 50}, "ideal_reps": 20}
    return {"sweep_rounds": 2, "rounds": 4, "seed_steps": 300,
            "iwae_steps": {1: 600, 5: 300, 50: 60}, "ideal_reps": 50}


# --------------------------------------------------------------------------- torch side


class TorchRunner:
    """The PyTorch reference, trained in its own process (bench/torch_worker.py).

    Not in this process: TensorFlow's and PyTorch's thread pools would share the same
    cores, and PyTorch's OpenMP threads slow down badly when TF's threads are awake.
    This process waits on a pipe while the worker runs.
    """

    _worker = None
    _data_path = None

    @classmethod
    def _ensure_worker(cls, x):
        import subprocess
        import sys
        import tempfile

        if cls._worker is None or cls._worker.poll() is not None:
            cls._data_path = tempfile.mktemp(prefix="keras_vae_bench_x_", suffix=".npy")
            np.save(cls._data_path, (x > 0.5).astype(np.uint8))
            cls._worker = subprocess.Popen(
                [sys.executable, str(common.BENCH / "torch_worker.py")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        return cls._worker

    @classmethod
    def call(cls, **message):
        import json

        worker = cls._worker
        worker.stdin.write(json.dumps(message) + "\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError("the PyTorch worker died (see its stderr above)")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"PyTorch worker: {reply['error']}")
        return reply

    @classmethod
    def close(cls):
        import os

        if cls._worker is not None:
            try:
                cls.call(cmd="quit")
            except Exception:
                pass
            cls._worker.wait(timeout=30)
            cls._worker = None
        if cls._data_path and os.path.exists(cls._data_path):
            os.unlink(cls._data_path)

    def __init__(self, device, precision, hidden, latent, activation, x, kind, k, batch,
                 seed=0, lr=1e-3):
        self._ensure_worker(x)
        self.batch = batch
        self.call(cmd="setup", data=self._data_path, device=device, precision=precision,
                  hidden=list(hidden), latent=latent, activation=activation, kind=kind, k=k,
                  batch=batch, seed=seed, lr=lr)
        self.cpu_per_example = float("nan")

    def trial(self, steps):
        """Examples per second over `steps` steps (data shuffling and indexing included)."""
        reply = self.call(cmd="trial", steps=steps)
        self.cpu_per_example = reply["cpu_per_example"]
        return reply["examples_per_s"]

    @classmethod
    def set_threads(cls, n):
        cls.call(cmd="threads", n=n)


def choose_torch_threads(make_runner, steps, rounds):
    import os

    options = sorted({1, os.cpu_count() or 1})
    runner = make_runner()
    runner.trial(max(10, steps // 10))  # warm-up
    speeds = {n: [] for n in options}
    for _ in range(rounds):
        for n in options:
            TorchRunner.set_threads(n)
            speeds[n].append(runner.trial(steps))
    best = max(options, key=lambda n: common.median(speeds[n]))
    TorchRunner.set_threads(best)
    return best, {str(n): round(common.median(v), 1) for n, v in speeds.items()}


# --------------------------------------------------------------------------- keras side


class KerasRunner:
    """keras_vae through plain `model.fit(x, batch_size=B)` (the library's default path).

    `steps` fixes the trial: one epoch over the first steps * B examples (one array,
    so every trial reuses the same in-step batches and compiled step).
    """

    def __init__(self, build, x, batch, jit_compile, steps_per_execution, steps, lr=1e-3):
        import kfit

        self.kfit = kfit
        self.model = build()
        self.model.initialize_output_bias(x)
        kfit.compile_model(self.model, lr, jit_compile, steps_per_execution)
        self.part = kfit.array_part(x, batch, steps)
        self.batch, self.steps = batch, steps
        self.spe = int(self.model.steps_per_execution)
        self.label = _keras_label(jit_compile, steps_per_execution)

    def warm(self):
        start = time.perf_counter()
        self.kfit.fit_array_steps(self.model, self.part, self.batch)
        return time.perf_counter() - start

    def trial(self, steps):
        if steps != self.steps:
            raise ValueError(f"this runner times {self.steps} steps, not {steps}")
        self.steps_done = steps
        wall = self.kfit.fit_array_steps(self.model, self.part, self.batch)
        self.cpu_per_example = self.kfit.LAST_CPU_SECONDS[0] / (steps * self.batch)
        self.call_overhead_s = self.kfit.LAST_CALL_SECONDS[0] - wall
        return steps * self.batch / wall


def looped(fn, xb, steps, jit):
    """A tf.function that runs `fn(xb)` `steps` times in one graph (the sum of its outputs)."""
    from keras_vae._backend import tf

    inner = tf.function(fn, jit_compile=jit)

    @tf.function
    def run():
        total = tf.constant(0.0)
        for _ in tf.range(steps):
            total += tf.reduce_sum(inner(xb))
        return total

    return run


def ideal_step_seconds(model, batch, k, reps, jit_compile=True, likelihood=True, seed=0,
                       keep_value=True):
    """Seconds of the compute-bound ideal step (see the module docstring).

    One compiled loop of `reps` iterations, each: the encoder and posterior head
    forward and backward on B rows; the decoder forward and backward on k*B rows;
    with likelihood=True the Bernoulli log-likelihood of those k*B outputs (the
    cheapest closed form, x*l - softplus(l): one exp and one log1p per pixel, with
    x broadcast over the k draws; TF's sigmoid cross-entropy on x tiled k times
    cost ~1 ms more at k = 50 under XLA), one value per draw, as the decoder's
    loss, else a fixed random weighting of the logits (matmuls only); Adam's
    elementwise update of every weight. No sampling, prior, posterior density,
    log-mean-exp, metrics or Keras loop. Upstream gradients are dense random
    tensors (a constant upstream gradient would let XLA turn the weight gradients
    into reductions).

    The loss's value joins the loop's carry. With keep_value=False (the definition
    until 2026-12-03) it does not, and XLA drops the forward log-likelihood, keeping
    only its gradient (sigmoid(l) - x): no IWAE step can do that (its importance
    weights are the softmax over the k values of log p(x|z)), nor any step that
    logs its loss.
    """
    from keras_vae._backend import tf

    enc_layers = [model.encoder, model.posterior]
    enc_vars = [v for layer in enc_layers for v in layer.trainable_variables]
    dec_vars = list(model.decoder.trainable_variables)
    all_vars = enc_vars + dec_vars
    rng = np.random.default_rng(seed)
    d = model.latent_dim
    x_np = (rng.random((batch,) + model.event_shape) < 0.13).astype("float32")
    x = tf.constant(x_np)
    x_flat = tf.constant(x_np.reshape(1, batch, -1))
    z = tf.constant(rng.standard_normal((k * batch, d)).astype("float32"))
    r_enc = tf.constant(rng.standard_normal((batch, d)).astype("float32"))
    r_dec = tf.constant(rng.standard_normal((k * batch,) + model.event_shape).astype("float32"))
    r_draw = tf.constant(rng.standard_normal((k * batch,)).astype("float32"))

    @tf.function(jit_compile=jit_compile)
    def loop(x, z):
        m0 = [tf.zeros_like(v) for v in all_vars]

        def body(i, acc, ms, vs):
            with tf.GradientTape() as tape:
                loc, scale = model.posterior(model.encoder(x + acc * 1e-30))
                logits = model.decoder(z + acc * 1e-30)
                loss = tf.reduce_sum(loc * r_enc) + tf.reduce_sum(scale * r_enc)
                if likelihood:  # x broadcast over the k draws, as log p(x|z) of [k, B] draws is
                    logits_kb = tf.reshape(logits, (k, batch, -1))
                    per_pixel = x_flat * logits_kb - tf.math.softplus(logits_kb)
                else:
                    per_pixel = logits * r_dec
                # one value per draw (log p(x|z_s) when likelihood), then a dense random
                # weighting of the k*B draws, as importance weights are (a full reduction
                # of the pixels to one scalar takes a ~10x slower XLA CPU kernel)
                per_draw = tf.reduce_sum(tf.reshape(per_pixel, (k * batch, -1)), axis=-1)
                loss += tf.reduce_sum(per_draw * r_draw)
            grads = tape.gradient(loss, all_vars)
            new_ms, new_vs, total = [], [], 0.0
            for g, m, v in zip(grads, ms, vs):  # Adam's elementwise work on every weight
                m = 0.9 * m + 0.1 * g
                v = 0.999 * v + 0.001 * tf.square(g)
                total += tf.reduce_sum(m / (tf.sqrt(v) + 1e-7))
                new_ms.append(m)
                new_vs.append(v)
            kept = total + loss if keep_value else total
            return i + 1, acc + kept * 1e-30, new_ms, new_vs

        _, acc, _, _ = tf.while_loop(lambda i, *_: i < reps, body,
                                     (tf.constant(0), tf.constant(0.0), m0, list(m0)))
        return acc

    loop(x, z).numpy()  # compile
    times = []
    for _ in range(3):
        start = time.perf_counter()
        loop(x, z).numpy()
        times.append((time.perf_counter() - start) / reps)
    return min(times)


def step_breakdown(runner, x, batch, steps, rounds):
    """Where a keras_vae step's time goes: ms per step of nested pieces, one compiled loop each.

    ideal       networks forward+backward, Bernoulli log-likelihood, Adam's elementwise work
    fwd_bwd     compute_terms (sampling, TFP densities, KL) + objective + gradients
    minimal     fwd_bwd + keras's optimizer.apply
    unguarded   VAE.train_step with its non-finite guard replaced by a plain optimizer.apply
                (an ablation, traced here only: the library has no such switch)
    train_step  VAE.train_step: + metrics, the non-finite guard, loss scaling
    fit         plain model.fit on the array, batches gathered in-step (the figure of (b)),
                each execution one XLA loop (keras_vae.fused_steps), so it can be below
                the pieces above, which are graph loops calling one compiled step each

    train_step - unguarded is what the exact guard costs: the update waits for one
    logical reduction over every gradient (guard.all_finite), and each write of
    the update is a select (guard.masked_writes under XLA; before, a tf.cond that
    XLA turned into selects copied every optimizer slot each step).
    """
    from keras_vae import training
    from keras_vae._backend import tf

    model, jit = runner.model, bool(runner.model.jit_compile)
    xb = tf.constant(x[:batch])
    variables = model.trainable_variables

    def loss_and_grads(xb):
        with tf.GradientTape() as tape:
            terms = model.compute_terms(xb, training=True)
            value, _ = model.objective.surrogates(terms)
            loss = tf.nn.compute_average_loss(-value)
        return loss, tape.gradient(loss, variables)

    def fwd_bwd(xb):
        loss, grads = loss_and_grads(xb)
        return loss + 1e-30 * tf.add_n([tf.reduce_sum(g) for g in grads])

    def minimal(xb):
        loss, grads = loss_and_grads(xb)
        model.optimizer.apply(grads, variables)
        return loss

    def train_step(xb):
        return model.train_step(xb)["loss"]

    def unguarded_apply(optimizer, counter, loss, grads, variables, halt=None):
        optimizer.apply(grads, variables)

    fns = {name: looped(fn, xb, steps, jit) for name, fn in
           (("fwd_bwd", fwd_bwd), ("minimal", minimal), ("unguarded", train_step),
            ("train_step", train_step))}
    guarded = training.apply_if_finite
    for name, fn in fns.items():  # the first call traces: the ablation is traced unguarded
        training.apply_if_finite = unguarded_apply if name == "unguarded" else guarded
        try:
            fn()
        finally:
            training.apply_if_finite = guarded
    times = {name: [] for name in fns}
    fit_times = []
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn().numpy()
            times[name].append((time.perf_counter() - start) / steps)
        fit_times.append(batch / runner.trial(steps))
    ideal = min(ideal_step_seconds(model, batch, 1, 50, True),
                ideal_step_seconds(model, batch, 1, 50, False))
    out = {"ideal": ideal, **{n: common.median(v) for n, v in times.items()},
           "fit": common.median(fit_times)}
    return {k: round(v * 1e3, 3) for k, v in out.items()}


# --------------------------------------------------------------------------- the part


def _keras_label(jit, spe):
    return f"jit={'default' if jit is None else jit},spe={'default' if spe is None else spe}"


def run(args):
    import models
    from keras_vae import training
    from keras_vae._backend import keras

    p = plan(args.quick)
    x_train, _ = common.load_mnist()
    x = common.binarize(x_train, seed=0)  # static binarisation for throughput
    out = {"protocol": {
        "data": "MNIST train (60,000), binarised once (Bernoulli, seed 0); tf.data / torch "
                "index shuffling each epoch",
        "optimizer": "Adam(lr=1e-3, epsilon=1e-7) in both",
        "keras_vae": "the library's defaults: model.compile(optimizer=Adam) without jit_compile "
                     "or steps_per_execution (XLA, on a CPU too: "
                     f"compile_defaults.default_jit_compile; "
                     f"{training.DEFAULT_STEPS_PER_EXECUTION} "
                     "steps per execution), unless --jit / --steps-per-execution are given; "
                     "plain model.fit(x, batch_size=B) on an array (batches gathered in-step)",
        "trial": "wall time of the epoch of model.fit on S * B examples (S steps, from "
                 "on_epoch_begin to on_epoch_end: the epoch's own work included, fit's "
                 "one-off setup per call not, reported as keras_fit_call_overhead_s) after "
                 "warm-up vs S "
                 "steps of the PyTorch loop; per round PyTorch runs at 1 thread and at all "
                 "cores and its faster figure counts; ratios per round, median over rounds; "
                 f"a contender spreading by more than {common.SPREAD_LIMIT:.0%} is flagged",
        **{k: v for k, v in p.items()},
    }}
    jit_fixed, spe_fixed = args.jit, args.steps_per_execution

    # (a) keras_vae settings around the defaults (informs the defaults; not the target)
    configs = [(jit_fixed, spe_fixed)]
    if jit_fixed is None and spe_fixed is None and not args.quick:
        configs += [(None, 1), (None, 10), (None, 200), (False, None)]
    runners = []
    for jit, spe in configs:
        r = KerasRunner(lambda: models.seed_mlp(), x, SEED_BATCH, jit, spe, p["seed_steps"])
        r.compile_seconds = round(r.warm(), 2)
        runners.append(r)
    speeds = {r.label: [] for r in runners}
    for i in range(p["sweep_rounds"]):
        for r in (runners if i % 2 == 0 else runners[::-1]):
            speeds[r.label].append(r.trial(p["seed_steps"]))
    out["keras_settings_sweep"] = {
        r.label: {"examples_per_s": round(common.median(speeds[r.label]), 1),
                  "first_call_s": r.compile_seconds} for r in runners}
    common.log(f"keras sweep: {out['keras_settings_sweep']}")
    default = runners[0]

    # (b) seed MLP: keras_vae defaults vs torch (best threads per round), interleaved
    t_runner = TorchRunner(args.device, args.precision, (200,), 10, "relu", x, "elbo", 1,
                           SEED_BATCH)
    t_runner.trial(max(10, p["seed_steps"] // 10))
    seed = common.fair_rounds(default.trial, t_runner, p["seed_steps"], p["rounds"])
    seed["keras_settings"] = default.label
    seed["keras_fit_call_overhead_s"] = round(default.call_overhead_s, 3)
    seed["torch_step_ms"] = round(SEED_BATCH / seed["torch_examples_per_s"] * 1e3, 3)
    out["seed_mlp"] = seed
    common.log(f"seed MLP: ratio {seed['ratio']}, spread {seed['spread']}")
    try:
        seed["step_breakdown_ms"] = step_breakdown(default, x, SEED_BATCH, p["seed_steps"], 5)
    except Exception as error:  # a diagnostic: never lose the part for it
        seed["step_breakdown_error"] = repr(error)[:300]
    del runners

    # (c) IWAE net, k = 1, 5, 50; (d) the ideal step
    iwae = {}
    for k in IWAE_KS:
        steps = p["iwae_steps"][k]
        build = lambda: models.iwae_net(models.make_objective("iwae", k))
        kr = KerasRunner(build, x, IWAE_BATCH, jit_fixed, spe_fixed, steps)
        kr.warm()
        tr_ = TorchRunner(args.device, args.precision, (200, 200), 50, "tanh", x, "iwae", k,
                          IWAE_BATCH)
        tr_.trial(max(5, steps // 10))
        entry = common.fair_rounds(kr.trial, tr_, steps, p["rounds"])
        entry["keras_settings"] = kr.label
        if k == max(IWAE_KS):
            _ideal(entry, kr.model, k, p)
        iwae[f"k={k}"] = entry
        common.log(f"IWAE k={k}: ratio {entry['ratio']}, spread {entry['spread']}")
        keras.backend.clear_session()
    TorchRunner.close()
    out["iwae_net"] = iwae
    return out


def _ideal(entry, model, k, p):
    reps = max(10, p["ideal_reps"] // k)
    ideal = min(ideal_step_seconds(model, IWAE_BATCH, k, reps, True),
                ideal_step_seconds(model, IWAE_BATCH, k, reps, False))
    matmul_only = min(
        ideal_step_seconds(model, IWAE_BATCH, k, reps, True, likelihood=False),
        ideal_step_seconds(model, IWAE_BATCH, k, reps, False, likelihood=False))
    # the definition before 2026-12-03 (the likelihood's value dropped), for comparison
    dropped = ideal_step_seconds(model, IWAE_BATCH, k, reps, True, keep_value=False)
    step = IWAE_BATCH / entry["keras_examples_per_s"]
    entry["ideal_step_ms"] = round(ideal * 1e3, 3)
    entry["ideal_matmul_only_step_ms"] = round(matmul_only * 1e3, 3)
    entry["ideal_value_dropped_step_ms"] = round(dropped * 1e3, 3)
    entry["keras_step_ms"] = round(step * 1e3, 3)
    entry["step_over_ideal"] = round(step / ideal, 3)
    entry["step_over_value_dropped_ideal"] = round(step / dropped, 3)
    entry["torch_step_over_ideal"] = round(IWAE_BATCH / entry["torch_examples_per_s"] / ideal, 3)


def _name(text, entry):
    s = entry.get("spread", {})
    note = f" [spread keras {s.get('keras', 0):.0%} / torch {s.get('torch', 0):.0%}"
    note += "; NOISY: > 25 %]" if entry.get("noisy") else "]"
    return text + note


def rows(result):
    """Table rows: (benchmark, keras_vae, reference, ratio, target, met)."""
    out = []
    s = result["seed_mlp"]
    b = s.get("step_breakdown_ms")
    out.append((_name("train seed MLP 784-200-10, batch 128 (ex/s)", s),
                s["keras_examples_per_s"], s["torch_examples_per_s"], s["ratio"]["median"],
                ">= 1.5x PyTorch", s["ratio"]["median"] >= 1.5))
    sweep = result.get("keras_settings_sweep", {})
    out.append(("keras_vae settings measured, seed MLP (ex/s)",
                "; ".join(f"{k}: {v['examples_per_s']:,.0f}" for k, v in sweep.items()),
                "", "", "", None))
    if b:
        pieces = [(key, label) for key, label in (
            ("ideal", "ideal"), ("fwd_bwd", "fwd+bwd"), ("minimal", "+Adam"),
            ("unguarded", "train_step unguarded"), ("train_step", "train_step"), ("fit", "fit"))
            if key in b]  # results before 0cf52e6 have no "unguarded"
        out.append(("seed MLP step, ms: " + " / ".join(label for _, label in pieces),
                    " / ".join(f"{b[key]:.2f}" for key, _ in pieces),
                    f"PyTorch {s['torch_step_ms']:.2f}", "", "", None))
    for key, e in result["iwae_net"].items():
        out.append((_name(f"train IWAE net {key}, batch 20 (ex/s)", e), e["keras_examples_per_s"],
                    e["torch_examples_per_s"], e["ratio"]["median"], ">= 1.5x PyTorch",
                    e["ratio"]["median"] >= 1.5))
        if "step_over_ideal" in e:
            out.append((f"IWAE {key} step / compute-bound ideal", f"{e['keras_step_ms']} ms",
                        f"ideal {e['ideal_step_ms']} ms (matmuls only "
                        f"{e['ideal_matmul_only_step_ms']} ms"
                        + (f"; {e['step_over_value_dropped_ideal']}x the old ideal, "
                           f"{e['ideal_value_dropped_step_ms']} ms, that dropped the "
                           "likelihood's value" if "ideal_value_dropped_step_ms" in e else "")
                        + f"); PyTorch {e['torch_step_over_ideal']}x", e["step_over_ideal"],
                        "<= 1.2x",
                        e["step_over_ideal"] <= 1.2))
    return out
