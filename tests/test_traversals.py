"""keras_vae.traversals and `keras-vae traverse`; `keras-vae evaluate`'s clustering, probe and
per-class fields.

- `traverse` sweeps exactly one unit per row (checked on the latents it decodes), rows come
  most active unit first, a conditional model gets a block per label;
- `keras-vae traverse RUN` writes its PNG (atomically: no temporary file left) of the
  predicted size, with tiles that are not blank, and refuses bad arguments with exit code 2;
- `keras-vae evaluate` on a mixture-prior run adds 'clustering' (model, k-means on pixels
  and on latents) and 'linear_probe' to metrics.json and the table.
Tiny: 300 embedded digits, one epoch, in-process (`cli.main`).
"""

import json

import numpy as np
import pytest

import keras_vae
from keras_vae import cli, plotting, traversals
from keras_vae._backend import keras

TINY = ["--train-examples", "300", "--test-examples", "100", "--batch-size", "50",
        "--epochs", "1", "--seed", "3", "--no-jit", "--no-pictures", "--verbose", "0"]


@pytest.fixture(scope="module")
def mixture_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("traverse") / "run"
    assert cli.main(["train", "--out", str(run), "--prior", "mixture", "--latent-dim", "6",
                     *TINY]) == 0
    return run


class _Recorder(keras_vae.VAE):
    """A VAE that keeps the latents its decoder_parameters was called with."""

    def decoder_parameters(self, z, condition=None):
        self.seen = np.asarray(z)
        self.seen_condition = None if condition is None else np.asarray(condition)
        return super().decoder_parameters(z, condition=condition)


def test_traverse_sweeps_one_unit_per_row():
    model = _Recorder(latent_dim=4, event_shape=(5, 5, 1), encoder="mlp")
    base = np.array([0.5, -1.0, 2.0, 0.1], "float32")
    values = traversals.sweep_values(5)
    images = traversals.traverse(model, base, [2, 0], values)
    assert images.shape == (2, 5, 5, 5, 1)
    z = model.seen.reshape(2, 5, 4)
    np.testing.assert_allclose(z[0, :, 2], [-3, -1.5, 0, 1.5, 3])
    np.testing.assert_allclose(z[1, :, 0], values)
    for r, unit in enumerate((2, 0)):
        others = [u for u in range(4) if u != unit]
        np.testing.assert_array_equal(z[r][:, others], np.tile(base[others], (5, 1)))
    assert traversals.order_units([0.1, 0.9, 0.0, 0.9]).tolist() == [1, 3, 0, 2]
    with pytest.raises(ValueError, match="units must be in 0..3"):
        traversals.traverse(model, base, [4], values)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        traversals.sweep_values(1)


def test_conditional_traversal_has_a_block_per_label():
    keras.utils.set_random_seed(0)
    model = _Recorder(latent_dim=3, event_shape=(5, 5, 1), encoder="mlp", num_classes=3)
    x = np.random.default_rng(0).random((12, 5, 5, 1)).astype("float32")
    labels = np.arange(12) % 3
    image, info = traversals.traversal_picture(model, x, labels=labels, num_units=2, steps=4)
    assert info["labels"] == [0, 1, 2] and len(info["units"]) == 2
    assert image.size == plotting.grid_size(6, 4, 5, 5, labelled=True)
    np.testing.assert_array_equal(model.seen_condition, np.eye(3)[[2] * 8])  # the last block
    with pytest.raises(ValueError, match="needs the labels"):
        traversals.traversal_picture(model, x)


def test_traverse_cli_writes_its_picture(mixture_run, tmp_path, capsys):
    out = tmp_path / "t.png"
    assert cli.main(["traverse", str(mixture_run), "--units", "3", "--steps", "7",
                     "--out", str(out)]) == 0
    assert "3 unit(s) x 7 values" in capsys.readouterr().out
    assert not plotting.is_blank(out)
    from PIL import Image

    with Image.open(out) as image:
        assert image.size == plotting.grid_size(3, 7, labelled=True)
        array = np.asarray(image.convert("L"), "float32")
    step = 28 * 2 + 2
    for r in range(3):  # every row's first tile has contrast
        tile = array[2 + r * step:2 + r * step + 56, plotting.LABEL_WIDTH + 2:][:, :56]
        assert np.ptp(tile) > 30
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]  # no temporary file left
    assert cli.main(["traverse", str(mixture_run)]) == 0  # the default path
    assert (mixture_run / "pictures" / "traverse_index0.png").is_file()
    assert cli.main(["traverse", str(mixture_run), "--steps", "1"]) == 2
    capsys.readouterr()
    assert cli.main(["traverse", str(mixture_run), "--examples", "50", "--index", "50"]) == 2
    assert "--index must be < 50" in capsys.readouterr().err


def test_evaluate_adds_clustering_and_the_probe(mixture_run, capsys):
    assert cli.main(["evaluate", str(mixture_run), "--k", "5", "--examples", "100",
                     "--snr-estimates", "0", "--probe-examples", "200"]) == 0
    table = capsys.readouterr().out
    report = json.loads((mixture_run / "metrics.json").read_text())
    clusters = report["clustering"]
    for key in ("model", "kmeans_pixels", "kmeans_latent"):
        assert 0 <= clusters[key]["accuracy"] <= 1 and clusters[key]["num_examples"] == 100
        assert -1 <= clusters[key]["ari"] <= 1 and 0 <= clusters[key]["nmi"] <= 1
    assert clusters["model"]["num_clusters"] == 10
    probe = report["linear_probe"]
    assert probe["num_train"] == 200 and probe["num_test"] == 100 and probe["latent_dim"] == 6
    assert probe["latent_accuracy"] > probe["chance"] and probe["pca_accuracy"] > probe["chance"]
    assert "cluster accuracy" in table and "linear probe" in table and "PCA-6" in table
    assert cli.main(["evaluate", str(mixture_run), "--k", "5", "--examples", "50",
                     "--snr-estimates", "0", "--probe-examples", "0"]) == 0
    report = json.loads((mixture_run / "metrics.json").read_text())
    assert report["linear_probe"] is None and "no labelled" in report["linear_probe_skipped"]
