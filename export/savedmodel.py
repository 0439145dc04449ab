r"""The SavedModel for TF Serving: BASE/NAME/VERSION/ with decode, sample and encode signatures.

| signature        | inputs                                                     | outputs                                     |
|------------------|------------------------------------------------------------|---------------------------------------------|
| decode (default) | z float32 [-1, d]                                          | mean + the likelihood's parameters [-1, *event] |
| sample           | num_samples int32 [], temperature float32 [], seed int64 [] | images [n, *event], z [n, d]                |
| encode           | x float32 [-1, *event]                                     | loc, scale float32 [-1, d]                  |

The graphs hold tensors only (no TFP), so TF Serving or `tf.saved_model.load`
needs neither TFP nor keras_vae. `sample` is a pure function of its inputs: the
same seed gives the same images (see `prng.counter_normal`).

A version is written into a hidden temporary folder beside it
(`BASE/NAME/.tmp-VERSION-*`, which TF Serving ignores: not a number), loaded
and checked in a fresh Python process that never imports keras_vae or TFP, and
only then renamed to `BASE/NAME/VERSION`.
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
from keras_vae.export import spec as spec_lib
from keras_vae.export import verify

SIGNATURES = contract.SIGNATURES
_CHECK_SCRIPT = pathlib.Path(__file__).with_name("_savedmodel_check.py")
#: Seconds the fresh-process check may take.
CHECK_TIMEOUT = 600
#: How `sample` draws its noise, for the manifest (TFLite's `sample` is the same graph).
SEEDING = (
    "sample(num_samples, temperature, seed) is a pure function of its inputs: a counter-based "
    "generator of integer ops modulo 2^31-1 (seed taken modulo 2^31-1) and Box-Muller; the "
    "same seed gives the same z and images in TF Serving, tf.saved_model.load and TFLite "
    "(within float rounding of log/cos, ~1e-6)."
)

version_path = contract.version_path


def write(model, spec, path):
    """Writes the SavedModel (decode, sample, encode; serving_default = decode) to `path`."""
    signatures = graphs.signatures(spec)
    # Endpoints track the variables they use: only those are saved (no optimizer state).
    archive = keras.export.ExportArchive()
    # The first endpoint added is also served as serving_default.
    for name, function in ((contract.DECODE, graphs.decode_function(model)),
                           (contract.SAMPLE, graphs.sample_function(model, spec)),
                           (contract.ENCODE, graphs.encode_function(model))):
        archive.add_endpoint(name, function, signatures[name])
    archive.write_out(str(path), verbose=False)
    return path


def run_in_fresh_process(path, reference):
    """Loads the SavedModel at `path` in a new Python process and runs every signature.

    Returns the outputs as a dict '<signature>.<output>' -> array, plus 'report'.
    """
    with tempfile.TemporaryDirectory(prefix="keras_vae_export_check_") as scratch:
        inputs = os.path.join(scratch, "inputs.npz")
        outputs = os.path.join(scratch, "outputs.npz")
        np.savez(inputs, **{contract.Z: reference.z, contract.X: reference.x,
                            contract.NUM_SAMPLES: verify.SAMPLE_ROWS,
                            contract.TEMPERATURE: verify.DISTRIBUTION_TEMPERATURE,
                            contract.SEED: verify.SAMPLE_SEED,
                            "draws": verify.DISTRIBUTION_DRAWS, "draws_seed": verify.DRAWS_SEED})
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
            out = {key: data[key] for key in data.files}
    out["report"] = json.loads(str(out["report"]))
    return out


def _group(results, prefix):
    return {k.split(".", 1)[1]: v for k, v in results.items() if k.startswith(prefix + ".")}


def _check_loaded_alone(artefact, report):
    if report["forbidden_modules"]:
        raise verify.ExportCheckError(
            f"{artefact}: loading it imported {report['forbidden_modules']}; the SavedModel "
            "must load without keras_vae and tensorflow_probability."
        )
    missing = sorted(set(SIGNATURES) - set(report["signatures"]))
    if missing:
        raise verify.ExportCheckError(f"{artefact}: signatures {missing} are missing.")


def _check_seeding(artefact, a, b, c, event_shape):
    """The same seed twice gave a and b (equal), another seed c (a different z)."""
    for key in contract.OUTPUTS[contract.SAMPLE]:
        if not np.array_equal(a[key], b[key]):
            raise verify.ExportCheckError(
                f"{artefact} sample: the same seed gave different '{key}' (max abs diff "
                f"{np.max(np.abs(a[key] - b[key])):.3g}); sampling must be a function of the seed."
            )
    if np.array_equal(a[contract.Z], c[contract.Z]):
        raise verify.ExportCheckError(f"{artefact} sample: seeds {verify.SAMPLE_SEED} and "
                                      f"{verify.SAMPLE_SEED + 1} gave the same z.")
    expected = (verify.SAMPLE_ROWS,) + event_shape
    if a[contract.IMAGES].shape != expected:
        raise verify.ExportCheckError(f"{artefact} sample: images of shape "
                                      f"{a[contract.IMAGES].shape}, expected {expected}.")


def check(path, reference):
    """Verifies a written SavedModel against the Keras model; returns the parity figures.

    In a fresh process (that must not import keras_vae or TFP): decode and
    serving_default on the reference z, encode on the reference x, sample twice
    with one seed (identical) and once with another (different), and many draws
    whose mean image and pixel variance must match the Keras model's samples.
    """
    results = run_in_fresh_process(path, reference)
    artefact = f"SavedModel {str(path)!r}"
    _check_loaded_alone(artefact, results.pop("report"))
    figures = {
        f"{name}_max_abs_diff": verify.check_outputs(
            f"{artefact} {name}", _group(results, name), want)
        for name, want in ((contract.DECODE, reference.decode),
                           (contract.SERVING_DEFAULT, reference.decode),
                           (contract.ENCODE, reference.encode))
    }
    a, b, c = (_group(results, s) for s in ("sample_a", "sample_b", "sample_c"))
    _check_seeding(artefact, a, b, c, reference.spec.event_shape)
    figures["sample_images_vs_keras_decode_max_abs_diff"] = verify.check_images(
        f"{artefact} sample images (vs the Keras decoder on its z)", a[contract.IMAGES],
        reference.sampled_images(a[contract.Z], verify.SAMPLE_SEED),
        bool(reference.spec.noise_per_pixel))
    draws = _group(results, "draws")
    figures["sample_distribution"] = verify.check_distribution(
        f"{artefact} sample", draws[contract.IMAGES], reference.draws)
    figures["sample_seed_check"] = {contract.SEED: verify.SAMPLE_SEED,
                                     contract.Z: a[contract.Z].tolist()}
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
        write(model, spec, staging)
        check(staging, reference_lib.Reference(model, spec))
    return str(target)


__all__ = ["SIGNATURES", "CHECK_TIMEOUT", "SEEDING", "version_path", "write",
           "run_in_fresh_process", "check", "export_savedmodel"]
