"""Part uses: what a VAE is used for, on full MNIST: clusters, linear features, class samples.

Three models of the 'mlp' preset (512-256, d = 10, Bernoulli likelihood on the grey
intensities), trained on the 60,000 training digits with Adam(1e-3), batch 100:
a plain VAE (N(0, I) prior), a mixture-prior VAE (10 components; `initialize_mixture`
places them by k-means on its latent means after the first phase, VaDE's start) and a
conditional VAE (num_classes=10). Figures, each beside its baseline:

- unsupervised clustering accuracy (Hungarian one-to-one map), NMI, ARI of the mixture
  VAE's components on the 10,000 test digits; k-means (k-means++, 4 restarts) on the
  test pixels and on the plain VAE's test latent means;
- linear-probe test accuracy (logistic regression, `evaluation.linear_probe`) on the
  plain VAE's latent means, fitted on the first 10,000 training digits; the same probe on
  PCA-10 and on the pixels;
- class-conditional sample accuracy: 100 samples per class (T = 1) from the
  conditional VAE, classified by a small CNN trained here on the training digits (its
  own test accuracy is reported); baseline: the plain VAE's samples, classified the
  same way, are of a requested class only as often as that class comes up (~10%).
- clustering recipes, each over several seeds (every seed and the mean reported, never the
  best alone): VaDE's start (Jiang et al., 2017) on VaDE's larger net ('vade' preset,
  500-500-2000, d = 10): a mixture-prior VAE pre-trained as an autoencoder (beta = 0),
  `initialize_mixture` (k-means on its latent means places the components), then trained
  on the ELBO (beta = 1); and the GMVAE
  (`keras_vae.GaussianMixtureVAE`: a categorical y beside z, the ELBO summed over y
  exactly, clusters = argmax q(y|x)) with the same k-means start.
Pictures (docs/images/uses_*.png): samples one row per class, traversals of the plain
VAE, and test digits by cluster of the VaDE-start recipe (its first seed).
"""

import io
import time

import numpy as np

import common

FULL = {"train": 60000, "epochs_plain": 5, "epochs_mixture": (5, 5), "epochs_conditional": 8,
        "epochs_classifier": 3, "probe_train": 10000, "test": 10000,  # sized for 2 shared cores
        "epochs_vade": (2, 3), "epochs_gmvae": (2, 2), "seeds": (0, 1)}
QUICK = {"train": 2000, "epochs_plain": 1, "epochs_mixture": (1, 1), "epochs_conditional": 1,
         "epochs_classifier": 1, "probe_train": 1000, "test": 500,
         "epochs_vade": (1, 1), "epochs_gmvae": (1, 1), "seeds": (0, 1)}
PICTURES = common.REPO / "docs" / "images"


def _load(sizes):
    import keras

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    scale = lambda x: (x[..., None] / 255.0).astype("float32")  # noqa: E731
    n, m = sizes["train"], sizes["test"]
    return scale(x_train[:n]), y_train[:n], scale(x_test[:m]), y_test[:m]


def _vae(**kwargs):
    import keras_vae
    from keras_vae._backend import keras

    keras.utils.set_random_seed(0)
    return keras_vae.VAE(latent_dim=10, event_shape=(28, 28, 1), encoder="mlp", seed=0,
                         **kwargs)


def _fit(model, x, y, epochs, spe, log, first=True):
    from keras_vae._backend import keras

    if first:
        model.initialize_output_bias(x)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=spe)
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=100, epochs=int(epochs), verbose=0)
    seconds = time.perf_counter() - start
    log(f"uses: {type(model).__name__} {epochs} epoch(s) in {seconds:.0f} s, final loss "
        f"{history.history['loss'][-1]:.2f}")
    return round(seconds, 1)


def _classifier(x, y, x_test, y_test, epochs):
    """A small CNN (conv 16 and 32, stride 2, dense 128): (model, its test accuracy)."""
    from keras_vae._backend import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 5, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 5, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=50,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=128, epochs=int(epochs), verbose=0)
    return model, float(np.mean(_predict(model, x_test) == y_test))


def _predict(model, x):
    return np.argmax(model.predict(x, batch_size=1000, verbose=0), axis=1)


def _png(image, name):
    from keras_vae import _util

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    _util.atomic_write_bytes(PICTURES / name, buffer.getvalue())
    return str((PICTURES / name).relative_to(common.REPO))


