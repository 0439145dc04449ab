r"""The SavedModel for TF Serving: BASE/NAME/VERSION/ with decode, sample and encode signatures.

| signature        | inputs                                                     | outputs                                     |
|------------------|------------------------------------------------------------|---------------------------------------------|
| decode (default) | z float32 [-1, d]                                          | mean + the likelihood's parameters [-1, *event] |
| sample           | num_samples int32 [], temperature float32 [], seed int64 [] | images [n, *event], z [n, d]                |
| encode           | x float32 [-1, *event]                                     | loc, scale float32 [-1, d]                  |

The graphs hold tensors only (no TFP), so TF Serving or `tf.saved_model.load`
needs neither TFP nor keras_vae. `sample` is a pure function of its inputs: the
same seed gives the same images (see `_graph.counter_normal`).

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
from keras_vae.export import _common, contract
from keras_vae.export import _graph
from keras_vae.export import verify

SIGNATURES = ("decode", "sample", "encode", "serving_default")
_CHECK_SCRIPT = pathlib.Path(__file__).with_name("_savedmodel_check.py")
#: Draws in the reproducibility check (the same seed twice, then another seed).
_SAMPLE_ROWS = 5
_SAMPLE_SEED = 1234
#: Seconds the fresh-process check may take.
CHECK_TIMEOUT = 600


version_path = contract.version_path


def write(model, spec, path):
    """Writes the SavedModel (decode, sample, encode; serving_default = decode) to `path`."""
    signatures = _graph.signatures(spec)
    # Endpoints track the variables they use: only those are saved (no optimizer state).
    archive = keras.export.ExportArchive()
    # The first endpoint added is also served as serving_default.
    archive.add_endpoint("decode", _graph.decode_function(model), signatures["decode"])
    archive.add_endpoint("sample", _graph.sample_function(model, spec), signatures["sample"])
    archive.add_endpoint("encode", _graph.encode_function(model), signatures["encode"])
    archive.write_out(str(path), verbose=False)
    return path


def run_in_fresh_process(path, reference):
    """Loads the SavedModel at `path` in a new Python process and runs every signature.

    Returns the outputs as a dict '<signature>.<output>' -> array, plus 'report'.
    """
    with tempfile.TemporaryDirectory(prefix="keras_vae_export_check_") as scratch:
        inputs = os.path.join(scratch, "inputs.npz")
        outputs = os.path.join(scratch, "outputs.npz")
        np.savez(inputs, z=reference.z, x=reference.x, num_samples=_SAMPLE_ROWS,
                 temperature=verify.DISTRIBUTION_TEMPERATURE, seed=_SAMPLE_SEED,
                 draws=verify.DISTRIBUTION_DRAWS, draws_seed=_SAMPLE_SEED + 7)
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


def check(path, reference):
    """Verifies a written SavedModel against the Keras model; returns the parity figures.

    In a fresh process (that must not import keras_vae or TFP): decode and
    serving_default on the reference z, encode on the reference x, sample twice
    with one seed (identical) and once with another (different), and many draws
    whose mean image and pixel variance must match the Keras model's samples.
    """
    results = run_in_fresh_process(path, reference)
    report = results.pop("report")
    artefact = f"SavedModel {str(path)!r}"
    if report["forbidden_modules"]:
        raise verify.ExportCheckError(
            f"{artefact}: loading it imported {report['forbidden_modules']}; the SavedModel "
            "must load without keras_vae and tensorflow_probability."
        )
    missing = sorted(set(SIGNATURES) - set(report["signatures"]))
    if missing:
        raise verify.ExportCheckError(f"{artefact}: signatures {missing} are missing.")
    figures = {
        "decode_max_abs_diff": verify.check_outputs(
            f"{artefact} decode", _group(results, "decode"), reference.decode),
        "serving_default_max_abs_diff": verify.check_outputs(
            f"{artefact} serving_default", _group(results, "serving_default"), reference.decode),
        "encode_max_abs_diff": verify.check_outputs(
            f"{artefact} encode", _group(results, "encode"), reference.encode),
    }
    a, b, c = (_group(results, s) for s in ("sample_a", "sample_b", "sample_c"))
    for key in ("images", "z"):
        if not np.array_equal(a[key], b[key]):
            raise verify.ExportCheckError(
                f"{artefact} sample: the same seed gave different '{key}' (max abs diff "
                f"{np.max(np.abs(a[key] - b[key])):.3g}); sampling must be a function of the seed."
            )
    if np.array_equal(a["z"], c["z"]):
        raise verify.ExportCheckError(f"{artefact} sample: seeds {_SAMPLE_SEED} and "
                                      f"{_SAMPLE_SEED + 1} gave the same z.")
    expected_shape = (_SAMPLE_ROWS,) + reference.spec.event_shape
    if a["images"].shape != expected_shape:
        raise verify.ExportCheckError(
            f"{artefact} sample: images of shape {a['images'].shape}, expected {expected_shape}.")
    figures["sample_images_vs_keras_decode_max_abs_diff"] = verify.check_close(
        f"{artefact} sample images (vs the Keras decoder on its z)", a["images"],
        reference.decode_at(a["z"])["mean"])
    draws = _group(results, "draws")
    figures["sample_distribution"] = verify.check_distribution(
        f"{artefact} sample", draws["images"], reference.draws)
    figures["sample_seed_check"] = {"seed": _SAMPLE_SEED, "z": a["z"].tolist()}
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
    path, _ = _export(model, base_dir, name, version, overwrite)
    return path


def _export(model, base_dir, name, version, overwrite, reference=None):
    target = version_path(base_dir, name, version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"SavedModel version {str(target)!r} exists; pass overwrite=True to replace it."
        )
    model, spec = _common.prepare(model)
    reference = reference or _common.Reference(model, spec)
    staging = _common.staging_dir(target.parent, f".tmp-{target.name}-")
    try:
        write(model, spec, staging / "model")
        figures = check(staging / "model", reference)
        _common.move_into_place(staging / "model", target, overwrite)
    finally:
        _common.remove(staging)
    return str(target), figures
