"""The training step's random draws under XLA: TF's generators against `keras_vae.noise`.

    python bench/draws.py [--reps 200] [--out bench/results_draws.json]

Each variant draws its tensor `reps` times inside one XLA-compiled loop (a fresh
stateless seed per iteration, the draws summed so none is dropped); the figure is the
best of 5 calls, in microseconds per draw. Shapes: the 50,000 normals of an IWAE k = 50
step (k, batch 20, 50 latent units) and the uniforms that binarise a batch of 20 and
of 128 MNIST images in the step (`keras_vae.batches`).
"""

import argparse
import time

import common

common.setup_environment()

import numpy as np  # noqa: E402

from keras_vae import noise  # noqa: E402
from keras_vae._backend import tf  # noqa: E402

NORMALS = (50, 20, 50)
IMAGES = {"uniform, batch 20 of 28x28": (20, 28, 28, 1),
          "uniform, batch 128 of 28x28": (128, 28, 28, 1)}


def _box_muller(shape, seed, alg):
    return tf.random.stateless_normal(shape, seed, alg=alg)


def variants():
    """name -> (shape, fn(shape, seed int32 [2]))."""
    out = {
        "normal: Philox + Box-Muller (TF)": (NORMALS, lambda s, d: _box_muller(s, d, "philox")),
        "normal: ThreeFry + Box-Muller (TF)": (NORMALS,
                                               lambda s, d: _box_muller(s, d, "threefry")),
        "normal: keras_vae.noise (ThreeFry + erfinv)": (
            NORMALS, lambda s, d: noise.standard_normal(s, seed=d)),
    }
    for label, shape in IMAGES.items():
        out[f"{label}: TF's choice (auto_select)"] = (
            shape, lambda s, d: tf.random.stateless_uniform(s, d))
        out[f"{label}: Philox"] = (shape, lambda s, d: tf.random.stateless_uniform(s, d,
                                                                                   alg="philox"))
        out[f"{label}: keras_vae.noise (ThreeFry)"] = (shape, lambda s, d: noise.uniform(s, d))
    return out


def time_draw(shape, fn, reps):
    """Microseconds per draw: `reps` draws in one XLA loop, best of 5 calls."""
    @tf.function(jit_compile=True)
    def loop(first):
        def body(i, total):
            return i + 1, total + tf.reduce_sum(fn(shape, tf.stack([first, i])))
        return tf.while_loop(lambda i, _: i < reps, body, (tf.constant(0), tf.constant(0.0)))[1]

    loop(tf.constant(1)).numpy()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        loop(tf.constant(1)).numpy()
        times.append((time.perf_counter() - start) / reps)
    return min(times) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    rows = {name: round(time_draw(shape, fn, args.reps), 1)
            for name, (shape, fn) in variants().items()}
    print(f"{'draw (XLA)':60s} {'us':>8s}")
    for name, us in rows.items():
        print(f"{name:60s} {us:8.1f}")
    if args.out:
        common.write_json(args.out, {"date": common.now_utc(), "machine": common.machine_info(),
                                     "load": common.load_average(), "reps": args.reps,
                                     "us_per_draw": rows})
    return rows


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
