r"""TFLite from the SavedModel: the decode and sample signatures, all TFLite builtin ops.

`tf.lite.TFLiteConverter.from_saved_model(dir, signature_keys=['decode', 'sample'])`
(converting concrete functions instead leaves variables uninitialised: NaN). The
sampler's noise is the counter-based generator of `_graph`, made of builtin ops
(no Flex delegate), so the `.tflite` file runs on `ai_edge_litert`'s interpreter
without TensorFlow, and a seed gives the same z as the SavedModel's `sample`.

Checks before the file is moved into place: the interpreter lists both
signatures; decode on the reference z equals the SavedModel's (and the Keras
model's, when given); the same seed reproduces and matches the SavedModel's z;
sampling agrees in distribution with the Keras model.
"""

import pathlib

import numpy as np

from keras_vae._backend import tf
from keras_vae.export import _common
from keras_vae.export import runtimes
from keras_vae.export import verify

FILE = "vae.tflite"
SIGNATURES = ("decode", "sample")
_SAMPLE_ROWS = 5
_SAMPLE_SEED = 1234


interpreter = runtimes.tflite_interpreter


def convert(savedmodel_path):
    """The TFLite flatbuffer (bytes) of the SavedModel's decode and sample signatures."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(savedmodel_path), signature_keys=list(SIGNATURES))
    return converter.convert()


run_signature = runtimes.run_signature


def _sample(interp, num_samples, seed, temperature=1.0):
    return run_signature(interp, "sample", num_samples=np.array(num_samples, np.int32),
                         temperature=np.array(temperature, np.float32),
                         seed=np.array(seed, np.int64))


def check(path, savedmodel_path, reference=None):
    """Verifies the .tflite file against its SavedModel (and the Keras model, if `reference`)."""
    artefact = f"TFLite {pathlib.Path(path).name}"
    try:
        interp = interpreter(path)
        signatures = interp.get_signature_list()
    except Exception as error:
        raise verify.ExportCheckError(f"{artefact}: the interpreter cannot load it: {error}") from error
    missing = sorted(set(SIGNATURES) - set(signatures))
    if missing:
        raise verify.ExportCheckError(f"{artefact}: signatures {missing} are missing.")
    loaded = tf.saved_model.load(str(savedmodel_path))
    decode = loaded.signatures["decode"]
    sample = loaded.signatures["sample"]
    if reference is not None:
        z = reference.z
    else:
        z = np.random.default_rng(_common.REFERENCE_SEED).standard_normal(
            (_common.REFERENCE_ROWS, decode.structured_input_signature[1]["z"].shape[-1])
        ).astype("float32")
    figures = {}
    want = {k: v.numpy() for k, v in decode(z=tf.constant(z)).items()}
    got = run_signature(interp, "decode", z=z)
    figures["decode_max_abs_diff_vs_savedmodel"] = verify.check_outputs(f"{artefact} decode", got, want)
    if reference is not None:
        figures["decode_max_abs_diff"] = verify.check_outputs(
            f"{artefact} decode", got, reference.decode)
    first, again = _sample(interp, _SAMPLE_ROWS, _SAMPLE_SEED), _sample(interp, _SAMPLE_ROWS, _SAMPLE_SEED)
    for key in ("images", "z"):
        if not np.array_equal(first[key], again[key]):
            raise verify.ExportCheckError(f"{artefact} sample: the same seed gave different '{key}'.")
    tf_sample = {k: v.numpy() for k, v in sample(
        num_samples=tf.constant(_SAMPLE_ROWS, tf.int32), temperature=tf.constant(1.0),
        seed=tf.constant(_SAMPLE_SEED, tf.int64)).items()}
    figures["sample_z_max_abs_diff_vs_savedmodel"] = verify.check_close(
        f"{artefact} sample z (vs the SavedModel's z for the same seed)", first["z"], tf_sample["z"])
    if reference is not None:
        draws = _sample(interp, verify.DISTRIBUTION_DRAWS, _SAMPLE_SEED + 7,
                        verify.DISTRIBUTION_TEMPERATURE)
        figures["sample_images_vs_keras_decode_max_abs_diff"] = verify.check_close(
            f"{artefact} sample images (vs the Keras decoder on its z)", draws["images"],
            reference.decode_at(draws["z"])["mean"])
        figures["sample_distribution"] = verify.check_distribution(
            f"{artefact} sample", draws["images"], reference.draws)
    return figures


def export_tflite(savedmodel_path, out_dir, overwrite=False, model=None):
    """Converts an exported SavedModel to `out_dir/vae.tflite` (decode and sample), checked first.

    Args:
      savedmodel_path: a version folder written by `export_savedmodel`.
      out_dir: the folder the file goes to (`export_all` uses OUT/tflite).
      overwrite: replace an existing file.
      model: optionally the Keras model (or .keras path), to check parity
        against it as well as against the SavedModel.

    Returns:
      The path (str) of the .tflite file.
    """
    reference = None
    if model is not None:
        model, spec = _common.prepare(model)
        reference = _common.Reference(model, spec)
    path, _ = _export(savedmodel_path, out_dir, overwrite, reference)
    return path


def _export(savedmodel_path, out_dir, overwrite, reference=None):
    savedmodel_path = pathlib.Path(savedmodel_path)
    if not (savedmodel_path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel at {str(savedmodel_path)!r} (no saved_model.pb).")
    out_dir = pathlib.Path(out_dir)
    target = out_dir / FILE
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it.")
    staging = _common.staging_dir(out_dir, ".tmp-tflite-")
    try:
        path = staging / FILE
        path.write_bytes(convert(savedmodel_path))
        figures = check(path, savedmodel_path, reference)
        _common.move_into_place(path, target, overwrite)
    finally:
        _common.remove(staging)
    return str(target), figures
