"""Part (d) alone: the IWAE k=50 step against its compute-bound ideal, and where the gap goes.

    python bench/step_ideal.py [--steps 100] [--rounds 3] [--ablations]

Times, back to back in rounds (median per variant), on the IWAE net (784-200-200-50,
tanh), IWAE k=50, batch 20, statically binarised MNIST:

```none
fit         model.fit(x, batch_size=20) with the library's defaults (part_train.KerasRunner,
            the figure part (d) of part_train uses)
loop        VAE.train_step repeated inside one compiled loop (no fit loop, no tf.data)
ideal       part_train.ideal_step_seconds (XLA and not, the faster), and matmuls only;
            ideal_value_dropped: the definition before 2026-12-03 (see its docstring)
```

With --ablations, pieces of the step are timed alone in the same kind of loop
(forward+backward without the update, without the metrics, and so on), so the
gap between `loop` and `ideal` can be read off. The ratio printed is
fit / ideal, the row "IWAE k=50 step / compute-bound ideal" of part_train.
"""

import argparse
import time

import common

common.setup_environment()

import numpy as np  # noqa: E402

import models  # noqa: E402
import part_train  # noqa: E402
from keras_vae._backend import tf  # noqa: E402

K, BATCH = 50, 20


def looped(fn, xb, steps, jit):
    """`fn(xb)` run `steps` times inside one graph; returns seconds per step of one call."""
    run = part_train.looped(fn, xb, steps, jit)
    run().numpy()

    def timed():
        start = time.perf_counter()
        run().numpy()
        return (time.perf_counter() - start) / steps

    return timed


def ablations(model):
    """name -> fn(x) of pieces of the training step (each returns a scalar to sum)."""
    variables = model.trainable_variables

    def grads_of(loss_fn):
        def fn(xb):
            with tf.GradientTape() as tape:
                loss = loss_fn(xb)
            grads = tape.gradient(loss, variables)
            return loss + 1e-30 * tf.add_n([tf.reduce_sum(g) for g in grads])
        return fn

    def iwae_loss(xb):
        terms = model.compute_terms(xb, training=True)
        value, _ = model.objective.surrogates(terms)
        return tf.nn.compute_average_loss(-value)

    def forward_only(xb):
        return iwae_loss(xb)

    def minimal(xb):
        with tf.GradientTape() as tape:
            loss = iwae_loss(xb)
        model.optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return {"fwd": forward_only, "fwd_bwd": grads_of(iwae_loss), "fwd_bwd_adam": minimal}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--jit", choices=("true", "false"), default=None,
                        help="compile the model with jit_compile (default: the library's)")
    args = parser.parse_args()

    x_train, _ = common.load_mnist()
    x = common.binarize(x_train, seed=0)
    build = lambda: models.iwae_net(models.make_objective("iwae", K))  # noqa: E731
    jit = None if args.jit is None else args.jit == "true"
    runner = part_train.KerasRunner(build, x, BATCH, jit, None, args.steps)
    runner.warm()
    model, steps = runner.model, args.steps
    jit, spe = bool(model.jit_compile), int(model.steps_per_execution)
    xb = tf.constant(x[:BATCH])
    timers = {}
    if not args.no_fit:
        timers["fit"] = lambda: BATCH / runner.trial(steps)
    timers["loop"] = looped(lambda b: model.train_step(b)["loss"], xb, steps, jit)
    if args.ablations:
        for name, fn in ablations(model).items():
            timers[name] = looped(fn, xb, steps, jit)
    reps = 10
    timers["ideal"] = lambda: min(part_train.ideal_step_seconds(model, BATCH, K, reps, True),
                                  part_train.ideal_step_seconds(model, BATCH, K, reps, False))
    timers["matmul_only"] = lambda: min(
        part_train.ideal_step_seconds(model, BATCH, K, reps, True, likelihood=False),
        part_train.ideal_step_seconds(model, BATCH, K, reps, False, likelihood=False))
    timers["ideal_value_dropped"] = lambda: part_train.ideal_step_seconds(
        model, BATCH, K, reps, True, keep_value=False)
    times = {name: [] for name in timers}
    for i in range(args.rounds):
        for name, timer in (timers.items() if i % 2 == 0 else list(timers.items())[::-1]):
            times[name].append(timer())
    ms = {name: round(common.median(v) * 1e3, 2) for name, v in times.items()}
    print(f"jit_compile={jit} steps_per_execution={spe} load={common.load_average()}")
    for name, value in ms.items():
        spread = (max(times[name]) - min(times[name])) / min(times[name])
        print(f"  {name:20s} {value:8.2f} ms   ({value / ms['ideal']:.2f}x ideal, "
              f"spread {spread:.0%})")
    if "fit" in ms:
        print(f"IWAE k=50 step / compute-bound ideal: {ms['fit'] / ms['ideal']:.3f} "
              f"({ms['fit']} / {ms['ideal']} ms)")
    return ms


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
