r"""manifest.json: what an export folder holds, written by `export_all`, read by every reader.

The reader (`load` and the accessors below) imports neither TensorFlow nor ONNX, so
the development server, the web page builder and the clients read an export folder
through it instead of parsing the JSON by hand. The writer (`build`) reads each
artefact's facts back from the files themselves (`describe`).

Schema (format "keras_vae.export/2"; paths relative to the manifest's folder, POSIX):

```none
format       str   "keras_vae.export/2": name/major; a reader refuses another name, or a
                   major outside contract.READABLE_MAJORS ("1" and "2")
contract     int   the export contract (2: every signature input has a batch dimension,
                   sample(seed [N], temperature [N][, label [N]])); absent in format 1
                   folders, which are contract 1 (sample(num_samples, temperature, seed))
created      str   ISO 8601 UTC time of the export
formats      [str] the formats exported, a subset of ("savedmodel", "onnx", "tflite")
onnx_opset   int   the ONNX opset (only when "onnx" was exported)
model        {latent_dim: int d, event_shape: [int], likelihood: str, prior: str,
              prior_components: int C, decoder_outputs: [str] ("mean" + likelihood parameters),
              noise_per_pixel: int k (0: images are the mean),
              condition: null | {kind: "class", input: "label", dtype: "int64",
                                 num_classes: int, prior: "class_conditional" | "shared"}
                              | {kind: "vector", input: "condition", dtype: "float32",
                                 shape: [int], size: int, prior: "shared"}}
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
import os
import pathlib
from typing import Any, Dict, List, Tuple, Union

from keras_vae import _util
from keras_vae.export import contract
from keras_vae.export import describe as describe_lib

#: The format tag written (the same as `contract.MANIFEST_FORMAT`).
FORMAT = contract.MANIFEST_FORMAT

Manifest = Dict[str, Any]
PathLike = Union[str, os.PathLike]


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
        "contract": contract.CONTRACT_VERSION,
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
        decoder = described.get(contract.onnx_artefact(contract.ONNX_DECODER))
        if decoder is not None:  # as read back from the file
            manifest["onnx_opset"] = decoder["opset"]
    return _util.jsonable(manifest)


def write(manifest, path):
    """Writes `manifest` to `path` atomically; returns `path`."""
    _util.atomic_write_json(path, manifest)
    return path


# ------------------------------------------------------------------- reading


def load(path: PathLike) -> Manifest:
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
    if (not isinstance(tag, str) or got_name != name
            or got_version.split(".")[0] not in contract.READABLE_MAJORS):
        majors = ", ".join(f"{name}/{m}" for m in contract.READABLE_MAJORS)
        raise ManifestError(
            f"{where}: format {tag!r} is not one this reader reads ({majors}): an export of "
            "another kind or version; re-export the model with this keras_vae.")
    model, artefacts = manifest.get("model"), manifest.get("artefacts")
    if not isinstance(model, dict) or not isinstance(artefacts, dict):
        raise ManifestError(f"{where}: 'model' and 'artefacts' must be JSON objects.")
    for key, entry in artefacts.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ManifestError(f"{where}: artefact {key!r} has no 'path' string.")
    for key in ("latent_dim", "event_shape"):
        if key not in model:
            raise ManifestError(f"{where}: 'model' has no {key!r}.")


def artefact(manifest: Manifest, key: str) -> Dict[str, Any]:
    """The manifest entry (a dict) of artefact `key`; MissingArtefactError if absent."""
    artefacts = manifest.get("artefacts") or {}
    if key not in artefacts:
        raise MissingArtefactError(f"The export has no {key!r} artefact (it holds "
                                   f"{sorted(artefacts)}); export that format too.")
    entry = artefacts[key]
    return entry


def artefact_path(manifest: Manifest, key: str, export_dir: PathLike) -> pathlib.Path:
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


def savedmodel_base(manifest: Manifest, export_dir: PathLike) -> pathlib.Path:
    """TF Serving's model base path: the folder EXPORT/savedmodel/NAME holding the versions."""
    entry = artefact(manifest, contract.ARTEFACT_SAVEDMODEL)
    version_dir = artefact_path(manifest, contract.ARTEFACT_SAVEDMODEL, export_dir)
    name = entry.get("model_name") or version_dir.parent.name
    return pathlib.Path(export_dir) / entry.get("base_path", contract.SAVEDMODEL_DIR) / name


