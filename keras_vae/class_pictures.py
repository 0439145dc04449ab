r"""Pictures of a conditional VAE: one row of samples per class, and a conditional run's PNGs.

```none
class_grid      row c: E p(x | z_i, y = c),  z_i ~ p(z) (p(z|y=c)) at temperature T
run_pictures    classes, samples, reconstructions, interpolations, latent, curves
                (every image of a conditional model is decoded with its label)
```

The figures are `keras_vae.plotting`'s; this module only chooses the labels.

Example:

```python
from keras_vae import class_pictures
class_pictures.class_grid(cvae, per_class=10, seed=0, path="classes.png")
```
"""

import os

import numpy as np

from keras_vae import plotting


def class_grid(model, per_class=10, temperature=1.0, seed=0, path=None):
    """One labelled row of `per_class` samples for each class 0..C-1 of a conditional model.

    Args:
      model: a `keras_vae.VAE` with `num_classes`.
      per_class: samples per row.
      temperature: T, the factor on the prior's scales.
      seed: int seed of the draws (row c uses the same seed: the same z under p(z)).
      path: the PNG written, or None.

    Returns:
      The `PIL.Image`.

    Raises:
      ValueError: the model is not conditional on classes.
    """
    if not model.num_classes:
        raise ValueError("class_grid needs a model conditioned on classes (num_classes=C).")
    rows = [np.asarray(model.sample(int(per_class), temperature=temperature, seed=seed,
                                    labels=c), "float32") for c in range(model.num_classes)]
    return plotting.labelled_rows(rows, [f"y={c}" for c in range(model.num_classes)], path=path)


def run_pictures(model, x, y, history, out_dir, seed):
    """A trained conditional model's PNGs, as `plotting.run_pictures` plus classes.png.

    Args:
      model: a conditional `keras_vae.VAE` (num_classes).
      x, y: test images [N, H, W, C] in [0, 1] and their labels (required).
      history: {'epoch': [...], metric: [...]}; curves.png when it has an epoch.
      out_dir: the folder written (created if missing).
      seed: seed of the samples and of the interpolated pairs.

    Returns:
      {picture name: path} of the files written.
    """
    y = np.asarray(y)
    paths = {}

    def path(name):
        paths[name] = os.path.join(os.fspath(out_dir), f"{name}.png")
        return paths[name]

    class_grid(model, 10, 1.0, seed, path=path("classes"))
    cycle = np.arange(10) % model.num_classes
    plotting.samples_figure({t: np.asarray(model.sample(10, temperature=t, seed=seed,
                                                        labels=cycle), "float32")
                             for t in plotting.SAMPLE_TEMPERATURES}, path=path("samples"))
    n, pairs, m = min(20, len(x)), min(4, len(x) // 2), min(1000, len(x))
    plotting.reconstructions_figure(
        x[:n], np.asarray(model.reconstruct(x[:n], labels=y[:n]), "float32"), ncols=10,
        path=path("reconstructions"))
    if pairs:
        idx = np.random.default_rng(seed).choice(len(x), size=2 * pairs, replace=False)
        strips = np.asarray(model.interpolate(x[idx[:pairs]], x[idx[pairs:]], steps=10,
                                              labels=y[idx[:pairs]]))
        plotting.interpolation_figure(strips.astype("float32"), path=path("interpolations"),
                                      method="linear")
    z = np.concatenate([np.asarray(model.encode(x[i:i + 500], labels=y[i:i + 500]).mean(),
                                   "float32") for i in range(0, m, 500)])
    plotting.latent_scatter(z, y[:m], path=path("latent"))
    if history and len(history.get("epoch", [])):
        plotting.training_curves(history, path=path("curves"))
    return paths


__all__ = ["class_grid", "run_pictures"]
