r"""TFLite from the SavedModel: the decode and sample signatures, all TFLite builtin ops.

`tf.lite.TFLiteConverter.from_saved_model(dir, signature_keys=['decode', 'sample'])`
(converting concrete functions instead leaves variables uninitialised: NaN). The
sampler's noise is the counter-based generator of `prng`, made of builtin ops
(no Flex delegate), so the `.tflite` file runs on `ai_edge_litert`'s interpreter
without TensorFlow, and a seed gives the same z as the SavedModel's `sample`.

Checks before the file is moved into place: the interpreter lists both
signatures; decode on the reference z equals the SavedModel's (and the Keras
model's, when given); the same seeds reproduce and match the SavedModel's z;
with the Keras model, the sampler checks of `rows`. TFLite has no assertion op,
so a label out of range is the reader's to refuse (the SavedModel refuses it).
"""

import pathlib

import numpy as np

from keras_vae._backend import tf
from keras_vae.export import _staging
from keras_vae.export import contract
from keras_vae.export import reference as reference_lib
from keras_vae.export import rows
from keras_vae.export import runtimes
from keras_vae.export import spec as spec_lib
from keras_vae.export import verify

FILE = contract.TFLITE_FILE
SIGNATURES = contract.TFLITE_SIGNATURES

interpreter = runtimes.tflite_interpreter
run_signature = runtimes.run_signature


def convert(savedmodel_path):
    """The TFLite flatbuffer (bytes) of the SavedModel's decode and sample signatures."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(savedmodel_path), signature_keys=list(SIGNATURES))
    return converter.convert()


def _load(path):
    artefact = f"TFLite {pathlib.Path(path).name}"
    try:
        interp = interpreter(path)
        signatures = interp.get_signature_list()
    except Exception as error:
        raise verify.ExportCheckError(
            f"{artefact}: the interpreter cannot load it: {error}") from error
    missing = sorted(set(SIGNATURES) - set(signatures))
    if missing:
        raise verify.ExportCheckError(f"{artefact}: signatures {missing} are missing.")
    return artefact, interp


def _tf_run(signature, feeds):
    from keras_vae._backend import tf as tf_

    return {k: v.numpy() for k, v in signature(**{k: tf_.constant(v) for k, v in feeds.items()}
                                              ).items()}


def _check_against_savedmodel(artefact, interp, loaded, feeds, sample_feeds):
    """Decode on the same z, and sample on the same seeds, as the SavedModel `loaded`."""
    want = _tf_run(loaded.signatures[contract.DECODE], feeds)
    got = run_signature(interp, contract.DECODE, **feeds)
    figures = {"decode_max_abs_diff_vs_savedmodel": verify.check_outputs(
        f"{artefact} decode", got, want)}
    first, again = (run_signature(interp, contract.SAMPLE, **sample_feeds) for _ in range(2))
    for key in contract.OUTPUTS[contract.SAMPLE]:
        if not np.array_equal(first[key], again[key]):
            raise verify.ExportCheckError(
                f"{artefact} sample: the same seed gave different '{key}'.")
    tf_sample = _tf_run(loaded.signatures[contract.SAMPLE], sample_feeds)
    figures["sample_z_max_abs_diff_vs_savedmodel"] = verify.check_close(
        f"{artefact} sample z (vs the SavedModel's z for the same seeds)", first[contract.Z],
        tf_sample[contract.Z])
    return figures, got


def _savedmodel_feeds(loaded):
    """Reference inputs read from the SavedModel's own signatures (no Keras model at hand)."""
    decode = loaded.signatures[contract.DECODE].structured_input_signature[1]
    z = reference_lib.reference_z(decode[contract.Z].shape[-1])
    feeds = {contract.Z: z}
    if contract.LABEL in decode:
        feeds[contract.LABEL] = np.zeros(len(z), "int64")
    seed, temperature = contract.INPUTS[contract.SAMPLE]
    sample = {seed: verify.SAMPLE_SEED + np.arange(5, dtype="int64"),
              temperature: np.ones(5, "float32")}
    if contract.LABEL in decode:
        sample[contract.LABEL] = np.zeros(5, "int64")
    return feeds, sample


def check(path, savedmodel_path, reference=None):
    """Verifies the .tflite file against its SavedModel (and the Keras model, if `reference`)."""
    artefact, interp = _load(path)
    loaded = runtimes.savedmodel(savedmodel_path)
    if reference is not None:
        feeds = reference.inputs(**{contract.Z: reference.z})
        asked = rows.requests(reference)
        sample_feeds = asked["a"]
    else:
        feeds, sample_feeds = _savedmodel_feeds(loaded)
    figures, got = _check_against_savedmodel(artefact, interp, loaded, feeds, sample_feeds)
    if reference is not None:
        figures["decode_max_abs_diff"] = verify.check_outputs(
            f"{artefact} decode", got, reference.decode)
        results = {key: run_signature(interp, contract.SAMPLE, **batch)
                   for key, batch in asked.items()}
        figures.update(rows.check(f"{artefact} sample", reference, asked, results))
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

    Raises:
      FileNotFoundError: no SavedModel at `savedmodel_path`.
      FileExistsError, ExportCheckError (nothing is left in out_dir).
    """
    savedmodel_path = pathlib.Path(savedmodel_path)
    if not (savedmodel_path / "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel at {str(savedmodel_path)!r} (no saved_model.pb).")
    reference = None
    if model is not None:
        reference = reference_lib.Reference(*spec_lib.prepare(model))
    target = pathlib.Path(out_dir) / FILE
    with _staging.staged(target, overwrite) as path:
        write(path, savedmodel_path, reference)
    return str(target)


def write(path, savedmodel_path, reference=None):
    """Converts the SavedModel into `path` and checks it; returns the parity figures."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(convert(savedmodel_path))
    return check(path, savedmodel_path, reference)


__all__ = ["FILE", "SIGNATURES", "interpreter", "run_signature", "convert", "check", "write",
           "export_tflite"]
