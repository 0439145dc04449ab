r"""Latent traversals: each latent unit swept over [-3, 3] with the others fixed, as a PNG.

For a base point z0 (the posterior mean of an example) and a unit u, row u decodes

```none
z(v) = z0 + (v - z0_u) e_u,     v in linspace(-3, 3, steps)
images(u, v) = E p(x | z(v)[, y])         (the likelihood's mean: `decoder_parameters`)
```

so the unit takes the values v (in the prior's standard units) and every other unit
keeps its value. Units are ordered by Burda et al.'s activity statistic
A_u = Var_x(E q(z_u|x)) (`keras_vae.evaluation.active_units`), most active first: an
inactive unit (A_u <= 0.01) changes nothing. For a conditional model the same z0 is
decoded under every label, one block of rows per label.

Example:

```python
from keras_vae import traversals
figure = traversals.traversal_picture(model, x_test, path="traverse.png")
```

The PNG is written atomically (`_util.atomic_write_bytes`): a crash leaves the old
picture or none.

References:
  I. Higgins et al. beta-VAE: learning basic visual concepts with a constrained
    variational framework. ICLR 2017 (traversal figures).
  Y. Burda, R. Grosse, R. Salakhutdinov. Importance weighted autoencoders. ICLR 2016.
"""

import io

import numpy as np

from keras_vae import _util, plotting
from keras_vae.evaluation import measures
from keras_vae.evaluation.results import ActiveUnits

#: The swept values of a unit: [-3, 3] in the prior's standard units.
RANGE = 3.0
STEPS = 9


def sweep_values(steps=STEPS, limit=RANGE):
    """linspace(-limit, limit, steps) as float32; steps >= 2, limit > 0."""
    if int(steps) < 2 or not float(limit) > 0:
        raise ValueError(f"steps must be >= 2 and limit > 0, got {steps!r}, {limit!r}.")
    return np.linspace(-float(limit), float(limit), int(steps)).astype("float32")


def _condition(model, labels):
    """The condition vectors of `labels` (None for an unconditional model)."""
    if not getattr(model, "is_conditional", False):
        if labels is not None:
            raise ValueError("labels were given, but the model is not conditional.")
        return None
    if labels is None:
        raise ValueError("a conditional model needs the labels (one per example).")
    return np.asarray(model.condition_vector(np.asarray(labels)), "float32")


def encoder_means(model, x, labels=None, batch_size=500):
    """E q(z|x[, y]) [N, d] float64, through the TFP-free `encoder_parameters`."""
    x = np.asarray(x, "float32")
    condition = _condition(model, labels)
    out = []
    for start in range(0, len(x), int(batch_size)):
        part = slice(start, start + int(batch_size))
        kwargs = {} if condition is None else {"condition": condition[part]}
        out.append(np.asarray(model.encoder_parameters(x[part], **kwargs)[0], "float64"))
    return np.concatenate(out)


def activity(model, x, labels=None):
    """The `ActiveUnits` statistic of the model on x (labels for a conditional model)."""
    if not getattr(model, "is_conditional", False):
        return measures.active_units(model, x)
    return ActiveUnits(variances=np.var(encoder_means(model, x, labels), axis=0))


def order_units(variances, num_units=None):
    """Unit indices by decreasing activity (ties by index), the first `num_units`."""
    order = np.argsort(-np.asarray(variances, "float64"), kind="stable")
    return order[:num_units] if num_units else order


def traverse(model, base, units, values, label=None):
    """Images [len(units), len(values), *event_shape]: row r sweeps unit units[r] from z0.

    Args:
      model: a `keras_vae.VAE` (any prior, likelihood, hierarchy).
      base: z0 [d].
      units: the unit indices, each in 0..d-1.
      values: the values each unit takes.
      label: the label (or condition vector) to decode with (conditional models).

    Raises:
      ValueError: a unit out of range, or a label for an unconditional model.
    """
    base = np.asarray(base, "float32").reshape(-1)
    units, values = [int(u) for u in units], np.asarray(values, "float32")
    if any(not 0 <= u < len(base) for u in units):
        raise ValueError(f"units must be in 0..{len(base) - 1}, got {units}.")
    z = np.repeat(base[None, None], len(units), 0).repeat(len(values), 1)
    for r, u in enumerate(units):
        z[r, :, u] = values
    z = z.reshape(-1, len(base))
    kwargs = {}
    if label is not None or getattr(model, "is_conditional", False):
        kwargs["condition"] = _condition(model, [label] * len(z))
    images = np.asarray(model.decoder_parameters(z, **kwargs)["mean"], "float32")
    return images.reshape((len(units), len(values)) + images.shape[1:])


def traversal_picture(model, x, labels=None, index=0, num_units=10, steps=STEPS,
                      limit=RANGE, path=None, scale=2, pad=2):
    """The traversal PNG of a model: the most active units swept from example `index`.

    Args:
      model: a `keras_vae.VAE`.
      x: data [N, *event_shape] for the activity statistic; x[index] gives z0.
      labels: their labels (conditional models only): z0 = E q(z|x[index], y[index]),
        then one block of rows per class (0..C-1 for integer labels).
      index: the example whose posterior mean is z0.
      num_units: rows per block (the most active units; all if None).
      steps, limit: the swept values, linspace(-limit, limit, steps).
      path: where to write the PNG (atomically); None: not written.
      scale, pad: see `plotting.labelled_rows`.

    Returns:
      (the PIL image, a dict: 'units', 'variances', 'values', 'labels' (per block)).

    Raises:
      ValueError: index out of range, bad steps/limit, labels missing or unexpected.
    """
    x = np.asarray(x, "float32")
    if not 0 <= int(index) < len(x):
        raise ValueError(f"index must be in 0..{len(x) - 1}, got {index!r}.")
    values = sweep_values(steps, limit)
    active = activity(model, x, labels)
    units = order_units(active.variances, num_units)
    conditional = getattr(model, "is_conditional", False)
    base = encoder_means(model, x[index:index + 1],
                         None if labels is None else np.asarray(labels)[index:index + 1])[0]
    blocks = list(range(model.num_classes)) if conditional and model.num_classes else \
        ([np.asarray(labels)[index]] if conditional else [None])
    rows, names = [], []
    for block in blocks:
        rows.extend(traverse(model, base, units, values, label=block))
        prefix = "" if block is None else (f"{block}:" if np.ndim(block) == 0 else "y:")
        names.extend(f"{prefix}z{u} {active.variances[u]:.2f}"[:9] for u in units)
    image = plotting.labelled_rows(rows, names, scale=scale, pad=pad)
    if path is not None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        _util.atomic_write_bytes(path, buffer.getvalue())
    info = {"units": [int(u) for u in units],
            "variances": [float(active.variances[u]) for u in units],
            "values": values.tolist(), "index": int(index),
            "labels": [None if b is None else np.asarray(b).tolist() for b in blocks]}
    return image, info


__all__ = ["RANGE", "STEPS", "sweep_values", "encoder_means", "activity", "order_units",
           "traverse", "traversal_picture"]
