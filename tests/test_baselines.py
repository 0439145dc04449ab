"""PCA and the deterministic autoencoder against independent references; the comparison report."""

import json

import numpy as np
import pytest
from PIL import Image

import keras_vae
from keras_vae._backend import keras
from keras_vae.baselines import PCA, Autoencoder
from keras_vae import plotting
from keras_vae.comparison import IMAGE_FILES, PANEL_GAP, TITLE_HEIGHT, compare
from keras_vae.hierarchical import HierarchicalVAE

LATENT = 4


# --------------------------------------------------------------------------- PCA


def test_pca_reconstruction_is_the_svd_projection():
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(60, 3, 4)) @ np.diag([3.0, 1.0, 0.5, 0.1])  # [60, 3, 4]
    x_new = rng.normal(size=(7, 3, 4))
    d = 5
    pca = PCA(d).fit(x_train)

    flat = x_train.reshape(60, -1)
    mean = flat.mean(axis=0)
    _, s, vt = np.linalg.svd(flat - mean)
    projector = vt[:d].T @ vt[:d]  # onto the top-d right singular vectors
    expected = (x_new.reshape(7, -1) - mean) @ projector + mean
    np.testing.assert_allclose(pca.reconstruct(x_new).reshape(7, -1), expected, atol=1e-10)

    # Eckart-Young: the training error is the energy of the discarded singular values.
    error = np.sum((pca.reconstruct(x_train).reshape(60, -1) - flat) ** 2)
    np.testing.assert_allclose(error, np.sum(s[d:] ** 2), rtol=1e-8)
    # The codes are coordinates in an orthonormal basis; the variances are eigenvalues.
    np.testing.assert_allclose(pca.components.T @ pca.components, np.eye(d), atol=1e-10)
    eigenvalues = np.linalg.eigvalsh(np.cov(flat, rowvar=False))[::-1][:d]
    np.testing.assert_allclose(pca.explained_variance, eigenvalues, rtol=1e-8)
    np.testing.assert_allclose(pca.encode(x_train).var(axis=0, ddof=1), eigenvalues, rtol=1e-8)


def test_pca_interpolation_sample_and_save(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((30, 4, 4, 1))
    pca = PCA(3).fit(x)
    path = pca.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 4, 4, 1)
    np.testing.assert_allclose(path[0], pca.reconstruct(x[:1])[0], atol=1e-12)
    np.testing.assert_allclose(path[-1], pca.reconstruct(x[1:2])[0], atol=1e-12)
    np.testing.assert_allclose(path[2], 0.5 * (path[0] + path[-1]), atol=1e-12)  # affine decode
    assert pca.sample(6, seed=0).shape == (6, 4, 4, 1)
    pca.save(tmp_path / "pca.npz")
    loaded = PCA.load(tmp_path / "pca.npz")
    np.testing.assert_allclose(loaded.reconstruct(x), pca.reconstruct(x))
    with pytest.raises(ValueError, match="not fitted"):
        PCA(2).encode(x)


# --------------------------------------------------------------------------- autoencoder


@pytest.fixture(scope="module")
def trained(mnist_binary):
    """PCA and an autoencoder with the same latent size, fit to the same 2,000 digits."""
    x_train = mnist_binary[0]
    keras.utils.set_random_seed(0)
    pca = PCA(LATENT).fit(x_train)
    ae = Autoencoder(latent_dim=LATENT, encoder="mlp", loss="bce")
    ae.initialize_output_bias(x_train)
    ae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = ae.fit(x_train, epochs=5, batch_size=32, verbose=0)
    return pca, ae, history


def test_autoencoder_trains_and_beats_pca_at_the_same_latent_size(mnist_binary, trained):
    pca, ae, history = trained
    x_test = mnist_binary[2]
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]
    mse_pca = np.mean((pca.reconstruct(x_test) - x_test) ** 2)
    mse_ae = np.mean((ae.reconstruct(x_test).numpy() - x_test) ** 2)
    # Test-set squared error per pixel: the non-linear code wins at d = 4.
    assert mse_ae < 0.9 * mse_pca, (mse_ae, mse_pca)


