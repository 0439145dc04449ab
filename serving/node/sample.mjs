#!/usr/bin/env node
// keras-vae's exported ONNX decoder and sampler in Node.js.
//
//   npm ci --prefix keras_vae/serving/node        (once; .npmrc skips the CUDA download)
//   node sample.mjs --export-dir out --num-samples 64 --temperature 0.8 --grid grid.png
//   node sample.mjs --export-dir out --golden z.json --out result.json
//   node sample.mjs --export-dir cvae --label 3 --seed 7 --grid threes.png   (conditional)
//
// Reads OUT/manifest.json (through ../web/manifest.mjs, the one JS manifest reader) and
// the ONNX files it lists, as written by `keras_vae.export.export_all`. Writes raw
// arrays as JSON ({name: {dims, data}}; the float32 values are exact) and/or a grid of
// the sampled images as PNG (or PGM/PPM), with Node's own zlib: no native dependency
// beyond onnxruntime itself. Every file is written atomically.
//
// Options:
//   --export-dir DIR     export folder (manifest.json, onnx/)        [required]
//   --runtime R          node (onnxruntime-node, default) or web (onnxruntime-web, wasm)
//   --golden FILE        JSON {"z": [[...], ...], "labels": [...]}: run the decoder on these
//                        latents (labels: for a class-conditional model)
//   --num-samples N      run the sampler for N images (0: skip)      [default 16]
//   --temperature T      the prior's scale factor                     [default 1]
//   --seed S             row i draws with seed S + i (the same image as TF Serving,
//                        TFLite and Python give for that seed)       [default random]
//   --label L            the class of every sample (class-conditional models; checked
//                        against the manifest's model.condition)
//   --sampler S          sampler role or file name (sampler_int8.onnx) [default sampler]
//   --out FILE           write the arrays as JSON
//   --grid FILE          write the samples as an image grid (.png, .pgm or .ppm)
//   --columns C          grid columns                                 [default ceil(sqrt(N))]

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

import { gridRGBA, imageShape, stats } from '../web/grid.mjs';
import {
  checkLabels, checkManifest, checkSampler, condition, decoderInput, eventShape, latentDim,
  MANIFEST_FILE, onnxPath, sampler, samplerFeeds,
} from '../web/manifest.mjs';

const HELP = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8')
  .split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n');

export function parseArgs(argv) {
  const opts = { runtime: 'node', numSamples: 16, temperature: 1, sampler: 'sampler', columns: 0,
    seed: null, label: null };
  const names = {
    '--export-dir': 'exportDir', '--runtime': 'runtime', '--golden': 'golden',
    '--num-samples': 'numSamples', '--temperature': 'temperature', '--sampler': 'sampler',
    '--out': 'out', '--grid': 'grid', '--columns': 'columns', '--seed': 'seed', '--label': 'label',
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') { opts.help = true; continue; }
    const [flag, inline] = arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    const key = names[flag];
    if (!key) throw new Error(`unknown option ${arg} (see --help)`);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    opts[key] = value;
  }
  opts.numSamples = Number(opts.numSamples);
  opts.temperature = Number(opts.temperature);
  opts.columns = Number(opts.columns);
  if (!Number.isInteger(opts.numSamples) || opts.numSamples < 0) {
    throw new Error(`--num-samples must be a non-negative integer, got ${opts.numSamples}`);
  }
  if (!Number.isFinite(opts.temperature) || opts.temperature < 0) {
    throw new Error(`--temperature must be >= 0, got ${opts.temperature}`);
  }
  if (!['node', 'web'].includes(opts.runtime)) throw new Error(`--runtime must be node or web`);
  if (opts.seed !== null && !/^-?\d+$/.test(String(opts.seed))) {
    throw new Error(`--seed must be an integer, got ${opts.seed}`);
  }
  if (opts.label !== null && !/^-?\d+$/.test(String(opts.label))) {
    throw new Error(`--label must be an integer class, got ${opts.label}`);
  }
  return opts;
}

