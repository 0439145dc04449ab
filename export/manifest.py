r"""manifest.json: what an export folder holds, written by `export_all`, read by every reader.

The reader (`load` and the accessors below) imports neither TensorFlow nor ONNX, so
the development server, the web page builder and the clients read an export folder
through it instead of parsing the JSON by hand. The writer (`build`) reads each
artefact's facts back from the files themselves (`describe`).

Schema (format "keras_vae.export/1"; paths relative to the manifest's folder, POSIX):

```none
format       str   "keras_vae.export/1": name/major; a reader refuses another name or major
created      str   ISO 8601 UTC time of the export
formats      [str] the formats exported, a subset of ("savedmodel", "onnx", "tflite")
onnx_opset   int   the ONNX opset (only when "onnx" was exported)
model        {latent_dim: int d, event_shape: [int], likelihood: str, prior: str,
              prior_components: int C, decoder_outputs: [str] ("mean" + likelihood parameters)}
artefacts    {key: entry}, key one of
  "savedmodel"        {path: "savedmodel/NAME/VERSION", base_path: "savedmodel",
                       model_name: str, version: int, size_bytes: int, sha256: str,
                       files: [{path, size_bytes, sha256}],
                       signatures: {name: {method, inputs, outputs}}}
  "onnx_decoder" | "onnx_sampler" | "onnx_sampler_int8"
                      {path: "onnx/FILE", size_bytes, sha256, opset: int, inputs, outputs}
  "tflite"            {path: "tflite/vae.tflite", size_bytes, sha256,
                       signatures: {name: {inputs, outputs}}}
  where inputs / outputs are {tensor: {name: str, dtype: str, shape: [int | str] | null}}
sampling     {savedmodel_and_tflite: str, onnx: str}  how each runtime draws noise, seeds
parity       {key: figures}  the export's own checks: max abs diffs, int8 error, statistics
tolerances   {...}           the tolerances the checks used (`verify.tolerances()`)
versions     {package: str | null}  python and the libraries of the export
```

Shapes use -1 (SavedModel, TFLite) or a symbol name (ONNX) for dynamic sizes. A
folder's sha256 is the digest of its sorted 'relative path, NUL, file sha256,
newline' lines. Signature, input and output names are `contract`'s.
"""

import datetime
import json
import pathlib

from keras_vae import _util
from keras_vae.export import contract
from keras_vae.export import describe as describe_lib

#: The format tag written (the same as `contract.MANIFEST_FORMAT`).
FORMAT = contract.MANIFEST_FORMAT


class ManifestError(ValueError):
    """A manifest is not one this reader understands (bad JSON, format or fields)."""


class MissingArtefactError(ManifestError, LookupError):
    """The export folder has no artefact of the kind asked for."""


# ------------------------------------------------------------------- writing


def build(spec, artefacts, parity, sampling, tolerances, formats=None):
    """The manifest dict.

    Args:
      spec: the model's `graphs.ExportSpec` (anything with `describe()`).
      artefacts: {key: (path on disk now, path relative to the manifest, extra dict)}.
      parity, sampling, tolerances: dicts recorded as they are.
      formats: the exported formats, recorded under 'formats' when given.

    Returns:
      A JSON-ready dict.
    """
    described = {key: describe_lib.artefact(key, path, rel, extra)
                 for key, (path, rel, extra) in artefacts.items()}
    manifest = {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": spec.describe(),
        "artefacts": described,
        "sampling": sampling,
        "parity": parity,
        "tolerances": tolerances,
        "versions": _util.versions(),
    }
    if formats is not None:
        manifest["formats"] = list(formats)
        decoder = described.get(contract.onnx_artefact("decoder"))
        if decoder is not None:  # as read back from the file
            manifest["onnx_opset"] = decoder["opset"]
    return _util.jsonable(manifest)


def write(manifest, path):
    """Writes `manifest` to `path` atomically; returns `path`."""
    _util.atomic_write_json(path, manifest)
    return path


# ------------------------------------------------------------------- reading


def load(path):
    """Reads and checks a manifest: the export folder or its manifest.json.

    Args:
      path: an export folder (holding manifest.json) or the manifest file itself.

    Returns:
      The manifest (a dict).

    Raises:
      FileNotFoundError: no such folder or file, or a folder without manifest.json.
      ManifestError (a ValueError): not JSON, another format, or missing fields.
    """
    path = pathlib.Path(path)
    file = path / contract.MANIFEST_FILE if path.is_dir() else path
    if not file.is_file():
        where = f"{str(path)!r} has no {contract.MANIFEST_FILE}" if path.is_dir() else \
            f"No export manifest at {str(path)!r}"
        raise FileNotFoundError(
            f"{where}: not an export folder (write one with keras_vae.export.export_all).")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ManifestError(f"{str(file)!r} is not valid JSON: {error}") from error
    check(manifest, file)
    return manifest