def onnx_file(manifest: Manifest, role: str, export_dir: PathLike) -> pathlib.Path:
    """The path of an ONNX file: role 'decoder', 'sampler' or 'sampler_int8'."""
    return artefact_path(manifest, contract.onnx_artefact(role), export_dir)


def event_shape(manifest: Manifest) -> Tuple[int, ...]:
    """The shape of one image, a tuple of ints."""
    return tuple(int(s) for s in manifest["model"]["event_shape"])


def latent_dim(manifest: Manifest) -> int:
    """The latent dimension d, an int."""
    return int(manifest["model"]["latent_dim"])


def decoder_outputs(manifest: Manifest) -> List[str]:
    """The decode signature's output names ('mean' and the likelihood's parameters)."""
    return list(manifest["model"].get("decoder_outputs") or contract.OUTPUTS[contract.DECODE])


def contract_version(manifest: Manifest) -> int:
    """The export contract of the folder: 2 (batched sample inputs), or 1 (older folders)."""
    return int(manifest.get("contract") or 1)


def condition(manifest: Manifest):
    """The model's condition ({kind, input, num_classes | shape, ...}) or None if unconditional."""
    return (manifest.get("model") or {}).get("condition")


def sample_inputs(manifest: Manifest) -> Tuple[str, ...]:
    """The input names of the SavedModel/TFLite `sample` signature for this folder's contract."""
    if contract_version(manifest) < 2:
        return contract.LEGACY_INPUTS[contract.SAMPLE]
    extra = (condition(manifest) or {}).get("input")
    return contract.INPUTS[contract.SAMPLE] + ((extra,) if extra else ())


def check_labels(manifest: Manifest, labels, n=None):
    """The labels as int64 [n], checked against the manifest's condition (a reader's check).

    Raises:
      ValueError: the model takes no labels, or a label is not an integer in [0, C).
    """
    import numpy as np

    info = condition(manifest)
    if not info or info.get("kind") != "class":
        if labels is None:
            return None
        raise ValueError("This export's model is not conditioned on class labels; give no label.")
    num_classes = int(info["num_classes"])
    if labels is None:
        raise ValueError(f"This export's model is class-conditional: give a label in "
                         f"[0, {num_classes - 1}] for every row.")
    array = np.asarray(labels)
    if array.ndim == 0 and n is not None:
        array = np.full(n, array)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype("int64")
    if array.dtype.kind not in "iu" or np.any(array < 0) or np.any(array >= num_classes):
        bad = array.reshape(-1)[:8].tolist()
        raise ValueError(f"label must be an integer class in [0, {num_classes - 1}] "
                         f"(the model has {num_classes} classes), got {bad}.")
    if n is not None and array.shape != (n,):
        raise ValueError(f"Give one label per row: {n} rows, labels of shape {array.shape}.")
    return array.astype("int64")


def signatures(manifest: Manifest,
               key: str = contract.ARTEFACT_SAVEDMODEL) -> Dict[str, Any]:
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


def summary_lines(manifest: Manifest, out: PathLike) -> List[str]:
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
    "FORMAT", "Manifest", "ManifestError", "MissingArtefactError", "build", "write", "load",
    "check", "artefact", "artefact_path", "savedmodel_base", "onnx_file", "event_shape", "latent_dim",
    "decoder_outputs", "contract_version", "condition", "sample_inputs", "check_labels",
    "signatures", "summary_lines",
]
