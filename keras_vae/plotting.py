"""PNG pictures of a VAE with Pillow alone (no matplotlib): grids, strips, scatter, curves.

Every writer takes NumPy arrays, returns the `PIL.Image.Image` it drew and, when
given a `path`, saves it as PNG. Images are [N, H, W, C] floats in [0, 1]
(C = 1 or 3); pixels are scaled up by `scale` so 28 x 28 digits stay readable.

```python
from keras_vae import plotting
plotting.image_grid(model.sample(64, seed=0).numpy(), ncols=8, path="samples.png")
plotting.latent_scatter(model.encode(x).mean().numpy(), labels=y, path="latent.png")
plotting.training_curves(history, path="curves.png")
```

Sizes are predictable: a grid of R x C images of size H x W with scale s and
padding p is (C * (W * s + p) + p) wide and (R * (H * s + p) + p) high, plus
`label_width` on the left when rows are labelled (see `grid_size`).
"""

import io
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
PAD_COLOR = (90, 90, 90)
AXIS_COLOR = (40, 40, 40)
GRID_COLOR = (225, 225, 225)
TEXT_COLOR = (20, 20, 20)
# The ten "tab10" colours: one per class label.
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
LABEL_WIDTH = 56


def _font():
    return ImageFont.load_default()


def _text_size(draw, text, font):
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _save(image, path):
    """Writes `image` as a PNG at `path` (atomically: a failure leaves the old file)."""
    from keras_vae import _util
    if path is not None:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        _util.atomic_write_bytes(path, buffer.getvalue())
    return image


def to_uint8(images):
    """[N, H, W(, C)] floats in [0, 1] -> uint8 RGB [N, H, W, 3] (values clipped)."""
    images = np.asarray(images, dtype="float32")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"Expected images of shape [N, H, W, 1 or 3], got {images.shape}.")
    images = np.nan_to_num(images, nan=0.0, posinf=1.0, neginf=0.0)
    images = np.clip(np.rint(images * 255.0), 0, 255).astype("uint8")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return images


def grid_size(rows, cols, height=28, width=28, scale=2, pad=2, labelled=False):
    """The (width, height) in pixels of a grid drawn by `image_grid`/`labelled_rows`."""
    w = cols * (width * scale + pad) + pad + (LABEL_WIDTH if labelled else 0)
    h = rows * (height * scale + pad) + pad
    return w, h