def test_autoencoder_api_and_round_trip(mnist_binary, trained, tmp_path):
    _, ae, _ = trained
    x = mnist_binary[2][:2]
    z = ae.encode(x).numpy()
    assert z.shape == (2, LATENT)
    path = ae.interpolate(x[0], x[1], steps=6).numpy()
    assert path.shape == (6, 28, 28, 1)
    np.testing.assert_allclose(path[0], ae.reconstruct(x[:1]).numpy()[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], ae.reconstruct(x[1:]).numpy()[0], atol=1e-5)
    samples = ae.sample(5, seed=0).numpy()
    assert samples.shape == (5, 28, 28, 1) and samples.min() >= 0 and samples.max() <= 1
    ae.save(tmp_path / "ae.keras")
    loaded = keras.saving.load_model(tmp_path / "ae.keras")
    assert isinstance(loaded, Autoencoder) and loaded.latent_dim == LATENT
    np.testing.assert_allclose(loaded.reconstruct(x).numpy(), ae.reconstruct(x).numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="no y"):
        ae.fit(x, x, epochs=1, verbose=0)


# --------------------------------------------------------------------------- comparison


def _labelled_rows_size(rows, columns, h=28, w=28):
    """(width, height) of labelled rows of digits, in keras_vae.plotting's layout."""
    return plotting.grid_size(rows, columns, h, w, labelled=True)


@pytest.fixture(scope="module")
def vaes(mnist_binary):
    """A one-layer and a two-layer VAE, briefly trained (a report needs no good model)."""
    x_train = mnist_binary[0][:1000]
    keras.utils.set_random_seed(0)
    vae = keras_vae.VAE(latent_dim=LATENT, encoder="iwae", seed=0)
    hvae = HierarchicalVAE(latent_dims=(8, LATENT), hidden_units=((64,), (32,)), seed=0)
    for model in (vae, hvae):
        model.initialize_output_bias(x_train)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model.fit(x_train, epochs=1, batch_size=50, verbose=0)
    return vae, hvae


def test_comparison_writes_metrics_and_non_blank_pictures(mnist_binary, trained, vaes, tmp_path):
    pca, ae, _ = trained
    vae, hvae = vaes
    x_test = mnist_binary[2][:60]
    models = {"pca": pca, "ae": ae, "vae": vae, "hvae": hvae}
    steps, num_samples = 6, 16
    report = compare(models, x_test, tmp_path / "cmp", seed=3, num_samples=num_samples,
                     steps=steps, num_reconstructions=8, k=20)

    with open(tmp_path / "cmp" / "metrics.json") as f:
        written = json.load(f)
    assert written["metrics"] == json.loads(json.dumps(report["metrics"]))
    i, j = written["pair"]
    assert i != j
    for name in models:
        entry = written["metrics"][name]
        assert 0 < entry["reconstruction_mse"] < 0.2
        assert entry["reconstruction_bce"] > 0
    mse = {n: written["metrics"][n]["reconstruction_mse"] for n in models}
    np.testing.assert_allclose(mse["pca"], np.mean((pca.reconstruct(x_test) - x_test) ** 2),
                               rtol=1e-5)
    for name in ("pca", "ae"):
        assert written["metrics"][name]["test_log_likelihood"] is None
    for name in ("vae", "hvae"):
        ll = written["metrics"][name]["test_log_likelihood"]
        assert np.isfinite(ll) and -800 < ll < 0, (name, ll)  # nats per digit
        assert written["metrics"][name]["log_likelihood_k"] == 20

    sizes = {}
    for filename in IMAGE_FILES:
        with Image.open(tmp_path / "cmp" / filename) as image:
            assert image.format == "PNG"
            sizes[filename] = image.size
            pixels = np.asarray(image.convert("L"), "float64")
        assert pixels.std() > 20, filename  # not blank
    # Labelled rows: one per model (plus the data row in the reconstructions), with
    # steps + 2 digits on each interpolation row (the two originals at the ends).
    assert sizes["interpolations.png"] == _labelled_rows_size(len(models), steps + 2)
    assert sizes["reconstructions.png"] == _labelled_rows_size(len(models) + 1, 8)
    # Samples: a square grid per model, side by side under a title strip.
    width_s, height_s = sizes["samples.png"]
    panel = (width_s - PANEL_GAP * (len(models) - 1)) / len(models)
    assert panel == int(panel) and panel >= 4 * 28
    assert height_s == TITLE_HEIGHT + panel  # square panels
    # Each model's own samples are non-blank, PCA's and the AE's included.
    with Image.open(tmp_path / "cmp" / "samples.png") as image:
        pixels = np.asarray(image.convert("L"), "float64")
    for index in range(len(models)):
        left = int(index * (panel + PANEL_GAP))
        block = pixels[TITLE_HEIGHT:, left:left + int(panel)]
        assert block.std() > 20, list(models)[index]
