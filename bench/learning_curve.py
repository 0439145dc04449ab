"""Test NLL against seconds of training: keras_vae vs the PyTorch reference, alternating slices.

    taskset -c 1 python bench/learning_curve.py      # 20 min of training each (~50 min wall)
    python bench/learning_curve.py --minutes 2       # a smoke run
    python bench/learning_curve.py --clock wall      # wall seconds, each side's best threads

The IWAE paper's net (784-200-200-50, tanh), IWAE k=5, batch 20, dynamically binarised
MNIST (the 60,000 training images), Adam(1e-3, epsilon=1e-4), both from the same kind of
initialisation (Glorot, output bias at the logit of the mean pixel). keras_vae trains with
its defaults: `model.compile(optimizer=...)` and `model.fit` on `batches.Batches`
(dynamic binarisation in-step). The PyTorch reference (bench/curve_torch.py, its own
process) trains the same net in the loop of torch_reference.py, each slice with its
faster thread count.

The clock (--clock cpu, the default) is each process's CPU time, with one thread on each
side (TF's pools and torch): on a machine other work shares, a contender whose core is
taken part of a slice then loses no training time (a wall clock there gave PyTorch 30 s
of CPU in a 60 s slice). Pinned to one core (taskset), CPU seconds are wall seconds on an
idle core. --clock wall measures wall seconds with each side's faster thread count.

The two take turns: keras_vae trains until its training clock reaches the next checkpoint,
then PyTorch does the same; at each checkpoint each model's test NLL is estimated with
k = 1000 on the first 1,000 test images (binarised with keras_vae.data.binarize); the
estimate is not counted as training time. Writes bench/learning_curve.json and .png.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402

CHECKPOINTS_S = (30, 60, 120, 240, 480, 720, 960, 1200)


class TimeLimit:
    """A Keras callback that stops `fit` once `seconds` of wall time have passed."""

    def __new__(cls, seconds, clock=time.perf_counter):
        from keras_vae._backend import keras

        class _Stop(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.start = clock()

            def on_train_batch_end(self, batch, logs=None):
                if clock() - self.start >= seconds:
                    self.model.stop_training = True

        return _Stop()


def keras_side(x_train, seed):
    import models
    from keras_vae._backend import keras

    model = models.iwae_net(models.make_objective("iwae", 5), seed=seed)
    model.initialize_output_bias(x_train)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-4))  # library defaults
    return model


def keras_train(model, x_train, seconds, epoch, seed, clock=time.perf_counter):
    from keras_vae import batches

    # The library's path for dynamic binarisation: in-step batches (keras_vae.batches).
    source = _SOURCES.get(seed) or _SOURCES.setdefault(
        seed, batches.Batches(x_train, 20, seed, dynamic=True, drop_remainder=True))
    before = int(model.optimizer.iterations.numpy())
    cpu, start, begin = time.process_time(), time.perf_counter(), clock()
    model.fit(source, initial_epoch=epoch, epochs=epoch + 100, verbose=0,
              callbacks=[TimeLimit(seconds, clock)])
    wall = time.perf_counter() - start
    done = int(model.optimizer.iterations.numpy()) - before
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu, "clock_s": clock() - begin,
            "steps": done, "epochs_used": -(-done // source.steps)}


_SOURCES = {}


def call(proc, **msg):
    proc.stdin.write(json.dumps(msg) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def plot(result, path):
    """The two curves, NLL against training seconds, as a PNG (keras_vae.plotting's axes)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from keras_vae import plotting

    curves = result["curves"]
    xs = [p["train_s"] for c in curves.values() for p in c]
    ys = np.asarray([p["nll"] for c in curves.values() for p in c], "float64")
    lo, hi = float(ys.min()), float(np.percentile(ys, 95))
    image = Image.new("RGB", (640, 420), plotting.BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = plotting._font()
    axes = plotting._Axes(draw, (70, 30, 620, 360), (0.0, max(xs) * 1.02),
                          (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)), font)
    axes.frame(title="test NLL (k=1000, 1,000 images) vs seconds of training, IWAE k=5",
               xlabel="seconds of training (alternating slices)")
    for j, (name, points) in enumerate(curves.items()):
        color = plotting.PALETTE[j]
        pts = [axes.px(p["train_s"], min(p["nll"], hi)) for p in points]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        for u, v in pts:
            draw.ellipse([u - 3, v - 3, u + 3, v + 3], fill=color)
        draw.line([(90 + j * 160, 400), (110 + j * 160, 400)], fill=color, width=2)
        draw.text((115 + j * 160, 393), name, fill=plotting.TEXT_COLOR, font=font)
    image.save(path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--eval-k", type=int, default=1000)
    p.add_argument("--eval-examples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="training seconds: process CPU time, one thread each (default), "
                        "or wall time with each side's faster thread count")
    p.add_argument("--out", default=str(common.BENCH / "learning_curve.json"))
    p.add_argument("--plot-only", action="store_true",
                   help="draw the PNG of an existing (possibly partial) JSON and stop")
    args = p.parse_args(argv)
    if args.plot_only:
        plot(json.loads(pathlib.Path(args.out).read_text()),
             pathlib.Path(args.out).with_suffix(".png"))
        return 0
    common.setup_environment("cpu", threads=1 if args.clock == "cpu" else None)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    import numpy as np

    from keras_vae import data, evaluation

    x_train, x_test = common.load_mnist()
    x_eval = data.binarize(x_test[:args.eval_examples])
    scale = args.minutes * 60 / CHECKPOINTS_S[-1]
    checkpoints = [c * scale for c in CHECKPOINTS_S]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="keras_vae_curve_"))
    np.save(tmp / "train.npy", x_train.reshape(len(x_train), -1))
    np.save(tmp / "test.npy", x_eval.reshape(len(x_eval), -1))
    proc = subprocess.Popen([sys.executable, str(common.BENCH / "curve_torch.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    call(proc, cmd="setup", train=str(tmp / "train.npy"), test=str(tmp / "test.npy"), k=5,
         batch=20, lr=1e-3, epsilon=1e-4, seed=args.seed, clock=args.clock)
    model = keras_side(x_train, args.seed)
    clocks = {"keras_vae": 0.0, "pytorch": 0.0}
    steps = {"keras_vae": 0, "pytorch": 0}
    curves = {"keras_vae": [], "pytorch": []}
    slices = []
    result = {"date": common.now_utc(), "machine": common.machine_info(),
              "versions": common.versions(), "load_average_start": common.load_average(),
              "protocol": {"net": "784-200-200-50 tanh (IWAE paper)", "objective": "IWAE k=5",
                           "batch": 20, "optimizer": "Adam(1e-3, epsilon=1e-4)",
                           "data": "MNIST 60,000 training images, dynamic binarisation",
                           "eval": f"NLL k={args.eval_k} on the first {args.eval_examples} "
                                   "test images (keras_vae.data.binarize)",
                           "minutes_each": args.minutes, "checkpoints_s": checkpoints,
                           "keras_vae": "model.compile(optimizer) defaults + model.fit on "
                                        "batches.Batches(dynamic=True)",
                           "keras_vae_jit_compile": bool(model.jit_compile),
                           "alternation": "each trains to the next checkpoint in turn",
                           "clock": ("process CPU seconds, one thread each" if args.clock == "cpu"
                                     else "wall seconds, each side's faster thread count")}}
    epoch = 0
    for target in checkpoints:
        for name in ("keras_vae", "pytorch"):
            seconds = target - clocks[name]
            load = common.load_average()
            if name == "keras_vae":
                r = keras_train(model, x_train, seconds, epoch, args.seed, clock)
                epoch += r["epochs_used"]
            else:
                r = call(proc, cmd="train", seconds=seconds)
            clocks[name] += r["clock_s"]
            steps[name] += r["steps"]
            t0 = time.perf_counter()
            if name == "keras_vae":
                nll = float(evaluation.log_likelihood(model, x_eval, k=args.eval_k,
                                                      seed=args.seed).nll)
            else:
                nll = call(proc, cmd="nll", k=args.eval_k)["nll"]
            curves[name].append({"train_s": round(clocks[name], 1), "steps": steps[name],
                                 "nll": round(nll, 3)})
            slices.append({"who": name, **{k: round(v, 2) if isinstance(v, float) else v
                                           for k, v in r.items()},
                           "load_average": load, "eval_s": round(time.perf_counter() - t0, 1)})
            common.log(f"{name}: {curves[name][-1]} ({slices[-1]})")
            result.update(curves=curves, slices=slices, load_average_end=common.load_average())
            common.write_json(args.out, result)
    call(proc, cmd="quit")
    after_first_minute = [(a["nll"], b["nll"]) for a, b in zip(curves["keras_vae"],
                                                               curves["pytorch"])
                          if b["train_s"] > 60 * scale]
    result["keras_at_or_below_after_first_minute"] = all(a <= b for a, b in after_first_minute)
    common.write_json(args.out, result)
    plot(result, pathlib.Path(args.out).with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
