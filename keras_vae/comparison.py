r"""A side-by-side report of PCA, an autoencoder and (hierarchical) VAEs on the same test set.

For each model it measures

```none
reconstruction_mse   (1/(N D)) sum_n ||x_n - x^_n||^2             x^ = model.reconstruct(x)
reconstruction_bce   (1/N) sum_n sum_i -[x log x^ + (1-x) log(1-x^)]   (data in [0, 1])
test_log_likelihood  (1/N) sum_n log (1/k) sum_s w_s(x_n)          (models with compute_terms:
                                                                    the IWAE_k estimate, nats)
```

and draws three pictures, one row or panel per model:

- `reconstructions.png`: the same test digits (top row) and each model's reconstruction;
- `interpolations.png`: the decoded straight line between the codes of the same two
  test digits (their originals at both ends);
- `samples.png`: decodes of random latent points, `model.sample(n, seed=seed)`: the
  VAE's prior draws, the autoencoder's N(0, I) draws (its code space has no prior,
  hence the "holes"), PCA's Gaussian fit to its codes.

and writes `metrics.json`. A model takes part if it has `reconstruct(x)`,
`interpolate(x_a, x_b, steps)` and `sample(n, seed=...)`: `keras_vae.VAE`,
`keras_vae.hierarchical.HierarchicalVAE`, `keras_vae.baselines.PCA` and
`keras_vae.baselines.Autoencoder` all do.

Example:

```python
from keras_vae.baselines import PCA, Autoencoder
from keras_vae.comparison import compare
report = compare({"pca": PCA(16).fit(x_train), "ae": ae, "vae": vae}, x_test,
                 out_dir="out/compare", seed=0)
report["metrics"]["vae"]["test_log_likelihood"]     # nats per example
```
"""

import io
import os

import numpy as np
from PIL import Image, ImageDraw

from keras_vae import _util, evaluation, plotting

IMAGE_FILES = ("reconstructions.png", "interpolations.png", "samples.png")
#: The layout of samples.png: a title strip above each panel, a gap between panels.
TITLE_HEIGHT = 14
PANEL_GAP = 8


def compare(models, x_test, out_dir, seed=0, num_samples=64, steps=10, num_reconstructions=10,
            k=100, batch_size=50, pair=None):
    """Evaluates `models` on `x_test` and writes pictures and `metrics.json` to `out_dir`.

    Args:
      models: dict name -> model (insertion order is the row order). Each model has
        `reconstruct(x)`, `interpolate(x_a, x_b, steps)` and `sample(n, seed=...)`;
        one with `compute_terms` (VAE, HierarchicalVAE) also gets a test
        log-likelihood.
      x_test: [N, *event_shape] test examples (images [N, H, W, C] in [0, 1] for
        the pictures; other shapes give metrics only).
      out_dir: the folder to write into (created if needed).
      seed: fixes the interpolation pair, the latent draws and the importance samples.
      num_samples: random latent points decoded per model (a square grid if it is
        a square number).
      steps: points on each interpolation path, endpoints included.
      num_reconstructions: test examples shown in `reconstructions.png`.
      k: importance samples per example for the test log-likelihood (IWAE_k, a
        lower bound that tightens as k grows; the literature uses 5000).
      batch_size: examples per forward pass of the log-likelihood.
      pair: (i, j), the indices of the two test examples to interpolate between;
        default: two distinct indices drawn with `seed`.

    Returns:
      A dict {"metrics": {name: {...}}, "pair": [i, j], "files": {name: path}},
      the content of `metrics.json` plus the paths written.
    """
    if not models:
        raise ValueError("compare needs at least one model.")
    x_test = np.asarray(x_test, "float32")
    if len(x_test) < 2:
        raise ValueError(f"compare needs at least 2 test examples, got {len(x_test)}.")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    if pair is None:
        pair = rng.choice(len(x_test), size=2, replace=False)
    i, j = (int(v) for v in pair)

    outputs = _run_models(models, x_test, (i, j), seed, num_samples, steps,
                          num_reconstructions, k, batch_size)
    files = {}
    if _as_images(x_test[:1]) is not None:
        files = _write_pictures(out_dir, x_test, (i, j), outputs, num_reconstructions,
                                num_samples)
    report = {"metrics": outputs["metrics"], "pair": [i, j], "seed": int(seed),
              "num_test_examples": int(len(x_test))}
    files["metrics"] = os.path.join(out_dir, "metrics.json")
    _util.atomic_write_json(files["metrics"], report)
    report["files"] = files
    return report