def _tile(images, ncols, scale, pad, label_width=0, labels=None):
    images = to_uint8(images)
    n, h, w, _ = images.shape
    ncols = max(1, min(int(ncols), n))
    nrows = int(math.ceil(n / ncols))
    size = grid_size(nrows, ncols, h, w, scale, pad)
    canvas = Image.new("RGB", (size[0] + label_width, size[1]), PAD_COLOR)
    if label_width:
        canvas.paste(BACKGROUND, (0, 0, label_width, size[1]))
    for i in range(n):
        r, c = divmod(i, ncols)
        tile = Image.fromarray(images[i], "RGB")
        if scale != 1:
            tile = tile.resize((w * scale, h * scale), Image.NEAREST)
        canvas.paste(tile, (label_width + pad + c * (w * scale + pad), pad + r * (h * scale + pad)))
    if labels:
        draw = ImageDraw.Draw(canvas)
        font = _font()
        for r, label in enumerate(labels[:nrows]):
            tw, th = _text_size(draw, str(label), font)
            y = pad + r * (h * scale + pad) + (h * scale - th) // 2
            draw.text((max(2, (label_width - tw) // 2), y), str(label), fill=TEXT_COLOR,
                      font=font)
    return canvas


def image_grid(images, ncols=None, scale=2, pad=2, path=None):
    """Tiles images [N, H, W, C] into a grid, row by row (ncols defaults to ~sqrt(N))."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image.")
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    return _save(_tile(images, ncols, scale, pad), path)


def labelled_rows(rows, labels, scale=2, pad=2, path=None):
    """One row per entry of `rows` (each [n, H, W, C], same n), its label on the left."""
    rows = [np.asarray(r) for r in rows]
    ncols = max(len(r) for r in rows)
    tiles = []
    for r in rows:
        if len(r) < ncols:  # pad short rows with blank (black) tiles
            r = np.concatenate([r, np.zeros((ncols - len(r),) + r.shape[1:], r.dtype)])
        tiles.append(r)
    images = np.concatenate(tiles, axis=0)
    return _save(_tile(images, ncols, scale, pad, LABEL_WIDTH, list(labels)), path)


def samples_figure(samples_by_temperature, scale=2, pad=2, path=None):
    """Rows of prior samples, one per temperature: {T: images [n, H, W, C]}, labelled 'T=..'."""
    temps = list(samples_by_temperature)
    return labelled_rows([samples_by_temperature[t] for t in temps],
                         [f"T={float(t):g}" for t in temps], scale, pad, path)


def reconstructions_figure(inputs, reconstructions, ncols=10, scale=2, pad=2, path=None):
    """Inputs and their reconstructions in alternating rows ('input' / 'recon.')."""
    inputs, reconstructions = np.asarray(inputs), np.asarray(reconstructions)
    if inputs.shape != reconstructions.shape:
        raise ValueError(f"Shapes differ: {inputs.shape} vs {reconstructions.shape}.")
    rows, labels = [], []
    for start in range(0, len(inputs), ncols):
        rows += [inputs[start:start + ncols], reconstructions[start:start + ncols]]
        labels += ["input", "recon."]
    return labelled_rows(rows, labels, scale, pad, path)


def interpolation_figure(strips, scale=2, pad=2, path=None, method=None):
    """Interpolation strips [P, steps, H, W, C]: one row per pair, endpoints at the sides."""
    strips = np.asarray(strips)
    if strips.ndim == 4:
        strips = strips[None]
    labels = [f"{method or 'path'} {i + 1}" for i in range(len(strips))]
    return labelled_rows(list(strips), labels, scale, pad, path)


# ----------------------------------------------------------------------------- charts


def _nice_ticks(lo, hi, count=5):
    if not np.isfinite(lo) or not np.isfinite(hi):
        return [0.0]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw),
               default=10 * magnitude)
    start = math.ceil(lo / step) * step
    ticks, t = [], start
    while t <= hi + 1e-9 * abs(step):
        ticks.append(round(t, 10))
        t += step
    return ticks or [lo]


def _fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.1e}"
    return f"{v:.4g}"


class _Axes:
    """A rectangle of the canvas mapped to data coordinates, with ticks and a frame."""

    def __init__(self, draw, box, xlim, ylim, font):
        self.draw, self.font = draw, font
        self.x0, self.y0, self.x1, self.y1 = box
        self.xlim = _widen(xlim)
        self.ylim = _widen(ylim)

    def px(self, x, y):
        (a, b), (c, d) = self.xlim, self.ylim
        u = self.x0 + (x - a) / (b - a) * (self.x1 - self.x0)
        v = self.y1 - (y - c) / (d - c) * (self.y1 - self.y0)
        return u, v

    def frame(self, title=None, xlabel=None, integer_x=False):
        d, f = self.draw, self.font
        for t in _nice_ticks(*self.ylim):
            _, v = self.px(self.xlim[0], t)
            d.line([(self.x0, v), (self.x1, v)], fill=GRID_COLOR)
            label = _fmt(t)
            tw, th = _text_size(d, label, f)
            d.text((self.x0 - tw - 4, v - th / 2 - 1), label, fill=TEXT_COLOR, font=f)
        for t in _nice_ticks(*self.xlim):
            if integer_x and abs(t - round(t)) > 1e-9:
                continue
            u, _ = self.px(t, self.ylim[0])
            d.line([(u, self.y1), (u, self.y1 + 3)], fill=AXIS_COLOR)
            label = str(int(round(t))) if integer_x else _fmt(t)
            tw, _ = _text_size(d, label, f)
            d.text((u - tw / 2, self.y1 + 5), label, fill=TEXT_COLOR, font=f)
        d.rectangle([self.x0, self.y0, self.x1, self.y1], outline=AXIS_COLOR)
        if title:
            tw, th = _text_size(d, title, f)
            d.text(((self.x0 + self.x1 - tw) / 2, self.y0 - th - 6), title, fill=TEXT_COLOR,
                   font=f)
        if xlabel:
            tw, _ = _text_size(d, xlabel, f)
            d.text(((self.x0 + self.x1 - tw) / 2, self.y1 + 18), xlabel, fill=TEXT_COLOR,
                   font=f)


def _widen(lim):
    lo, hi = float(lim[0]), float(lim[1])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return (0.0, 1.0)
    if hi - lo < 1e-12:
        span = abs(lo) * 0.05 or 1.0
        return (lo - span, hi + span)
    return (lo, hi)


def pca_2d(z):
    """Projects z [N, d] on its first two principal components ([N, 2]; d <= 2 is padded)."""
    z = np.asarray(z, dtype="float64")
    if z.ndim != 2:
        raise ValueError(f"Expected z of shape [N, d], got {z.shape}.")
    if z.shape[1] == 1:
        return np.concatenate([z, np.zeros_like(z)], axis=1)
    if z.shape[1] == 2:
        return z
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def latent_scatter(z, labels=None, path=None, size=(520, 440), title=None, point=2):
    """A 2-D scatter of latent codes z [N, d], coloured by integer label when given.

    d > 2 is projected on the first two principal components (PCA); the title
    says which. A legend lists the labels' colours.
    """
    z = np.asarray(z)
    d = z.shape[1]
    xy = pca_2d(z)
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = _font()
    legend_width = 60 if labels is not None else 0
    box = (60, 30, size[0] - 15 - legend_width, size[1] - 45)
    finite = np.isfinite(xy).all(axis=1)
    pts = xy[finite]
    lo = pts.min(axis=0) if len(pts) else np.zeros(2)
    hi = pts.max(axis=0) if len(pts) else np.ones(2)
    margin = (hi - lo) * 0.05
    axes = _Axes(draw, box, (lo[0] - margin[0], hi[0] + margin[0]),
                 (lo[1] - margin[1], hi[1] + margin[1]), font)
    if title is None:
        title = f"latent means (d={d})" if d <= 2 else f"latent means, PCA of d={d}"
    axes.frame(title=title, xlabel="z1" if d <= 2 else "PC 1")
    draw.text((box[0] - 50, box[1] - 16), "z2" if d == 2 else ("PC 2" if d > 2 else ""),
              fill=TEXT_COLOR, font=font)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)[finite]
        classes = sorted(set(labels.tolist()))
    else:
        classes = []
    for i, (x, y) in enumerate(pts):
        if labels is not None:
            color = PALETTE[classes.index(labels[i]) % len(PALETTE)]
        else:
            color = PALETTE[0]
        u, v = axes.px(x, y)
        draw.ellipse([u - point, v - point, u + point, v + point], fill=color)
    for i, c in enumerate(classes[:20]):
        y = box[1] + 4 + 14 * i
        x = box[2] + 12
        draw.rectangle([x, y + 2, x + 8, y + 10], fill=PALETTE[i % len(PALETTE)])
        draw.text((x + 12, y), str(c), fill=TEXT_COLOR, font=font)
    return _save(image, path)


def training_curves(history, path=None, keys=None, panel_size=(330, 240)):
    """Training curves from a Keras history dict {metric: [per-epoch values]}.

    One panel per metric (loss, elbo, reconstruction, kl, the iwae bound, ...),
    the training value and, when present, its `val_` twin. `history` may also
    hold an 'epoch' list (1-based) used for the x axis.
    """
    history = {k: [float(v) if v is not None else float("nan") for v in vs]
               for k, vs in history.items() if isinstance(vs, (list, tuple))}
    epochs = history.pop("epoch", None)
    if keys is None:
        keys = [k for k in history if not k.startswith("val_")]
        keys = [k for k in keys if k != "learning_rate"]
        order = {"loss": 0, "elbo": 1, "reconstruction": 8, "kl": 9}
        keys.sort(key=lambda k: (order.get(k, 2), k))
    keys = [k for k in keys if k in history or f"val_{k}" in history]
    if not keys:
        raise ValueError("The history holds no metric to plot.")
    cols = min(3, len(keys))
    rows = int(math.ceil(len(keys) / cols))
    pw, ph = panel_size
    image = Image.new("RGB", (cols * pw, rows * ph), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = _font()
    for i, key in enumerate(keys):
        r, c = divmod(i, cols)
        ox, oy = c * pw, r * ph
        series = [(key, history.get(key), PALETTE[0]),
                  (f"val_{key}", history.get(f"val_{key}"), PALETTE[1])]
        series = [s for s in series if s[1]]
        n = max(len(s[1]) for s in series)
        xs = np.asarray(epochs[:n] if epochs and len(epochs) >= n else range(1, n + 1), "float64")
        values = np.concatenate([np.asarray(s[1], "float64") for s in series])
        values = values[np.isfinite(values)]
        ylim = (values.min(), values.max()) if len(values) else (0.0, 1.0)
        span = ylim[1] - ylim[0]
        ylim = (ylim[0] - 0.05 * span, ylim[1] + 0.05 * span)
        xlim = (xs.min(), xs.max()) if len(xs) > 1 else (xs[0] - 1, xs[0] + 1)
        axes = _Axes(draw, (ox + 62, oy + 28, ox + pw - 14, oy + ph - 52), xlim, ylim, font)
        axes.frame(title=key, xlabel="epoch", integer_x=True)
        for j, (name, vals, color) in enumerate(series):
            pts = [axes.px(x, y) for x, y in zip(xs, vals) if np.isfinite(y)]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for u, v in pts:
                draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=color)
            lx = ox + 70 + j * 120
            ly = oy + ph - 15
            draw.line([(lx, ly + 5), (lx + 14, ly + 5)], fill=color, width=2)
            draw.text((lx + 18, ly), "train" if not name.startswith("val_") else "validation",
                      fill=TEXT_COLOR, font=font)
    return _save(image, path)


def is_blank(path_or_image, tolerance=2):
    """True if an image is (nearly) one flat colour: the check the tests use on every PNG."""
    image = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    array = np.asarray(image.convert("L"), dtype="int16")
    return int(array.max()) - int(array.min()) <= tolerance


#: The temperatures of the samples picture of `run_pictures` (one labelled row each).
SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)


def run_pictures(model, x, y, history, out_dir, seed):
    """A trained model's PNGs: samples, reconstructions, interpolations, latent scatter, curves.

    Args:
      model: a VAE (`sample`, `reconstruct`, `interpolate`, `encode`).
      x, y: test images [N, H, W, C] in [0, 1] (0..255 for an 8-bit likelihood) and labels.
      history: {'epoch': [...], metric: [...]}; curves.png when it has an epoch.
      out_dir: the folder written (created if missing).
      seed: seed of the samples and of the interpolated pairs.

    Returns:
      {picture name: path} of the files written.
    """
    paths, s = {}, 255.0 if getattr(model.likelihood, "integer_valued", False) else 1.0

    def path(name):
        paths[name] = os.path.join(os.fspath(out_dir), f"{name}.png")
        return paths[name]

    samples_figure({t: np.asarray(model.sample(10, temperature=t, seed=seed), "float32") / s
                    for t in SAMPLE_TEMPERATURES}, path=path("samples"))
    n, pairs, m = min(20, len(x)), min(4, len(x) // 2), min(1000, len(x))
    reconstructions_figure(x[:n] / s, np.asarray(model.reconstruct(x[:n]), "float32") / s, ncols=10,
                           path=path("reconstructions"))
    if pairs:
        idx = np.random.default_rng(seed).choice(len(x), size=2 * pairs, replace=False)
        strips = np.asarray(model.interpolate(x[idx[:pairs]], x[idx[pairs:]], steps=10))
        interpolation_figure(strips.astype("float32") / s, path=path("interpolations"),
                             method="linear")
    z = np.concatenate([np.asarray(model.encode(x[i:i + 500]).mean(), "float32")
                        for i in range(0, m, 500)])
    latent_scatter(z, None if y is None else np.asarray(y)[:m], path=path("latent"))
    if history and len(history.get("epoch", [])):
        training_curves(history, path=path("curves"))
    return paths

__all__ = [
    "to_uint8", "grid_size", "image_grid", "labelled_rows", "samples_figure",
    "reconstructions_figure", "interpolation_figure", "pca_2d", "latent_scatter",
    "training_curves", "is_blank", "SAMPLE_TEMPERATURES", "run_pictures",
]
