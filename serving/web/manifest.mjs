// The one JavaScript reader of an export folder's manifest.json, shared by the browser
// page (app.js, grid drawing) and the Node script (../node/sample.mjs). It reads the
// documented keys only (keras_vae/export/manifest.py has the schema; serving/README.md
// lists the keys read here) and says which one is missing; no DOM, no Node API.
//
//   format                               "keras_vae.export/1" or "/2" (else refused)
//   contract                             2 (batched inputs); absent in format-1 folders (1)
//   model.latent_dim                     d, the decoder's input width
//   model.condition                      null, or {kind: "class", input: "label",
//                                        num_classes} / {kind: "vector", input, size}
//   model.event_shape                    the shape of one image, [H, W, C] (or [H, W], [n])
//   artefacts.onnx_ROLE.path             ROLE decoder, sampler, sampler_int8; relative, POSIX
//   artefacts.onnx_ROLE.inputs/outputs   {tensor: {name, dtype, shape}}

export const FORMAT = 'keras_vae.export/2';
/** The format majors read (export/contract.py READABLE_MAJORS). */
export const READABLE_MAJORS = ['1', '2'];
export const MANIFEST_FILE = 'manifest.json';
/** The ONNX roles an export may hold, decoder first, then the samplers (float, int8). */
export const ONNX_ROLES = ['decoder', 'sampler', 'sampler_int8'];
/** The ONNX sampler's inputs and outputs (export/contract.py: ONNX_SAMPLER_INPUTS, _OUTPUTS):
 *  contract 2 takes per-row seeds and temperatures ([N] each, + label [N] if conditional). */
export const SAMPLER_INPUTS = ['seed', 'temperature'];
/** Contract 1's scalar sampler inputs (older export folders; LEGACY_ONNX_SAMPLER_INPUTS). */
export const LEGACY_SAMPLER_INPUTS = ['num_samples', 'temperature'];
export const SAMPLER_OUTPUTS = ['images', 'z'];

/** Checks a parsed manifest (format, model, artefacts) and returns it; `where` names it. */
export function checkManifest(manifest, where = MANIFEST_FILE) {
  if (!manifest || typeof manifest !== 'object' || Array.isArray(manifest)) {
    throw new Error(`${where}: a manifest is a JSON object`);
  }
  const [name, version = ''] = String(manifest.format).split('/');
  const [wantName] = FORMAT.split('/');
  if (name !== wantName || !READABLE_MAJORS.includes(version.split('.')[0])) {
    throw new Error(`${where}: format ${JSON.stringify(manifest.format)} is not one of ` +
      `${READABLE_MAJORS.map((m) => `${wantName}/${m}`).join(', ')} (re-export the model with this keras_vae)`);
  }
  for (const key of ['model', 'artefacts']) {
    if (!manifest[key] || typeof manifest[key] !== 'object') throw new Error(`${where}: no '${key}' object`);
  }
  for (const key of ['latent_dim', 'event_shape']) {
    if (!(key in manifest.model)) throw new Error(`${where}: 'model' has no '${key}'`);
  }
  return manifest;
}

/** The artefact entry of an ONNX role, or an error naming the roles the export holds. */
export function onnxArtefact(manifest, role) {
  if (!ONNX_ROLES.includes(role)) throw new Error(`unknown ONNX role ${role}; choose one of ${ONNX_ROLES}`);
  const entry = manifest.artefacts[`onnx_${role}`];
  if (!entry || typeof entry.path !== 'string') {
    throw new Error(`the export has no artefacts.onnx_${role} (it holds ` +
      `${Object.keys(manifest.artefacts).join(', ')}): export the model with ONNX first`);
  }
  return entry;
}

/** The relative path of an ONNX role's file (checked to stay inside the export folder). */
export function onnxPath(manifest, role) {
  const rel = onnxArtefact(manifest, role).path;
  if (rel.startsWith('/') || rel.split('/').includes('..') || !rel) {
    throw new Error(`artefacts.onnx_${role}.path ${JSON.stringify(rel)} leaves the export folder`);
  }
  return rel;
}

/** The file name of a relative path (its last component). */
export function fileName(rel) {
  return rel.split('/').pop();
}

/** The sampler roles the export holds, as [{role, path, file}] (float first, then int8). */
export function samplers(manifest) {
  return ONNX_ROLES.filter((r) => r !== 'decoder' && manifest.artefacts[`onnx_${r}`])
    .map((role) => ({ role, path: onnxPath(manifest, role), file: fileName(onnxPath(manifest, role)) }));
}

/** The sampler chosen by role (sampler, sampler_int8) or by its file name (sampler.onnx). */
export function sampler(manifest, which = 'sampler') {
  const found = samplers(manifest).find((s) => s.role === which || s.file === which);
  if (!found) {
    throw new Error(`the export has no sampler ${which} (it has ` +
      `${samplers(manifest).map((s) => s.file).join(', ') || 'none'})`);
  }
  return found;
}

/** The input (or output) tensor names of an ONNX role, as the manifest records them. */
export function onnxInputs(manifest, role) {
  return Object.keys(onnxArtefact(manifest, role).inputs || {});
}