def _class_samples(conditional, plain, classifier, per_class=100):
    """Class-conditional sample accuracy, the unconditional baseline, and the picture."""
    from keras_vae import plotting

    labels = np.repeat(np.arange(10), per_class)
    images = np.asarray(conditional.sample(len(labels), labels=labels, seed=1), "float32")
    predicted = _predict(classifier, images)
    per = [float(np.mean(predicted[labels == c] == c)) for c in range(10)]
    unconditional = _predict(classifier, np.asarray(plain.sample(len(labels), seed=1),
                                                    "float32"))
    baseline = float(np.mean(unconditional == labels))  # 'class c' asked of a model without y
    rows = [images[labels == c][:10] for c in range(10)]
    picture = _png(plotting.labelled_rows(rows, [str(c) for c in range(10)]),
                   "uses_class_rows.png")
    return {"accuracy": float(np.mean(predicted == labels)), "per_class": per,
            "unconditional_baseline": baseline,
            "unconditional_label_shares": np.bincount(unconditional, minlength=10).tolist(),
            "samples": int(len(labels)), "temperature": 1.0, "picture": picture}


def _cluster_picture(mixture, x_test, result):
    """Ten test digits per cluster, rows ordered by the matched label."""
    from keras_vae import plotting

    order = sorted(range(mixture.prior.num_components),
                   key=lambda c: result.mapping.get(c, 99))
    rows, names = [], []
    for c in order:
        members = x_test[result.assignments == c][:10]
        if len(members):
            rows.append(members)
            names.append(f"c{c}->{result.mapping.get(c, '-')}")
    return _png(plotting.labelled_rows(rows, names), "uses_clusters.png")


def _clustering(args, sizes, x, x_test, y_test, plain, spe, log):
    from keras_vae import priors
    from keras_vae.evaluation import clustering

    mixture = _vae(prior=priors.MixtureOfGaussiansPrior(10, num_components=10))
    first, second = sizes["epochs_mixture"]
    seconds = _fit(mixture, x, None, first, spe, log)
    before = clustering.clustering(mixture, x_test, y_test).accuracy
    clustering.initialize_mixture(mixture, x[:10000], seed=0)
    seconds += _fit(mixture, x, None, second, spe, log, first=False)
    result = clustering.clustering(mixture, x_test, y_test)
    pixels = clustering.kmeans_pixels(x_test, y_test, seed=0)
    latent = clustering.kmeans_latent(plain, x_test, y_test, seed=0)
    drop = lambda s: {k: v for k, v in s.items() if k != "mapping"}  # noqa: E731
    return {"mixture_vae": drop(result.summary()), "kmeans_pixels": drop(pixels.summary()),
            "kmeans_plain_vae_latent": drop(latent.summary()),
            "mixture_before_initialize_mixture": before, "train_s": seconds}


def _recipe(kind, seed, sizes, x, x_test, y_test, spe, log):
    """One seed of a clustering recipe: pre-train, k-means start, train on; its figures."""
    import keras_vae
    from keras_vae import priors
    from keras_vae._backend import keras
    from keras_vae.evaluation import clustering

    keras.utils.set_random_seed(seed)
    if kind == "vade":  # beta = 0 first: an autoencoder (with noise), VaDE's pre-training
        model = keras_vae.VAE(latent_dim=10, encoder="vade", seed=seed, beta=0.0,
                              prior=priors.MixtureOfGaussiansPrior(10, num_components=10))
    else:
        model = keras_vae.GaussianMixtureVAE(num_components=10, latent_dim=10,
                                             encoder="mlp", seed=seed, beta=0.0)
    first, second = sizes[f"epochs_{kind}"]
    seconds = _fit(model, x, None, first, spe, log)
    before = clustering.clustering(model, x_test, y_test).accuracy
    latent = clustering.kmeans_latent(model, x_test, y_test, seed=seed).accuracy
    clustering.initialize_mixture(model, x[:10000], seed=seed)
    model.beta, model.train_function = 1.0, None  # the full ELBO from here (retraced)
    seconds += _fit(model, x, None, second, spe, log, first=False)
    result = clustering.clustering(model, x_test, y_test)
    log(f"uses: {kind} seed {seed}: accuracy {result.accuracy:.4f} (before the k-means "
        f"start {before:.4f}), {seconds:.0f} s")
    return model, result, {"seed": seed, "accuracy": result.accuracy, "nmi": result.nmi,
                           "ari": result.ari, "used_clusters": result.used_clusters,
                           "accuracy_before_initialize_mixture": before,
                           "kmeans_pretrained_latent": latent, "train_s": seconds}


