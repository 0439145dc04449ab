"""Makes the compatibility fixtures of tests/test_compat.py (run once, with the code *before* a change).

The files beside this script were written by keras-vae at commit 75878b2 (before the
redesign of issue 11) with:

    python tests/support/compat/make_fixtures.py tests/support/compat

They are small on purpose (a few hundred kB): a VAE with a mixture prior and an IWAE
objective (`vae.keras`, trained one epoch so the optimizer state is saved), a two-layer
HierarchicalVAE (`hvae.keras`), the export folder of the first (`export/`: SavedModel,
ONNX, TFLite, manifest.json), reference outputs computed by that code (`reference.npz`),
and a run folder written by `keras-vae train` on 4x4 images (`run/`, without its
checkpoints). Later code must load, decode, serve and resume these as they are.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np


def small_nets(latent_dim, keras):
    encoder = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(24, activation="relu")], name="encoder")
    decoder = keras.Sequential([keras.Input((latent_dim,)),
                                keras.layers.Dense(24, activation="relu"),
                                keras.layers.Dense(784, name="logits"),
                                keras.layers.Reshape((28, 28, 1))], name="decoder")
    return encoder, decoder


def main(out):
    out = pathlib.Path(out)
    import keras

    import keras_vae
    from keras_vae import data
    from keras_vae.export import export_all

    x = data.load("embedded").x_train[:400]
    x = (np.random.default_rng(0).random(x.shape) < x).astype("float32")
    encoder, decoder = small_nets(3, keras)
    vae = keras_vae.VAE(latent_dim=3, event_shape=(28, 28, 1), encoder=encoder, decoder=decoder,
                        prior="mixture", objective=keras_vae.IWAE(k=3), seed=0)
    vae.initialize_output_bias(x)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(x, epochs=1, batch_size=100, verbose=0)
    vae.save(out / "vae.keras")

    hvae = keras_vae.HierarchicalVAE(latent_dims=(4, 2), hidden_units=((16,), (8,)),
                                     objective="iwae", seed=0)
    hvae.compile(optimizer=keras.optimizers.Adam(1e-3))
    hvae.fit(x, epochs=1, batch_size=100, verbose=0)
    hvae.save(out / "hvae.keras")

    z = np.random.default_rng(1).normal(size=(6, 3)).astype("float32")
    z2 = np.random.default_rng(2).normal(size=(6, 2)).astype("float32")
    np.savez(out / "reference.npz", z=z, z2=z2, x=x[:6],
             vae_decode_mean=vae.decoder_parameters(z)["mean"].numpy(),
             vae_call=vae(x[:6]).numpy(),
             hvae_decode_mean=hvae.decoder_parameters(z2)["mean"].numpy(),
             hvae_call=hvae(x[:6]).numpy())

    if (out / "export").exists():
        shutil.rmtree(out / "export")
    export_all(vae, out / "export", name="vae", version=1)

    # A run folder written by the CLI on 4x4 images (conv preset: the smallest network).
    rng = np.random.default_rng(3)
    images = (rng.random((200, 4, 4, 1)) < 0.5).astype("float32")
    work = out / "_work"
    work.mkdir(exist_ok=True)
    np.save(work / "images.npy", images)
    run = out / "run"
    if run.exists():
        shutil.rmtree(run)
    subprocess.run([sys.executable, "-m", "keras_vae", "train", "--data", str(work / "images.npy"),
                    "--preset", "conv", "--latent-dim", "2", "--epochs", "2",
                    "--batch-size", "50", "--seed", "0", "--no-pictures", "--verbose", "0",
                    "--out", str(run)], check=True)
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    config = json.loads((run / "config.json").read_text())
    print(json.dumps(config, indent=1)[:2000])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