export async function loadRuntime(name) {
  if (name === 'web') {
    const ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = 1;
    return ort;
  }
  const mod = await import('onnxruntime-node');
  return mod.default ?? mod;
}

/** The export folder's manifest, checked by the shared reader. */
export function readManifest(exportDir) {
  const file = path.join(exportDir, MANIFEST_FILE);
  if (!fs.existsSync(file)) {
    throw new Error(`no ${MANIFEST_FILE} in ${exportDir} (run keras_vae.export.export_all first)`);
  }
  return checkManifest(JSON.parse(fs.readFileSync(file, 'utf8')), file);
}

/** The absolute path of a file the manifest lists (relative, POSIX), checked to exist. */
function exportFile(exportDir, rel) {
  const p = path.join(exportDir, ...rel.split('/'));
  if (!fs.existsSync(p)) throw new Error(`no ${p}: the manifest lists it, the folder lacks it`);
  return p;
}

/** Writes a file atomically: a temporary file beside it, then a rename. */
function writeAtomic(file, data) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

// The session options of keras_vae.export.runtimes.SESSION_SETTINGS (measured on the
// batch-1 sampler, bench/ part export): all graph optimisations, onnxruntime's intra-op
// pool (0: one thread per physical core), sequential.
export const SESSION_OPTIONS = Object.freeze({
  graphOptimizationLevel: 'all',
  intraOpNumThreads: 0,
  interOpNumThreads: 1,
  executionMode: 'sequential',
});

async function session(ort, file) {
  // a copy: onnxruntime-web writes into the options object it is given
  return ort.InferenceSession.create(new Uint8Array(fs.readFileSync(file)), { ...SESSION_OPTIONS });
}

function asJSON(tensor) {
  const data = tensor.type === 'int64' ? Array.from(tensor.data, Number) : Array.from(tensor.data);
  return { dims: Array.from(tensor.dims, Number), type: tensor.type, data };
}

/** {name: ort.Tensor} of manifest.mjs feeds ({type, data, dims} with plain arrays). */
function tensors(ort, feeds) {
  return Object.fromEntries(Object.entries(feeds).map(([k, { type, data, dims }]) => [k,
    new ort.Tensor(type, type === 'int64' ? BigInt64Array.from(data) : Float32Array.from(data), dims)]));
}

/** Runs the decoder on z ([N][d] nested arrays; labels [N] for a class-conditional model). */
export async function decode(ort, exportDir, z, manifest, labels = null) {
  const sess = await session(ort, exportFile(exportDir, onnxPath(manifest, 'decoder')));
  const d = latentDim(manifest);
  const flat = new Float32Array(z.length * d);
  z.forEach((row, i) => {
    if (row.length !== d) {
      throw new Error(`z row ${i} has ${row.length} columns; the model's latent_dim is ${d}`);
    }
    flat.set(row, i * d);
  });
  const feeds = { [decoderInput(manifest)]: new ort.Tensor('float32', flat, [z.length, d]) };
  const rows = checkLabels(manifest, labels, z.length);
  if (rows) feeds[condition(manifest).input] = new ort.Tensor('int64', BigInt64Array.from(rows.map(BigInt)), [z.length]);
  return sess.run(feeds);
}

/** A random seed (53 bits) for draws that differ from run to run. */
export function randomSeed() {
  return Math.floor(Math.random() * 2 ** 53);
}

/**
 * Runs a sampler (a role or file name, see manifest.mjs `sampler`): {images, z} as ort.Tensors.
 * Contract 2: row i draws with seed + i (label: the class of every row, conditional models);
 * contract-1 folders take (num_samples, temperature) and onnxruntime's own seeding.
 */
