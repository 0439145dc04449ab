// Shared by the browser page (app.js) and the Node script (../node/sample.mjs):
// lay out a batch of images [n, H, W, C] (values in [0, 1], NHWC, row-major) as one
// RGBA grid. No dependencies, no DOM.

/** Image height, width and channels of an event shape ([H, W, C], [H, W] or [n]). */
export function imageShape(eventShape) {
  let shape = Array.from(eventShape, Number);
  if (shape.length === 2) shape = [shape[0], shape[1], 1];
  if (shape.length === 1) shape = [1, shape[0], 1];
  if (shape.length !== 3) throw new Error(`cannot draw images of shape ${JSON.stringify(shape)}`);
  return { height: shape[0], width: shape[1], channels: shape[2] };
}

/**
 * Lays out n images as a grid: returns {width, height, rgba (Uint8ClampedArray)}.
 * columns defaults to ceil(sqrt(n)); pad pixels of background separate the tiles.
 */
export function gridRGBA(data, n, shape, { columns = 0, pad = 1, background = 32 } = {}) {
  const { height: h, width: w, channels: c } = shape;
  const cols = columns > 0 ? columns : Math.max(1, Math.ceil(Math.sqrt(n)));
  const rows = Math.max(1, Math.ceil(n / cols));
  const width = cols * w + (cols + 1) * pad;
  const height = rows * h + (rows + 1) * pad;
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < rgba.length; i += 4) {
    rgba[i] = rgba[i + 1] = rgba[i + 2] = background;
    rgba[i + 3] = 255;
  }
  const per = h * w * c;
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % cols) * (w + pad);
    const y0 = pad + Math.floor(k / cols) * (h + pad);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const src = k * per + (y * w + x) * c;
        const dst = ((y0 + y) * width + (x0 + x)) * 4;
        for (let ch = 0; ch < 3; ch++) {
          const v = data[src + (c >= 3 ? ch : 0)];
          rgba[dst + ch] = Math.round(Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * 255);
        }
        rgba[dst + 3] = 255;
      }
    }
  }
  return { width, height, rgba };
}

/** Summary statistics of an array (used by the page's status line and the tests). */
export function stats(data) {
  let min = Infinity, max = -Infinity, sum = 0, sq = 0, finite = 0;
  for (const v of data) {
    if (!Number.isFinite(v)) continue;
    finite++;
    sum += v;
    sq += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = finite ? sum / finite : NaN;
  const std = finite ? Math.sqrt(Math.max(0, sq / finite - mean * mean)) : NaN;
  return { count: data.length, finite, min, max, mean, std };
}
