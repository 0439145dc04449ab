"""One process of the multi-worker test (tests/test_multiworker.py); also its single-process twin.

    python tests/multiworker_worker.py --out W.npz --workers 127.0.0.1:P0,127.0.0.1:P1 --index I
    python tests/multiworker_worker.py --out S.npz          # single process, no strategy

Both modes train the same tiny keras_vae model from the same initial weights on
the same global batches (GLOBAL_BATCH examples per step, worker i taking the
i-th half of each), then write the final weights and the per-step losses.
The posterior's scale is ~1e-13 (see `build_model`), which makes z = loc up to
float rounding: the training noise, which cannot be drawn identically by two
workers and one process, then has no effect on the result.
"""

import argparse
import json
import os
import sys

import time

import numpy as np

_T0 = time.monotonic()


def _stamp(what):
    print(f"[{time.monotonic() - _T0:6.1f} s] {what}", flush=True)

EVENT_SHAPE = (6, 6, 1)
LATENT_DIM = 2
GLOBAL_BATCH = 16
STEPS = 6
LEARNING_RATE = 1e-2
SCALE_BIAS = -30.0  # softplus(-30) = 9.4e-14: the posterior scale, with min_scale = 0


def global_batches():
    """STEPS global batches of binary 6x6 images with a per-pixel rate (deterministic)."""
    rng = np.random.default_rng(1234)
    rates = rng.uniform(0.1, 0.9, size=EVENT_SHAPE)
    x = (rng.random((STEPS * GLOBAL_BATCH,) + EVENT_SHAPE) < rates).astype("float32")
    return x


def worker_slice(x, index, num_workers):
    """Worker `index`'s examples: the index-th contiguous share of every global batch, in order."""
    local = GLOBAL_BATCH // num_workers
    parts = [x[s * GLOBAL_BATCH + index * local: s * GLOBAL_BATCH + (index + 1) * local]
             for s in range(STEPS)]
    return np.concatenate(parts), local


def build_model():
    """A tiny VAE, 36-8-(2) and back, whose posterior scale is ~0.

    The posterior head has min_scale = 0; its scale half has zero kernel and bias
    -30, so sigma = softplus(-30) ~ 1e-13 and z = loc + sigma * eps equals loc in
    float32. Gradients still flow through the reparameterised z (to loc) and
    through the analytic KL; the scale's own update over a few steps (Adam, lr
    1e-2) keeps it below 1e-12. Every other weight comes from a fixed NumPy seed,
    so every process starts from the same point without relying on Keras's
    initialiser seeding.
    """
    import keras_vae
    from keras_vae import networks, posteriors

    model = keras_vae.VAE(
        latent_dim=LATENT_DIM,
        event_shape=EVENT_SHAPE,
        encoder=networks.build_encoder("mlp", EVENT_SHAPE, hidden_units=(8,)),
        decoder=networks.build_decoder("mlp", LATENT_DIM, EVENT_SHAPE, hidden_units=(8,)),
        posterior=posteriors.DiagonalGaussianPosterior(LATENT_DIM, min_scale=0.0,
                                                       name="posterior"),
        seed=0,
    )
    rng = np.random.default_rng(7)
    for v in model.trainable_variables:
        v.assign((0.3 * rng.standard_normal(tuple(v.shape))).astype("float32"))
    head = model.posterior.dense
    kernel = head.kernel.numpy()
    kernel[:, LATENT_DIM:] = 0.0
    head.kernel.assign(kernel)
    bias = head.bias.numpy()
    bias[LATENT_DIM:] = SCALE_BIAS
    head.bias.assign(bias)
    return model


def train(model, dataset):
    """Fits STEPS steps; returns the running-mean loss Keras logs after each step."""
    import keras

    losses = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(np.ravel(np.asarray(logs["loss"]))[0]))

    # One step per execution: the losses are recorded per step (callbacks run per call).
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=False,
                  steps_per_execution=1)
    model.fit(dataset, epochs=1, steps_per_epoch=STEPS, verbose=0, callbacks=[Record()])
    return losses


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--workers", default=None, help="comma-separated host:port list")
    p.add_argument("--index", type=int, default=0)
    args = p.parse_args(argv)

    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    x = global_batches()
    if args.workers:
        workers = args.workers.split(",")
        os.environ["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.index}})
        import tensorflow as tf

        import keras_vae  # noqa: F401  (imported before the clock for the strategy starts)

        _stamp("imported")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _stamp("strategy up")
        assert strategy.num_replicas_in_sync == len(workers), strategy.num_replicas_in_sync

        def dataset_fn(context):
            local, per_replica = worker_slice(x, context.input_pipeline_id,
                                              context.num_input_pipelines)
            return tf.data.Dataset.from_tensor_slices(local).batch(per_replica)

        with strategy.scope():  # the model, its optimizer and fit: all in the scope
            model = build_model()
            initial = [v.numpy() for v in model.trainable_variables]
            dataset = strategy.distribute_datasets_from_function(dataset_fn)
            _stamp("model built")
            losses = train(model, dataset)
    else:
        import tensorflow as tf

        model = build_model()
        initial = [v.numpy() for v in model.trainable_variables]
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(GLOBAL_BATCH)
        losses = train(model, dataset)

    weights = [v.numpy() for v in model.trainable_variables]
    scale = model.encoder_parameters(x[:GLOBAL_BATCH])[1].numpy()
    np.savez(
        args.out,
        losses=np.array(losses),
        max_posterior_scale=np.array(float(scale.max())),
        nonfinite_steps=np.array(int(model.nonfinite_steps.numpy())),
        **{f"w{i}": w for i, w in enumerate(weights)},
        **{f"init{i}": w for i, w in enumerate(initial)},
    )
    print(f"worker {args.index if args.workers else 'single'}: done, "
          f"losses {losses}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