export async function sample(ort, exportDir, numSamples, temperature, which, manifest,
  { seed = randomSeed(), label = null } = {}) {
  const { role, path: rel } = sampler(manifest, which);
  checkSampler(manifest, role);
  const feeds = samplerFeeds(manifest, { n: numSamples, temperature, seed, labels: label });
  const sess = await session(ort, exportFile(exportDir, rel));
  return sess.run(tensors(ort, feeds));
}

// ------------------------------------------------------------------------ image files

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'ascii');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** An 8-bit RGB PNG of an RGBA buffer (alpha dropped). */
export function encodePNG(width, height, rgba) {
  const raw = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    raw[y * (1 + width * 3)] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 4;
      const d = y * (1 + width * 3) + 1 + x * 3;
      raw[d] = rgba[s]; raw[d + 1] = rgba[s + 1]; raw[d + 2] = rgba[s + 2];
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; header[9] = 2; header[10] = 0; header[11] = 0; header[12] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A binary PGM (grey) or PPM (colour) of an RGBA buffer. */
export function encodePNM(width, height, rgba, colour) {
  const pixels = Buffer.alloc(width * height * (colour ? 3 : 1));
  for (let i = 0; i < width * height; i++) {
    if (colour) { pixels[3 * i] = rgba[4 * i]; pixels[3 * i + 1] = rgba[4 * i + 1]; pixels[3 * i + 2] = rgba[4 * i + 2]; }
    else pixels[i] = rgba[4 * i];
  }
  return Buffer.concat([Buffer.from(`${colour ? 'P6' : 'P5'}\n${width} ${height}\n255\n`), pixels]);
}

export function writeGrid(file, images, manifest, columns = 0) {
  const n = Number(images.dims[0]);
  const shape = imageShape(eventShape(manifest));
  const { width, height, rgba } = gridRGBA(images.data, n, shape, { columns });
  const ext = path.extname(file).toLowerCase();
  let bytes;
  if (ext === '.png') bytes = encodePNG(width, height, rgba);
  else if (ext === '.pgm' || ext === '.ppm') bytes = encodePNM(width, height, rgba, ext === '.ppm');
  else throw new Error(`--grid must end in .png, .pgm or .ppm, got ${file}`);
  writeAtomic(file, bytes);
  return { width, height };
}

// ------------------------------------------------------------------------ main

export async function main(argv) {
  const opts = parseArgs(argv);
  if (opts.help || !opts.exportDir) {
    console.log(HELP);
    return opts.help ? 0 : 2;
  }
  const manifest = readManifest(opts.exportDir);
  const ort = await loadRuntime(opts.runtime);
  const result = { runtime: opts.runtime, versions: ort.env.versions ?? {} };
  if (opts.golden) {
    const golden = JSON.parse(fs.readFileSync(opts.golden, 'utf8'));
    const outputs = await decode(ort, opts.exportDir, golden.z, manifest, golden.labels ?? null);
    result.decode = Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, asJSON(v)]));
  }
  if (opts.numSamples > 0) {
    const t0 = performance.now();
    const seed = opts.seed === null ? randomSeed() : opts.seed;
    const outputs = await sample(ort, opts.exportDir, opts.numSamples, opts.temperature, opts.sampler,
      manifest, { seed, label: opts.label });
    result.seed = String(seed);
    const ms = performance.now() - t0;
    result.sample = Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, asJSON(v)]));
    result.sample_stats = { images: stats(outputs.images.data), z: stats(outputs.z.data), ms };
    if (opts.grid) result.grid = { file: opts.grid, ...writeGrid(opts.grid, outputs.images, manifest, opts.columns) };
    console.error(`sampled ${opts.numSamples} images at T=${opts.temperature} in ${ms.toFixed(1)} ms ` +
      `(${opts.runtime}); z std ${result.sample_stats.z.std.toFixed(3)}`);
  }
  if (opts.out) writeAtomic(opts.out, JSON.stringify(result));
  else if (!opts.grid) console.log(JSON.stringify(result));
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err) => {
    console.error(`sample.mjs: ${err.message}`);
    process.exitCode = 1;
  });
}