export function onnxOutputs(manifest, role) {
  return Object.keys(onnxArtefact(manifest, role).outputs || {});
}

/** The decoder's latent input name ("z"); a conditional decoder also takes the condition. */
export function decoderInput(manifest) {
  const c = condition(manifest);
  const names = onnxInputs(manifest, 'decoder').filter((n) => !c || n !== c.input);
  if (names.length !== 1) throw new Error(`artefacts.onnx_decoder.inputs must name one latent input, got ${names}`);
  return names[0];
}

/** The export contract: 2 (batched inputs), 1 for folders written before it. */
export function contractVersion(manifest) {
  return Number(manifest.contract || 1);
}

/** The model's condition (null when unconditional). */
export function condition(manifest) {
  return manifest.model.condition || null;
}

/** The number of classes of a class-conditional model, else 0. */
export function numClasses(manifest) {
  const c = condition(manifest);
  return c && c.kind === 'class' ? Number(c.num_classes) : 0;
}

/**
 * Checks labels against the manifest (ONNX has no assertion op, so the reader checks):
 * returns them as an array of n integers (one label is repeated), or throws naming the range.
 */
export function checkLabels(manifest, labels, n) {
  const classes = numClasses(manifest);
  const given = labels !== undefined && labels !== null && labels !== '';
  if (!classes) {
    if (given) throw new Error('this export\'s model is not conditioned on class labels: give no --label');
    return null;
  }
  if (!given) throw new Error(`this export's model is class-conditional: give a label in [0, ${classes - 1}]`);
  const list = (Array.isArray(labels) ? labels : [labels]).map(Number);
  const rows = list.length === 1 ? Array(n).fill(list[0]) : list;
  const bad = rows.filter((v) => !Number.isInteger(v) || v < 0 || v >= classes);
  if (bad.length) {
    throw new Error(`label must be an integer class in [0, ${classes - 1}] (the model has ` +
      `${classes} classes), got ${JSON.stringify(bad.slice(0, 8))}`);
  }
  if (rows.length !== n) throw new Error(`give one label or ${n} labels, got ${rows.length}`);
  return rows;
}

/** The sampler's input names for this folder's contract (legacy scalars or per-row). */
export function samplerInputs(manifest) {
  if (contractVersion(manifest) < 2) return LEGACY_SAMPLER_INPUTS.slice();
  const c = condition(manifest);
  return SAMPLER_INPUTS.concat(c && c.input ? [c.input] : []);
}

/**
 * The feeds of a sampler run of n images as {name: {type, data, dims}} (plain arrays; the
 * caller wraps them in its runtime's ort.Tensor): contract 2 row i gets seed + i.
 */
export function samplerFeeds(manifest, { n, temperature, seed, labels }) {
  if (contractVersion(manifest) < 2) {
    const [numSamples, temperatureInput] = LEGACY_SAMPLER_INPUTS;
    return {
      [numSamples]: { type: 'int64', data: [BigInt(n)], dims: [] },
      [temperatureInput]: { type: 'float32', data: [temperature], dims: [] },
    };
  }
  const [seedInput, temperatureInput] = SAMPLER_INPUTS;
  const base = BigInt(seed);
  const feeds = {
    [seedInput]: { type: 'int64', data: Array.from({ length: n }, (_, i) => base + BigInt(i)), dims: [n] },
    [temperatureInput]: { type: 'float32', data: Array(n).fill(temperature), dims: [n] },
  };
  const rows = checkLabels(manifest, labels, n);
  if (rows) feeds[condition(manifest).input] = { type: 'int64', data: rows.map((v) => BigInt(v)), dims: [n] };
  return feeds;
}

/** Checks that a sampler takes and gives the contract's tensors; returns the role's entry. */
export function checkSampler(manifest, role) {
  const ins = onnxInputs(manifest, role);
  const outs = onnxOutputs(manifest, role);
  for (const [what, want, got] of [['inputs', samplerInputs(manifest), ins], ['outputs', SAMPLER_OUTPUTS, outs]]) {
    if (want.some((n) => !got.includes(n))) {
      throw new Error(`artefacts.onnx_${role}.${what} are ${JSON.stringify(got)}; ` +
        `a keras-vae sampler has ${JSON.stringify(want)}`);
    }
  }
  return onnxArtefact(manifest, role);
}

/** model.event_shape as an array of positive integers. */
export function eventShape(manifest) {
  const shape = manifest.model.event_shape;
  if (!Array.isArray(shape) || !shape.length || shape.some((s) => !Number.isInteger(s) || s <= 0)) {
    throw new Error(`model.event_shape must be a list of positive integers, got ${JSON.stringify(shape)}`);
  }
  return shape.slice();
}

/** model.latent_dim as a positive integer. */
export function latentDim(manifest) {
  const d = manifest.model.latent_dim;
  if (!Number.isInteger(d) || d <= 0) {
    throw new Error(`model.latent_dim must be a positive integer, got ${d}`);
  }
  return d;
}
