// The browser sampler: onnxruntime-web (wasm backend) runs OUT/onnx/sampler.onnx and
// draws a grid of images on a canvas; a slider sets the temperature.
//
// Served by `python -m keras_vae.serving web OUT` (or any static server over the folder
// that `keras_vae.serving.webapp.build_site` writes): ./ort/ holds onnxruntime-web's
// dist files, ./model/ the export folder (manifest.json, onnx/). `?model=URL` points at
// another export folder on the same origin. The samplers and the image shape come from
// the manifest, read by ./manifest.mjs.
//
// State for tests and scripts: document.documentElement.dataset.state is "loading",
// "ready" or "error"; window.kvae holds {state, error, draws, stats, width, height}.

import * as ort from './ort/ort.wasm.min.mjs';
import { gridRGBA, imageShape, stats } from './grid.mjs';
import {
  checkManifest, checkSampler, eventShape, MANIFEST_FILE, SAMPLER_INPUTS, SAMPLER_OUTPUTS, sampler,
  samplers,
} from './manifest.mjs';

const $ = (id) => document.getElementById(id);
const kvae = (window.kvae = { state: 'loading', error: null, draws: 0, stats: null });
const params = new URLSearchParams(location.search);
const modelBase = new URL(params.get('model') || './model/', location.href);

ort.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation (COOP/COEP headers)
ort.env.wasm.proxy = false;

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
    sessions.set(file, await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }));
  }
  return sessions.get(file);
}

async function draw() {
  const side = Number($('grid-size').value);
  const n = side * side;
  const temperature = Number($('temperature').value);
  const file = $('sampler').value;
  const session = await getSession(file);
  const [numSamples, temperatureInput] = SAMPLER_INPUTS;
  const [imagesOutput, zOutput] = SAMPLER_OUTPUTS;
  const t0 = performance.now();
  const out = await session.run({
    [numSamples]: new ort.Tensor('int64', BigInt64Array.from([BigInt(n)]), []),
    [temperatureInput]: new ort.Tensor('float32', Float32Array.from([temperature]), []),
  });
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
  setState('ready', `${n} samples at temperature ${temperature.toFixed(2)} from ${file} in ` +
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
  $('resample').addEventListener('click', redraw);
  await redraw();
}

start().catch(fail);
