r"""`export_all` and the command line: every format at once, with a manifest.

```none
OUT/
  savedmodel/NAME/VERSION/   TF Serving's layout (BASE = OUT/savedmodel)
  onnx/decoder.onnx  onnx/sampler.onnx  onnx/sampler_int8.onnx
  tflite/vae.tflite
  manifest.json
```

Everything is written into hidden temporary folders inside OUT (the SavedModel
version beside its final place, `OUT/savedmodel/NAME/.tmp-VERSION-*`), checked,
and only then renamed into place, the manifest last. A failed check removes the
temporary folders: no artefact of a failed export is left behind.
"""

import argparse
import pathlib
import sys

from keras_vae.export import _common
from keras_vae.export import manifest as manifest_lib
from keras_vae.export import onnx_export
from keras_vae.export import savedmodel
from keras_vae.export import tflite_export
from keras_vae.export import verify

FORMATS = ("savedmodel", "onnx", "tflite")
MANIFEST = "manifest.json"
SAVEDMODEL_SAMPLING = (
    "sample(num_samples, temperature, seed) is a pure function of its inputs: a counter-based "
    "generator of integer ops modulo 2^31-1 (seed taken modulo 2^31-1) and Box-Muller; the "
    "same seed gives the same z and images in TF Serving, tf.saved_model.load and TFLite "
    "(within float rounding of log/cos, ~1e-6)."
)


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


def targets(out_dir, name, version, formats):
    """The final paths an export_all call creates."""
    out_dir = pathlib.Path(out_dir)
    paths = {}
    if "savedmodel" in formats:
        paths["savedmodel"] = savedmodel.version_path(out_dir / "savedmodel", name, version)
    if "onnx" in formats:
        for role, file in onnx_export.FILES.items():
            paths[f"onnx_{role}"] = out_dir / "onnx" / file
    if "tflite" in formats:
        paths["tflite"] = out_dir / "tflite" / tflite_export.FILE
    paths["manifest"] = out_dir / MANIFEST
    return paths


def _created_dirs(path, stop):
    """The folders between `stop` (exclusive) and `path` (inclusive) that do not exist yet."""
    missing = []
    path, stop = pathlib.Path(path), pathlib.Path(stop)
    while path != stop and not path.exists():
        missing.append(path)
        path = path.parent
    return missing


def export_all(model_or_keras_path, out_dir, name="vae", version=1, overwrite=False,
               formats=FORMATS, opset=onnx_export.DEFAULT_OPSET):
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
    final = targets(out_dir, name, version, formats)
    existing = [str(p) for p in final.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"Export targets exist: {existing}; pass overwrite=True to replace them.")
    model, spec = _common.prepare(model_or_keras_path)
    reference = _common.Reference(model, spec)

    version_dir = savedmodel.version_path(out_dir / "savedmodel", name, version)
    new_dirs = _created_dirs(version_dir.parent, out_dir.parent)
    staging = _common.staging_dir(out_dir, ".tmp-export-")
    savedmodel_staging = (_common.staging_dir(version_dir.parent, f".tmp-{version_dir.name}-")
                          if "savedmodel" in formats else staging)
    committed = False
    try:
        parity, artefacts = {}, {}
        savedmodel_path = savedmodel_staging / "model"
        if "savedmodel" in formats or "tflite" in formats:
            savedmodel.write(model, spec, savedmodel_path)
        if "savedmodel" in formats:
            parity["savedmodel"] = savedmodel.check(savedmodel_path, reference)
            artefacts["savedmodel"] = (
                savedmodel_path, final["savedmodel"].relative_to(out_dir).as_posix(),
                {"base_path": "savedmodel", "model_name": str(name), "version": int(version)})
        if "onnx" in formats:
            paths = onnx_export.build(model, spec, staging / "onnx", opset)
            for role, figures in onnx_export.check(paths, reference).items():
                parity[f"onnx_{role}"] = figures
            for role, path in paths.items():
                artefacts[f"onnx_{role}"] = (
                    path, final[f"onnx_{role}"].relative_to(out_dir).as_posix(), {})
        if "tflite" in formats:
            path = staging / "tflite" / tflite_export.FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tflite_export.convert(savedmodel_path))
            parity["tflite"] = tflite_export.check(path, savedmodel_path, reference)
            artefacts["tflite"] = (path, final["tflite"].relative_to(out_dir).as_posix(), {})
        sampling = {"savedmodel_and_tflite": SAVEDMODEL_SAMPLING, "onnx": onnx_export.SEEDING}
        manifest = manifest_lib.build(spec, artefacts, parity, sampling, verify.tolerances())
        manifest["formats"] = list(formats)
        if "onnx" in formats:  # as read back from the files
            manifest["onnx_opset"] = manifest["artefacts"]["onnx_decoder"]["opset"]
        manifest_lib.write(manifest, staging / MANIFEST)

        for key, (path, _, _) in artefacts.items():  # the SavedModel version first
            _common.move_into_place(path, final[key], overwrite)
        _common.move_into_place(staging / MANIFEST, final["manifest"], overwrite)
        committed = True
    finally:
        _common.remove(staging)
        if savedmodel_staging != staging:
            _common.remove(savedmodel_staging)
        if not committed:
            for folder in new_dirs:  # innermost first: only folders this call created
                try:
                    folder.rmdir()
                except OSError:
                    pass
    return manifest


