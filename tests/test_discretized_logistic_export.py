"""An 8-bit model's export: decode equals Keras; the samplers draw integer pixels from p(x|z)."""

import numpy as np
from scipy import stats

import keras_vae
from keras_vae import export

EVENT = (8, 8, 1)


def _model():
    rng = np.random.default_rng(0)
    model = keras_vae.VAE(event_shape=EVENT, encoder="conv8", latent_dim=4,
                          likelihood="discretized_logistic", seed=0)
    x = np.clip(rng.normal(120, 60, size=(64,) + EVENT).round(), 0, 255).astype("float32")
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, batch_size=32, verbose=0)
    return model


def _pmfs(model, z):
    """The model's pmf of every pixel at z: [N, H, W, 256] (float64)."""
    dist = model.decode(z)
    values = np.broadcast_to(np.arange(256, dtype="float32")[:, None, None, None, None],
                             (256, len(z)) + EVENT)
    log_p = dist.distribution.log_prob(values).numpy()  # per pixel, before Independent
    return np.moveaxis(np.exp(log_p.astype("float64")), 0, -1)


def _assert_drawn_from(images, pmfs):
    """Integers in 0..255 whose pooled histogram matches the summed pmf (chi-square)."""
    assert np.all(images == np.round(images)) and images.min() >= 0 and images.max() <= 255
    expected = pmfs.reshape(-1, 256).sum(axis=0)
    observed = np.bincount(images.astype(int).ravel(), minlength=256)
    keep = expected >= 10
    observed = np.append(observed[keep], observed[~keep].sum())
    expected = np.append(expected[keep], expected[~keep].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_eight_bit_export_decodes_like_keras_and_samples_pixels(tmp_path):
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model = _model()
    manifest = export.export_all(model, tmp_path / "out")  # its own verify passes
    assert manifest["model"]["noise_per_pixel"] == 2
    assert {"logit_4", "loc_0", "log_scale_2", "mean"} <= set(manifest["model"]["decoder_outputs"])
    loaded = tf.saved_model.load(str(tmp_path / "out/savedmodel/vae/1"))
    z = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    decoded = {k: v.numpy() for k, v in loaded.signatures["decode"](z=tf.constant(z)).items()}
    for key, want in model.decoder_parameters(z).items():
        np.testing.assert_allclose(decoded[key], want.numpy(), rtol=1e-5, atol=1e-4)
    seeds = np.arange(5, 305, dtype=np.int64)  # contract 2: one seed and temperature per row
    ones = np.ones(len(seeds), np.float32)
    out = {k: v.numpy() for k, v in loaded.signatures["sample"](
        seed=tf.constant(seeds), temperature=tf.constant(ones)).items()}
    _assert_drawn_from(out["images"], _pmfs(model, out["z"]))
    sess = ort.InferenceSession(str(tmp_path / "out/onnx/sampler.onnx"),
                                providers=["CPUExecutionProvider"])
    images, z_onnx = sess.run(["images", "z"], {"seed": seeds + 1000, "temperature": ones})
    _assert_drawn_from(images, _pmfs(model, z_onnx))
    tfl = Interpreter(model_path=str(tmp_path / "out/tflite/vae.tflite"))
    got = tfl.get_signature_runner("sample")(seed=seeds, temperature=ones)
    assert np.mean(got["images"] != out["images"]) < 1e-3  # the same uniforms as SavedModel