def check(manifest, where="the manifest"):
    """Raises ManifestError unless `manifest` has this reader's format and fields."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: a manifest is a JSON object, got {type(manifest).__name__}.")
    tag = manifest.get("format")
    name, _, major = FORMAT.partition("/")
    got_name, _, got_version = str(tag).partition("/")
    if not isinstance(tag, str) or got_name != name or got_version.split(".")[0] != major:
        raise ManifestError(
            f"{where}: format {tag!r} is not {FORMAT!r} (an export of another kind or "
            "major version; re-export the model with this keras_vae).")
    model, artefacts = manifest.get("model"), manifest.get("artefacts")
    if not isinstance(model, dict) or not isinstance(artefacts, dict):
        raise ManifestError(f"{where}: 'model' and 'artefacts' must be JSON objects.")
    for key, entry in artefacts.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ManifestError(f"{where}: artefact {key!r} has no 'path' string.")
    for key in ("latent_dim", "event_shape"):
        if key not in model:
            raise ManifestError(f"{where}: 'model' has no {key!r}.")


def artefact(manifest, key):
    """The manifest entry (a dict) of artefact `key`; MissingArtefactError if absent."""
    entry = (manifest.get("artefacts") or {}).get(key)
    if entry is None:
        raise MissingArtefactError(
            f"The export has no {key!r} artefact (it holds {sorted(manifest.get('artefacts') or {})}); "
            "export that format too.")
    return entry


def artefact_path(manifest, key, export_dir):
    """The path of artefact `key` (a file or a folder) inside `export_dir`.

    Raises:
      MissingArtefactError: the export has no such artefact.
      ManifestError: its recorded path leaves the export folder (absolute or '..').
    """
    rel = pathlib.PurePosixPath(artefact(manifest, key)["path"])
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ManifestError(f"Artefact {key!r} has the path {str(rel)!r}, which is not inside "
                            "the export folder.")
    return pathlib.Path(export_dir).joinpath(*rel.parts)


def savedmodel_base(manifest, export_dir):
    """TF Serving's model base path: the folder EXPORT/savedmodel/NAME holding the versions."""
    entry = artefact(manifest, contract.ARTEFACT_SAVEDMODEL)
    version_dir = artefact_path(manifest, contract.ARTEFACT_SAVEDMODEL, export_dir)
    name = entry.get("model_name") or version_dir.parent.name
    return pathlib.Path(export_dir) / entry.get("base_path", contract.SAVEDMODEL_DIR) / name


def onnx_file(manifest, role, export_dir):
    """The path of an ONNX file: role 'decoder', 'sampler' or 'sampler_int8'."""
    return artefact_path(manifest, contract.onnx_artefact(role), export_dir)


def event_shape(manifest):
    """The shape of one image, a tuple of ints."""
    return tuple(int(s) for s in manifest["model"]["event_shape"])


def latent_dim(manifest):
    """The latent dimension d, an int."""
    return int(manifest["model"]["latent_dim"])


def decoder_outputs(manifest):
    """The decode signature's output names ('mean' and the likelihood's parameters)."""
    return list(manifest["model"].get("decoder_outputs") or contract.OUTPUTS[contract.DECODE])


def signatures(manifest, key=contract.ARTEFACT_SAVEDMODEL):
    """{signature: {inputs, outputs}} as recorded for the SavedModel (or key 'tflite')."""
    found = artefact(manifest, key).get("signatures")
    if not isinstance(found, dict):
        raise ManifestError(f"Artefact {key!r} records no signatures.")
    return found


# ------------------------------------------------------------------- summary


def _check_note(figures):
    decode = figures.get("decode_max_abs_diff")
    if isinstance(decode, dict) and decode:
        return f"decode max |diff| {max(decode.values()):.1e}"
    if figures.get("decode_error_vs_keras") is not None:
        error = figures["decode_error_vs_keras"].get("max_abs_error")
        return "int8, error within tolerance" + (f" ({error:.1e})" if error is not None else "")
    return "checked" if figures else ""


def summary_lines(manifest, out):
    """One line per exported artefact: its path, its size and the export's own parity figure.

    Args:
      manifest: a manifest dict (or None).
      out: the export folder the paths are relative to.

    Returns:
      A list of lines (at least one).
    """
    lines = []
    parity = (manifest or {}).get("parity") or {}
    for key, info in ((manifest or {}).get("artefacts") or {}).items():
        size = info.get("size_bytes")
        size = f"{size / 1e6:.1f} MB" if isinstance(size, (int, float)) else ""
        note = _check_note(parity.get(key) or {})
        lines.append(f"  {key:<18} {pathlib.Path(out) / info.get('path', '')}  {size}  {note}"
                     .rstrip())
    return lines or [f"  {out}"]


__all__ = [
    "FORMAT", "ManifestError", "MissingArtefactError", "build", "write", "load", "check",
    "artefact", "artefact_path", "savedmodel_base", "onnx_file", "event_shape", "latent_dim",
    "decoder_outputs", "signatures", "summary_lines",
]