def _recipes(sizes, x, x_test, y_test, spe, log):
    """{kind: {'seeds': [...], 'mean_accuracy', ...}} and the clusters picture."""
    out, picture = {}, None
    for kind in ("vade", "gmvae"):
        runs = []
        for seed in sizes["seeds"]:
            model, result, figures = _recipe(kind, seed, sizes, x, x_test, y_test, spe, log)
            runs.append(figures)
            if kind == "vade" and picture is None:
                picture = _cluster_picture(model, x_test, result)
        accuracies = [r["accuracy"] for r in runs]
        out[kind] = {"seeds": runs, "mean_accuracy": float(np.mean(accuracies)),
                     "std_accuracy": float(np.std(accuracies)),
                     "mean_nmi": float(np.mean([r["nmi"] for r in runs])),
                     "epochs": list(sizes[f"epochs_{kind}"])}
    out["vade"]["model"] = ("VAE, 'vade' preset 500-500-2000 d=10, mixture prior (10); "
                            "pre-trained with beta=0, k-means start, then the ELBO")
    out["gmvae"]["model"] = ("GaussianMixtureVAE, 'mlp' preset 512-256 d=10, C=10; "
                             "pre-trained with beta=0, k-means start, then the ELBO; "
                             "clusters argmax q(y|x)")
    return out, picture


def run(args):
    from keras_vae import evaluation, traversals

    sizes = QUICK if args.quick else FULL
    log = common.log
    _, spe = common.keras_settings(args)
    x, y, x_test, y_test = _load(sizes)
    out = {"protocol": {**{k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
                        "model": "mlp preset 512-256, d=10, Bernoulli on grey intensities",
                        "optimizer": "Adam(1e-3), batch 100"}}
    plain = _vae()
    out["plain_train_s"] = _fit(plain, x, None, sizes["epochs_plain"], spe, log)
    probe = evaluation.linear_probe(plain, x[:sizes["probe_train"]], y[:sizes["probe_train"]],
                                    x_test, y_test)
    out["linear_probe"] = probe.summary()
    log(f"uses: probe {out['linear_probe']}")
    image, info = traversals.traversal_picture(plain, x_test[:1000], index=0, num_units=10)
    out["traversal"] = {**info, "picture": _png(image, "uses_traversals.png")}
    out["clustering"] = _clustering(args, sizes, x, x_test, y_test, plain, spe, log)
    log(f"uses: clustering {out['clustering']['mixture_vae']['accuracy']:.3f}")
    recipes, picture = _recipes(sizes, x, x_test, y_test, spe, log)
    out["clustering"].update(recipes=recipes, picture=picture)
    conditional = _vae(num_classes=10, conditional_prior=True)
    out["conditional_train_s"] = _fit(conditional, x, y, sizes["epochs_conditional"], spe, log)
    classifier, accuracy = _classifier(x, y, x_test, y_test, sizes["epochs_classifier"])
    out["classifier_test_accuracy"] = accuracy
    out["class_samples"] = _class_samples(conditional, plain, classifier)
    log(f"uses: {out}")
    return out


def rows(result):
    c = result["clustering"]
    p, s = result["linear_probe"], result["class_samples"]
    mix, pix, lat = c["mixture_vae"], c["kmeans_pixels"], c["kmeans_plain_vae_latent"]
    baseline = f"k-means: pixels {pix['accuracy']:.1%}, plain-VAE latent {lat['accuracy']:.1%}"
    recipes = []
    for kind, name in (("vade", "VaDE start, 'vade' net"), ("gmvae", "GMVAE (q(y|x))")):
        r = c.get("recipes", {}).get(kind)
        if r:
            each = ", ".join(f"{s['accuracy']:.1%}" for s in r["seeds"])
            recipes.append((f"cluster accuracy, {name}, mean of {len(r['seeds'])} seeds, test",
                            f"{r['mean_accuracy']:.1%}", f"seeds {each}; {baseline}", "",
                            ">= 85%", r["mean_accuracy"] >= 0.85))
    return [
        ("cluster accuracy, mixture VAE (10 comp.), test", f"{mix['accuracy']:.1%}", baseline,
         "", ">= 85%", mix["accuracy"] >= 0.85),
        *recipes,
        (f"linear probe on latent means (d={p['latent_dim']})", f"{p['latent_accuracy']:.1%}",
         f"PCA-{p['latent_dim']} {p['pca_accuracy']:.1%}, pixels {p['pixel_accuracy']:.1%}",
         "", "> PCA", p["latent_accuracy"] > p["pca_accuracy"]),
        ("class-conditional sample accuracy", f"{s['accuracy']:.1%}",
         f"unconditional {s['unconditional_baseline']:.1%}; CNN test "
         f"{result['classifier_test_accuracy']:.1%}", "", ">= 95% (CNN >= 98%)",
         s["accuracy"] >= 0.95 and result["classifier_test_accuracy"] >= 0.98),
    ]
