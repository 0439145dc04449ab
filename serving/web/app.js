// The browser sampler: onnxruntime-web (wasm backend) runs OUT/onnx/sampler.onnx and
// draws a grid of images on a canvas; a slider sets the temperature.
//
// Served by `python -m keras_vae.serving web OUT` (or any static server over the folder
// that `keras_vae.serving.webapp.build_site` writes): ./ort/ holds onnxruntime-web's
// dist files, ./model/ the export folder (manifest.json, onnx/). `?model=URL` points at
// another export folder on the same origin. The samplers and the image shape come from
// the manifest, read by ./manifest.mjs. A class-conditional export gets a class picker
// (`?label=3` preselects it); each row draws with seed + i (contract 2), so `?seed=S`
// reproduces a grid exactly (the same images as TF Serving, TFLite and Node for S).
//
// State for tests and scripts: document.documentElement.dataset.state is "loading",
// "ready" or "error"; window.kvae holds {state, error, draws, stats, width, height, seed,
// label}; window.kvae.sample({n, temperature, seed, label}) runs the sampler once and
// returns {images, z} as plain arrays, window.kvae.decode(z, labels) runs decoder.onnx
// (for tests and scripts).

import * as ort from './ort/ort.wasm.min.mjs';
import { gridRGBA, imageShape, stats } from './grid.mjs';
import {
  checkLabels, checkManifest, checkSampler, condition, decoderInput, eventShape, MANIFEST_FILE,
  numClasses, onnxPath, SAMPLER_OUTPUTS, sampler, samplerFeeds, samplers,
} from './manifest.mjs';

const $ = (id) => document.getElementById(id);
const kvae = (window.kvae = { state: 'loading', error: null, draws: 0, stats: null });
const params = new URLSearchParams(location.search);
const modelBase = new URL(params.get('model') || './model/', location.href);

ort.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation (COOP/COEP headers)
ort.env.wasm.proxy = false;

// keras_vae.export.runtimes.SESSION_SETTINGS, in onnxruntime-web's words (wasm, one thread);
// passed as a copy: onnxruntime-web writes into the options object it is given.
const SESSION_OPTIONS = Object.freeze({
  executionProviders: ['wasm'], graphOptimizationLevel: 'all', executionMode: 'sequential',
});

let manifest = null;
const sessions = new Map();
let busy = Promise.resolve();

function setState(state, message) {
  kvae.state = state;
  document.documentElement.dataset.state = state;
  const el = $('status');
  el.textContent = message;
  el.classList.toggle('error', state === 'error');
}

async function getSession(file) {
  if (!sessions.has(file)) {
    const url = new URL(sampler(manifest, file).path, modelBase);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    sessions.set(file, await ort.InferenceSession.create(bytes, { ...SESSION_OPTIONS }));
  }
  return sessions.get(file);
}

/** A fresh random seed (53 bits). */
function randomSeed() {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return (words[0] & 0x1fffff) * 2 ** 32 + words[1];
}

let seed = params.has('seed') ? Number(params.get('seed')) : randomSeed();

/** One sampler run: {n, temperature, seed, label, file} -> the session's outputs. */
async function run({ n, temperature, seed: base, label = null, file = 'sampler' }) {
  const session = await getSession(file);
  const feeds = samplerFeeds(manifest, { n, temperature, seed: base, labels: label });
  const tensors = Object.fromEntries(Object.entries(feeds).map(([k, { type, data, dims }]) => [k,
    new ort.Tensor(type, type === 'int64' ? BigInt64Array.from(data) : Float32Array.from(data), dims)]));
  return session.run(tensors);
}