def _run_models(models, x_test, pair, seed, num_samples, steps, num_reconstructions, k,
                batch_size):
    """Each model's metrics, reconstructions, interpolation path and samples, by name."""
    i, j = pair
    outputs = {"metrics": {}, "reconstructions": {}, "paths": {}, "samples": {}}
    for name, model in models.items():
        x_hat = _batched(model.reconstruct, x_test, batch_size)
        entry = {
            "kind": type(model).__name__,
            "latent_dim": int(getattr(model, "latent_dim", -1)),
            "reconstruction_mse": float(np.mean((x_hat - x_test) ** 2)),
            "reconstruction_bce": _bce(x_test, x_hat),
            "test_log_likelihood": None,
            "log_likelihood_k": None,
        }
        if hasattr(model, "compute_terms"):
            entry["test_log_likelihood"] = log_likelihood(model, x_test, k, batch_size, seed)
            entry["log_likelihood_k"] = int(k)
        outputs["metrics"][name] = entry
        outputs["reconstructions"][name] = x_hat[:num_reconstructions]
        outputs["paths"][name] = _numpy(model.interpolate(x_test[i], x_test[j], steps))
        outputs["samples"][name] = _numpy(model.sample(num_samples, seed=seed))
    return outputs


def _write_pictures(out_dir, x_test, pair, outputs, num_reconstructions, num_samples):
    """Writes the three PNGs of `compare`; returns {picture: path}."""
    i, j = pair
    names = list(outputs["metrics"])
    rows = [_as_images(r) for r in [x_test[:num_reconstructions]]
            + [outputs["reconstructions"][n] for n in names]]
    strips = [_as_images(np.concatenate([x_test[i:i + 1], outputs["paths"][n],
                                         x_test[j:j + 1]])) for n in names]
    columns = int(np.ceil(np.sqrt(num_samples)))
    panels = [plotting.image_grid(_as_images(outputs["samples"][n]), ncols=columns)
              for n in names]
    pictures = {
        "reconstructions": plotting.labelled_rows(rows, ["data"] + names),
        "interpolations": plotting.labelled_rows(strips, names),
        "samples": _side_by_side(panels, names),
    }
    return {key: _write(os.path.join(out_dir, f"{key}.png"), image)
            for key, image in pictures.items()}


def log_likelihood(model, x, k=100, batch_size=50, seed=0):
    r"""Mean over x of the IWAE_k estimate of log p(x), in nats.

    ```none
    log p(x) >= E log (1/k) sum_s p(x, z_s) / q(z_s|x),   z_s ~ q(z|x)
    ```

    `keras_vae.evaluation.log_likelihood` (streamed over chunks of samples), averaged.

    Args:
      model: a model with `compute_terms` (`VAE`, `HierarchicalVAE`).
      x: examples [N, *event_shape].
      k: importance samples per example.
      batch_size: examples per forward pass.
      seed: int seed of the draws.

    Returns:
      The mean estimate, a float (nats per example).
    """
    result = evaluation.log_likelihood(model, x, k=int(k), batch_size=int(batch_size),
                                       seed=int(seed))
    return float(result.mean)


# --------------------------------------------------------------------------- helpers


def _numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _batched(fn, x, batch_size):
    return np.concatenate([_numpy(fn(x[s:s + batch_size])) for s in range(0, len(x), batch_size)])


def _bce(x, x_hat):
    if x.min() < 0 or x.max() > 1:
        return None
    p = np.clip(x_hat.astype("float64"), 1e-6, 1 - 1e-6)
    per_example = -(x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(len(x), -1).sum(axis=1)
    return float(per_example.mean())


def _as_images(x):
    """[N, *event_shape] -> float [N, H, W, C] in [0, 1] (C = 1 or 3), or None if not images."""
    x = np.clip(np.asarray(x, "float32"), 0.0, 1.0)
    if x.ndim == 2:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1]:
            return None
        x = x.reshape(len(x), side, side)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        return None
    return x


def _side_by_side(panels, labels, title_height=TITLE_HEIGHT, gap=PANEL_GAP):
    """PIL images left to right, each with its model's name above it."""
    width = sum(p.size[0] for p in panels) + gap * (len(panels) - 1)
    height = title_height + max(p.size[1] for p in panels)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    left = 0
    for panel, label in zip(panels, labels):
        canvas.paste(panel.convert("RGB"), (left, title_height))
        draw.text((left + 2, 1), str(label), fill="black")
        left += panel.size[0] + gap
    return canvas


def _write(path, image):
    """Saves a PIL image as PNG, atomically; returns the path."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    _util.atomic_write_bytes(path, buffer.getvalue())
    return path


__all__ = ["compare", "log_likelihood", "IMAGE_FILES"]
