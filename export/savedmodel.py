r"""The SavedModel for TF Serving: BASE/NAME/VERSION/ with decode, sample and encode signatures.

| signature        | inputs (contract 2: all batched)                        | outputs                            |
|------------------|---------------------------------------------------------|------------------------------------|
| decode (default) | z float32 [-1, d] (+ label int64 [-1])                  | mean + the likelihood's parameters |
| sample           | seed int64 [-1], temperature float32 [-1] (+ label)     | images [-1, *event], z [-1, d]     |
| encode           | x float32 [-1, *event] (+ label int64 [-1])             | loc, scale float32 [-1, d]         |

Every input has a leading batch dimension, so TF Serving's batching session
(`--enable_batching`, which wraps every signature) can merge requests. The graphs
hold tensors only (no TFP), so TF Serving or `tf.saved_model.load` needs neither
TFP nor keras_vae. Row i of `sample` is a pure function of (seed_i,
temperature_i[, label_i]) (see `prng.row_noise`). `assets.extra/
tf_serving_warmup_requests` holds one request per signature (`warmup`).

A version is written into a hidden temporary folder beside it
(`BASE/NAME/.tmp-VERSION-*`, which TF Serving ignores: not a number), loaded
and checked in a fresh Python process that never imports keras_vae or TFP (every
signature, every input of rank >= 1, the warmup requests replayed), and only
then renamed to `BASE/NAME/VERSION`.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

from keras_vae._backend import keras
from keras_vae.export import _staging
from keras_vae.export import contract
from keras_vae.export import graphs
from keras_vae.export import reference as reference_lib
from keras_vae.export import rows
from keras_vae.export import spec as spec_lib
from keras_vae.export import verify
from keras_vae.export import warmup

SIGNATURES = contract.SIGNATURES
_CHECK_SCRIPT = pathlib.Path(__file__).with_name("_savedmodel_check.py")
#: Seconds the fresh-process check may take.
CHECK_TIMEOUT = 600
#: How `sample` draws its noise, for the manifest (TFLite's and ONNX's `sample` are the same).
SEEDING = (
    "sample(seed [N], temperature [N][, label [N]]): row i is a pure function of (seed_i, "
    "temperature_i[, label_i]). Its noise is a counter-based generator of integer ops modulo "
    "p = 2^31-1 keyed by k_i = ((seed_i mod p) * 1583458089) mod p: u[i, j] = (P_k_i(j) + 1/2) / p "
    "for j = 0, 1, ... (P a 6-round keyed x^5 permutation, keras_vae/export/prng.py); "
    "eps[i] = Box-Muller of u[i, :d] and u[i, d:2d]; u[i, 2d] picks a mixture component; "
    "u[i, 2d+1:] are a pixel-drawing likelihood's uniforms. The same seed gives the same z and "
    "images in TF Serving, tf.saved_model.load, TFLite and ONNX (within float rounding of "
    "log/cos, ~1e-6)."
)

version_path = contract.version_path


def warmup_requests(spec):
    """[(signature, {input: array})]: one representative one-row request per signature."""
    z = reference_lib.reference_z(spec.latent_dim)[:1]
    labels = reference_lib.reference_labels(spec, 1)
    extra = contract.condition_input(spec.num_classes, spec.condition_dim)

    def batch(**named):
        if extra:
            named[extra] = labels
        return named

    seed, temperature = contract.INPUTS[contract.SAMPLE]
    x = np.full((1,) + spec.event_shape, 0.5, "float32")
    return [(contract.DECODE, batch(**{contract.Z: z})),
            (contract.SERVING_DEFAULT, batch(**{contract.Z: z})),
            (contract.ENCODE, batch(**{contract.X: x})),
            (contract.SAMPLE, batch(**{seed: np.array([verify.SAMPLE_SEED], "int64"),
                                       temperature: np.array([1.0], "float32")}))]


def write(model, spec, path, name="vae"):
    """Writes the SavedModel (decode, sample, encode; serving_default = decode) and its warmup
    file to `path`; `name` is the model name the warmup requests carry."""
    signatures = graphs.signatures(spec)
    # Endpoints track the variables they use: only those are saved (no optimizer state).
    archive = keras.export.ExportArchive()
    # The first endpoint added is also served as serving_default.
    for key, function in ((contract.DECODE, graphs.decode_function(model, spec)),
                          (contract.SAMPLE, graphs.sample_function(model, spec)),
                          (contract.ENCODE, graphs.encode_function(model, spec))):
        archive.add_endpoint(key, function, signatures[key])
    archive.write_out(str(path), verbose=False)
    warmup.write(path, name, warmup_requests(spec))
    return path


def run_in_fresh_process(path, calls):
    """Loads the SavedModel at `path` in a new Python process and runs `calls` and its warmup.

    Args:
      calls: {call id: (signature, {input: array})}.

    Returns:
      {call id: {output: array}} plus 'warmup<i>' for each warmup request, and 'report'.
    """
    with tempfile.TemporaryDirectory(prefix="keras_vae_export_check_") as scratch:
        inputs = os.path.join(scratch, "inputs.npz")
        outputs = os.path.join(scratch, "outputs.npz")
        np.savez(inputs, **{f"{cid}|{sig}|{k}": v for cid, (sig, feeds) in calls.items()
                            for k, v in feeds.items()})
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            result = subprocess.run(
                [sys.executable, str(_CHECK_SCRIPT), str(path), inputs, outputs],
                capture_output=True, text=True, env=env, timeout=CHECK_TIMEOUT,
            )
        except subprocess.TimeoutExpired as error:
            raise verify.ExportCheckError(
                f"SavedModel at {str(path)!r}: loading it in a fresh process took more than "
                f"{CHECK_TIMEOUT} s."
            ) from error
        if result.returncode != 0:
            raise verify.ExportCheckError(
                f"SavedModel at {str(path)!r} failed to load or run in a fresh process "
                f"(exit {result.returncode}):\n{result.stderr[-3000:]}"
            )
        with np.load(outputs) as data:
            out = {}
            for key in data.files:
                if key == "report":
                    continue
                cid, name = key.split(".", 1)
                out.setdefault(cid, {})[name] = data[key]
            out["report"] = json.loads(str(data["report"]))
    return out


def _check_loaded_alone(artefact, report):
    if report["forbidden_modules"]:
        raise verify.ExportCheckError(
            f"{artefact}: loading it imported {report['forbidden_modules']}; the SavedModel "
            "must load without keras_vae and tensorflow_probability."
        )
    missing = sorted(set(SIGNATURES) - set(report["signatures"]))
    if missing:
        raise verify.ExportCheckError(f"{artefact}: signatures {missing} are missing.")
    scalars = {f"{sig}.{name}": rank for sig, ranks in report["input_ranks"].items()
               for name, rank in ranks.items() if rank is None or rank < 1}
    if scalars:
        raise verify.ExportCheckError(
            f"{artefact}: inputs {scalars} have rank 0 (or unknown): TF Serving's batching "
            "rejects them (\"Batching Run() input tensors must have at least one dimension\").")


def _check_warmup(artefact, spec, results, report):
    """Every signature has one warmup request, and each replayed without error."""
    asked = [entry["signature"] for entry in report["warmup"]]
    if sorted(asked) != sorted(SIGNATURES):
        raise verify.ExportCheckError(
            f"{artefact}: the warmup file holds requests for {asked}, expected one for each of "
            f"{sorted(SIGNATURES)}.")
    for i, entry in enumerate(report["warmup"]):
        want = set(contract.OUTPUTS[entry["signature"]])
        if not want <= set(results.get(f"warmup{i}", {})):
            raise verify.ExportCheckError(
                f"{artefact}: warmup request {i} ({entry['signature']}) gave no {sorted(want)}.")
    return {"records": len(asked), "signatures": asked}


def check(path, reference):
    """Verifies a written SavedModel against the Keras model; returns the parity figures.

    In a fresh process (that must not import keras_vae or TFP): decode and
    serving_default on the reference z, encode on the reference x, the sampler
    batches of `rows.requests` (rows pure in their seeds, z as numpy computes it,
    the distribution of many draws), and the warmup file replayed.
    """
    feeds_z = reference.inputs(**{contract.Z: reference.z})
    asked = rows.requests(reference)
    calls = {"decode": (contract.DECODE, feeds_z), "default": (contract.SERVING_DEFAULT, feeds_z),
             "encode": (contract.ENCODE, reference.inputs(**{contract.X: reference.x}))}
    calls.update({f"sample_{key}": (contract.SAMPLE, feeds) for key, feeds in asked.items()})
    results = run_in_fresh_process(path, calls)
    report = results.pop("report")
    artefact = f"SavedModel {str(path)!r}"
    _check_loaded_alone(artefact, report)
    figures = {
        f"{name}_max_abs_diff": verify.check_outputs(f"{artefact} {name}", results[cid], want)
        for name, cid, want in ((contract.DECODE, "decode", reference.decode),
                                (contract.SERVING_DEFAULT, "default", reference.decode),
                                (contract.ENCODE, "encode", reference.encode))
    }
    sampled = {key: results[f"sample_{key}"] for key in asked}
    figures.update(rows.check(f"{artefact} sample", reference, asked, sampled))
    figures["warmup"] = _check_warmup(artefact, reference.spec, results, report)
    return figures


def export_savedmodel(model, base_dir, name="vae", version=1, overwrite=False):
    """Exports a VAE as a SavedModel in TF Serving's layout, checked before it appears.

    Args:
      model: a trained `keras_vae.VAE` (or subclass), or the path of a .keras file.
      base_dir: TF Serving's base path; the model goes to base_dir/name/version.
      name: the model name (a folder name).
      version: a positive integer.
      overwrite: replace an existing version (otherwise it is an error and the
        existing version is left untouched).

    Returns:
      The path (str) of the version folder.

    Raises:
      FileExistsError: the version exists and overwrite is False.
      ExportCheckError: the exported model disagrees with the Keras model (the
        temporary folder is removed; nothing appears at the version path).
    """
    target = version_path(base_dir, name, version)
    model, spec = spec_lib.prepare(model)
    with _staging.staged(target, overwrite) as staging:
        write(model, spec, staging, name)
        check(staging, reference_lib.Reference(model, spec))
    return str(target)


__all__ = ["SIGNATURES", "CHECK_TIMEOUT", "SEEDING", "version_path", "warmup_requests", "write",
           "run_in_fresh_process", "check", "export_savedmodel"]