/** The ONNX decoder on z [[...], ...] (+ labels for a conditional model): {name: {dims, data}}. */
kvae.decode = async (z, labels = null) => {
  if (!sessions.has('decoder')) {
    const url = new URL(onnxPath(manifest, 'decoder'), modelBase);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    sessions.set('decoder', await ort.InferenceSession.create(bytes, { ...SESSION_OPTIONS }));
  }
  const d = z[0].length;
  const feeds = { [decoderInput(manifest)]: new ort.Tensor('float32', Float32Array.from(z.flat()), [z.length, d]) };
  const rows = checkLabels(manifest, labels, z.length);
  if (rows) feeds[condition(manifest).input] = new ort.Tensor('int64', BigInt64Array.from(rows.map(BigInt)), [z.length]);
  const out = await sessions.get('decoder').run(feeds);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dims: Array.from(v.dims), data: Array.from(v.data) }]));
};

kvae.sample = async (opts) => {
  const out = await run(opts);
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dims: Array.from(v.dims), data: Array.from(v.data) }]));
};

function chosenLabel() {
  return numClasses(manifest) ? Number($('label').value) : null;
}

async function draw() {
  const side = Number($('grid-size').value);
  const n = side * side;
  const temperature = Number($('temperature').value);
  const file = $('sampler').value;
  const label = chosenLabel();
  const [imagesOutput, zOutput] = SAMPLER_OUTPUTS;
  const t0 = performance.now();
  const out = await run({ n, temperature, seed, label, file });
  const ms = performance.now() - t0;
  const images = out[imagesOutput];
  const shape = imageShape(eventShape(manifest));
  const { width, height, rgba } = gridRGBA(images.data, n, shape, { columns: side });
  const canvas = $('grid');
  canvas.width = width;
  canvas.height = height;
  canvas.getContext('2d').putImageData(new ImageData(rgba, width, height), 0, 0);
  kvae.draws += 1;
  kvae.width = width;
  kvae.height = height;
  kvae.stats = { images: stats(images.data), z: stats(out[zOutput].data), ms, temperature, n, file };
  kvae.seed = seed;
  kvae.label = label;
  const of = label === null ? '' : ` of class ${label}`;
  setState('ready', `${n} samples${of} at temperature ${temperature.toFixed(2)} (seed ${seed}) from ${file} in ` +
    `${ms.toFixed(0)} ms (onnxruntime-web ${ort.env.versions?.web ?? ''}, wasm); ` +
    `z std ${kvae.stats.z.std.toFixed(3)}`);
}

let pending = false;

/** Queues one redraw; requests made while one is queued fold into it (slider drags). */
function redraw() {
  if (pending) return busy;
  pending = true;
  busy = busy.then(() => { pending = false; return draw(); }).catch(fail);
  return busy;
}

function fail(err) {
  kvae.error = String(err && err.message ? err.message : err);
  setState('error', `error: ${kvae.error}`);
  console.error('keras-vae sampler:', err);
}

async function start() {
  setState('loading', 'loading the model…');
  const url = new URL(MANIFEST_FILE, modelBase);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  manifest = checkManifest(await response.json(), url.href);
  const select = $('sampler');
  for (const { role, file } of samplers(manifest)) {
    checkSampler(manifest, role);
    select.add(new Option(file, file));
  }
  if (!select.options.length) throw new Error(`${url.href} lists no ONNX sampler: export with ONNX`);
  const slider = $('temperature');
  const label = $('temperature-value');
  slider.addEventListener('input', () => {
    label.textContent = Number(slider.value).toFixed(2);
    redraw();
  });
  slider.addEventListener('change', redraw);
  $('grid-size').addEventListener('change', redraw);
  select.addEventListener('change', redraw);
  $('resample').addEventListener('click', () => { seed = randomSeed(); redraw(); });
  const classes = numClasses(manifest);
  if (classes) {
    const picker = $('label');
    for (let c = 0; c < classes; c++) picker.add(new Option(String(c), String(c)));
    const wanted = params.get('label');
    if (wanted !== null) {
      const v = Number(wanted);
      if (!Number.isInteger(v) || v < 0 || v >= classes) {
        throw new Error(`label must be an integer class in [0, ${classes - 1}] (the model has ${classes} classes), got ${wanted}`);
      }
      picker.value = String(v);
    }
    $('label-control').hidden = false;
    picker.addEventListener('change', redraw);
  }
  await redraw();
}

start().catch(fail);