# ------------------------------------------------------------------- command line


def find_model(path):
    """The .keras file at `path`, or the one inside a run folder (model.keras preferred)."""
    path = pathlib.Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        preferred = path / "model.keras"
        if preferred.is_file():
            return preferred
        found = sorted(path.glob("*.keras"))
        if len(found) == 1:
            return found[0]
        if found:
            raise FileNotFoundError(
                f"{str(path)!r} holds several .keras files {[p.name for p in found]}; "
                "name the one to export.")
    raise FileNotFoundError(f"No .keras model at {str(path)!r}.")


def parser(prog="python -m keras_vae.export"):
    p = argparse.ArgumentParser(
        prog=prog, description="Export a trained keras_vae model: SavedModel (TF Serving), "
        "ONNX (decoder, sampler, int8 sampler), TFLite; each artefact checked, plus manifest.json.")
    p.add_argument("model", help="a .keras file, or a run folder holding one (model.keras)")
    p.add_argument("--out", help="export folder (default: MODEL_DIR/export)")
    p.add_argument("--format", default="all",
                   help="savedmodel, onnx, tflite or all; comma-separated for several (default all)")
    p.add_argument("--name", default="vae", help="SavedModel model name (default vae)")
    p.add_argument("--version", type=int, default=1, help="SavedModel version (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace existing artefacts")
    p.add_argument("--opset", type=int, default=onnx_export.DEFAULT_OPSET, help="ONNX opset (17)")
    return p


def main(argv=None):
    """`python -m keras_vae.export MODEL.keras --out DIR [--format ...]`; returns an exit code.

    0: exported and checked; 1: a check failed or a target exists (message on
    stderr, nothing written); 2: bad arguments or no model.
    """
    args = parser().parse_args(argv)
    try:
        model_path = find_model(args.model)
        formats = normalize_formats(args.format)
    except (FileNotFoundError, ValueError) as error:
        print(f"keras_vae.export: error: {error}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out) if args.out else model_path.parent / "export"
    try:
        manifest = export_all(model_path, out, name=args.name, version=args.version,
                              overwrite=args.overwrite, formats=formats, opset=args.opset)
    except (FileExistsError, verify.ExportCheckError, NotImplementedError) as error:
        print(f"keras_vae.export: error: {error}", file=sys.stderr)
        return 1
    print(summary(manifest, out))
    return 0


def summary(manifest, out):
    """A few lines: each artefact with its size and its decode parity."""
    lines = [f"Exported to {out} (manifest.json):"]
    for key, entry in manifest["artefacts"].items():
        figures = manifest["parity"].get(key, {})
        decode = figures.get("decode_max_abs_diff")
        if isinstance(decode, dict):
            note = f"decode max abs diff {max(decode.values()):.2g}"
        elif "decode_error_vs_keras" in figures:
            note = f"int8 decode max abs error {figures['decode_error_vs_keras']['max_abs_error']:.2g}"
        else:
            note = ""
        lines.append(f"  {key:18s} {entry['path']:32s} {entry['size_bytes']:>10,d} B  {note}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
