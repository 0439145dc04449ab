r"""`export_all`: every format at once, each checked, with a manifest (and `main`, the CLI's).

```none
OUT/
  savedmodel/NAME/VERSION/   TF Serving's layout (BASE = OUT/savedmodel)
  onnx/decoder.onnx  onnx/sampler.onnx  onnx/sampler_int8.onnx
  tflite/vae.tflite
  manifest.json
```

Everything is written into hidden staging folders beside its final place
(`_staging.staged`: the SavedModel version in `OUT/savedmodel/NAME/.tmp-VERSION-*`),
checked, and only then renamed into place, the manifest last. A failed check
removes the staging folders and the folders the call created: no artefact of a
failed export is left behind. File names are `contract`'s.
"""

import pathlib

from keras_vae.export import _staging
from keras_vae.export import contract
from keras_vae.export import manifest as manifest_lib
from keras_vae.export import onnx_export
from keras_vae.export import reference as reference_lib
from keras_vae.export import savedmodel
from keras_vae.export import spec as spec_lib
from keras_vae.export import tflite_export
from keras_vae.export import verify

FORMATS = contract.FORMATS
MANIFEST = contract.MANIFEST_FILE
_SM, _TFLITE, _ONNX = contract.FORMAT_SAVEDMODEL, contract.FORMAT_TFLITE, contract.FORMAT_ONNX


def normalize_formats(formats):
    """A tuple of format names from 'all', a name, a comma list or a sequence of them."""
    if isinstance(formats, str):
        formats = formats.split(",")
    names = []
    for item in formats:
        item = item.strip().lower()
        expanded = FORMATS if item == "all" else (item,)
        for name in expanded:
            if name not in FORMATS:
                raise ValueError(f"Unknown export format {name!r}; choose from {FORMATS} or 'all'.")
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"No export format given; choose from {FORMATS} or 'all'.")
    return tuple(n for n in FORMATS if n in names)


def _write_artefacts(model, spec, stage, formats, opset, name="vae"):
    """Writes and checks each format into its staging path; returns {artefact key: figures}."""
    reference = reference_lib.Reference(model, spec)
    parity = {}
    sm_path = stage.get(contract.ARTEFACT_SAVEDMODEL) or stage.scratch / contract.SAVEDMODEL_DIR
    if _SM in formats or _TFLITE in formats:  # TFLite is converted from the SavedModel
        savedmodel.write(model, spec, sm_path, name)
    if _SM in formats:
        parity[contract.ARTEFACT_SAVEDMODEL] = savedmodel.check(sm_path, reference)
    if _ONNX in formats:
        directory = stage[contract.onnx_artefact(contract.ONNX_DECODER)].parent
        paths = onnx_export.build(model, spec, directory, opset)
        for role, figures in onnx_export.check(paths, reference).items():
            parity[contract.onnx_artefact(role)] = figures
    if _TFLITE in formats:
        parity[contract.ARTEFACT_TFLITE] = tflite_export.write(
            stage[contract.ARTEFACT_TFLITE], sm_path, reference)
    return parity


def export_all(model_or_keras_path, out_dir, name="vae", version=1, overwrite=False,
               formats=FORMATS, opset=contract.DEFAULT_OPSET):
    """Exports a VAE to every format under `out_dir`, checks each, writes manifest.json.

    Args:
      model_or_keras_path: a trained `keras_vae.VAE` (or subclass) or a .keras path.
      out_dir: the export folder (created if needed).
      name, version: the SavedModel's model name and version (OUT/savedmodel/NAME/VERSION).
      overwrite: replace existing targets (the version folder, the ONNX / TFLite
        files, manifest.json); otherwise any existing target is an error and
        nothing is written. Other versions are never touched.
      formats: a subset of ('savedmodel', 'onnx', 'tflite'), or 'all'.
      opset: the ONNX opset.

    Returns:
      The manifest (dict), also written to out_dir/manifest.json.

    Raises:
      FileExistsError: a target exists and overwrite is False.
      ExportCheckError: an artefact disagrees with the Keras model (nothing is left).
    """
    formats = normalize_formats(formats)
    out_dir = pathlib.Path(out_dir)
    final = contract.targets(out_dir, name, version, formats)
    with _staging.staged(final, overwrite, root=out_dir.parent) as stage:
        model, spec = spec_lib.prepare(model_or_keras_path)
        parity = _write_artefacts(model, spec, stage, formats, opset, str(name))
        extra = {contract.ARTEFACT_SAVEDMODEL: {
            "base_path": contract.SAVEDMODEL_DIR, "model_name": str(name), "version": int(version)}}
        artefacts = {key: (stage[key], path.relative_to(out_dir).as_posix(), extra.get(key))
                     for key, path in final.items() if key != contract.ARTEFACT_MANIFEST}
        sampling = {"savedmodel_and_tflite": savedmodel.SEEDING, "onnx": onnx_export.SEEDING}
        manifest = manifest_lib.build(spec, artefacts, parity, sampling, verify.tolerances(),
                                      formats)
        manifest_lib.write(manifest, stage[contract.ARTEFACT_MANIFEST])
    return manifest


def main(argv=None):
    """`python -m keras_vae.export MODEL.keras --out DIR [--format ...]`; returns an exit code.

    The command line lives with the others in `keras_vae.cli.export` (same flags and
    exit codes: 0 exported and checked, 1 a check failed or a target exists, 2 bad
    arguments or no model).
    """
    from keras_vae.cli import export as cli_export

    return cli_export.module_main(argv)


__all__ = ["FORMATS", "MANIFEST", "normalize_formats", "export_all", "main"]
