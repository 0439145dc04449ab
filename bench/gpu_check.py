"""MirroredStrategy over all visible GPUs vs one device: the same losses (bench/gpu_check.sh).

    python bench/gpu_check.py [--steps 20] [--cpu-dry-run]

Trains the seed MLP for `steps` steps of global batch 128 twice from the same weights and
the same batches: under tf.distribute.MirroredStrategy (every visible GPU; with
--cpu-dry-run two logical CPUs) and under the default strategy; prints both loss curves and
the largest difference (fp32: the all-reduced mean equals the one-device mean up to
summation order, ~1e-4 relative).
"""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402


def losses(strategy, x, steps, weights=None):
    import models
    from keras_vae._backend import keras

    with strategy.scope():
        model = models.seed_mlp(seed=0)
        if weights is not None:
            model.set_weights(weights)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), steps_per_execution=1)
    start = model.get_weights()
    history = model.fit(x[:steps * 128], batch_size=128, epochs=1, shuffle=False, verbose=0,
                        callbacks=[_PerBatch()])
    del history
    return start, _PerBatch.last


class _PerBatch:
    last = []

    def __new__(cls):
        from keras_vae._backend import keras

        class Log(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                cls.last = []

            def on_train_batch_end(self, batch, logs=None):
                cls.last.append(float(logs["loss"]))

        return Log()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cpu-dry-run", action="store_true")
    args = p.parse_args(argv)
    common.setup_environment("cpu" if args.cpu_dry_run else "gpu")
    import numpy as np

    from keras_vae._backend import tf

    if args.cpu_dry_run:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        devices = ["/cpu:0", "/cpu:1"]
    else:
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    x_train, _ = common.load_mnist()
    x = common.binarize(x_train[:args.steps * 128], 0)
    start, mirrored = losses(tf.distribute.MirroredStrategy(devices), x, args.steps)
    _, single = losses(tf.distribute.get_strategy(), x, args.steps, start)
    diff = float(np.max(np.abs(np.array(mirrored) - np.array(single)) / np.abs(single)))
    print(f"MirroredStrategy over {len(devices)} devices {devices}: losses {mirrored[:3]} ... "
          f"{mirrored[-1]:.4f}")
    print(f"one device: {single[:3]} ... {single[-1]:.4f}; max relative difference {diff:.2e}")
    ok = diff < 1e-3
    print("MirroredStrategy matches one device:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
