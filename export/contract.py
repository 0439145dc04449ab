"""The export contract: what an export folder holds, under which names, for every reader.

The exporters write, and the development server, the clients, the web page and the
Node sampler read, exactly these names; the manifest (`manifest.json`, schema in
`manifest.py` and serving/README.md) records them for each export folder, so a reader
never guesses. This module imports neither TensorFlow nor ONNX.

```none
OUT/manifest.json                       MANIFEST_FILE
OUT/savedmodel/NAME/VERSION/            SAVEDMODEL_DIR / name / version (TF Serving's layout)
OUT/onnx/decoder.onnx                   ONNX_FILES["decoder"]
OUT/onnx/sampler.onnx                   ONNX_FILES["sampler"]
OUT/onnx/sampler_int8.onnx              ONNX_FILES["sampler_int8"]
OUT/tflite/vae.tflite                   TFLITE_FILE

SavedModel signatures (SIGNATURES):
  decode(z float32 [N, d])                             -> mean, *likelihood parameters [N, *event]
  encode(x float32 [N, *event])                        -> loc, scale [N, d]
  sample(num_samples int32, temperature float32, seed int64)  -> images [n, *event], z [n, d]
  serving_default = decode
ONNX: decoder(z) as decode; sampler(num_samples int64, temperature float32) -> images, z
TFLite: decode and sample, as in the SavedModel
```
"""

import os
import pathlib
from typing import Dict, Iterable, Union

PathLike = Union[str, os.PathLike]

#: The manifest's format tag; a reader refuses other major formats.
MANIFEST_FORMAT = "keras_vae.export/1"
MANIFEST_FILE = "manifest.json"

SAVEDMODEL_DIR = "savedmodel"
ONNX_DIR = "onnx"
TFLITE_DIR = "tflite"
#: ONNX roles (the keys of ONNX_FILES).
ONNX_DECODER = "decoder"
ONNX_SAMPLER = "sampler"
ONNX_SAMPLER_INT8 = "sampler_int8"
ONNX_FILES = {ONNX_DECODER: "decoder.onnx", ONNX_SAMPLER: "sampler.onnx",
              ONNX_SAMPLER_INT8: "sampler_int8.onnx"}
TFLITE_FILE = "vae.tflite"

#: Export formats, in the order they are written (TFLite is converted from the SavedModel).
FORMAT_SAVEDMODEL = "savedmodel"
FORMAT_ONNX = "onnx"
FORMAT_TFLITE = "tflite"
FORMATS = (FORMAT_SAVEDMODEL, FORMAT_ONNX, FORMAT_TFLITE)
DEFAULT_OPSET = 17

DECODE = "decode"
ENCODE = "encode"
SAMPLE = "sample"
SERVING_DEFAULT = "serving_default"
#: SavedModel signature names; serving_default is decode.
SIGNATURES = (DECODE, SAMPLE, ENCODE, SERVING_DEFAULT)
TFLITE_SIGNATURES = (DECODE, SAMPLE)

#: Tensor names of the signatures.
Z = "z"
X = "x"
NUM_SAMPLES = "num_samples"
TEMPERATURE = "temperature"
SEED = "seed"
MEAN = "mean"
LOC = "loc"
SCALE = "scale"
IMAGES = "images"

#: Input names of each signature (the decode outputs depend on the likelihood; see the manifest).
INPUTS = {
    DECODE: (Z,),
    ENCODE: (X,),
    SAMPLE: (NUM_SAMPLES, TEMPERATURE, SEED),
    SERVING_DEFAULT: (Z,),
}
#: Output names that every export has (decode adds its likelihood's parameters to "mean").
OUTPUTS = {
    DECODE: (MEAN,),
    ENCODE: (LOC, SCALE),
    SAMPLE: (IMAGES, Z),
    SERVING_DEFAULT: (MEAN,),
}
#: Input and output names of the ONNX sampler (no seed: onnxruntime's own seeding applies).
ONNX_SAMPLER_INPUTS = (NUM_SAMPLES, TEMPERATURE)
ONNX_SAMPLER_OUTPUTS = (IMAGES, Z)

#: The manifest's artefact keys.
ARTEFACT_SAVEDMODEL = "savedmodel"
ARTEFACT_TFLITE = "tflite"
ARTEFACT_MANIFEST = "manifest"


def onnx_artefact(role: str) -> str:
    """The manifest key of an ONNX file: 'onnx_decoder', 'onnx_sampler', 'onnx_sampler_int8'."""
    if role not in ONNX_FILES:
        raise ValueError(f"Unknown ONNX role {role!r}; choose one of {sorted(ONNX_FILES)}.")
    return f"onnx_{role}"


def version_path(base_dir: PathLike, name: str, version: int) -> pathlib.Path:
    """BASE/NAME/VERSION, checking the name and version TF Serving will read."""
    name = str(name)
    if not name or name in (".", "..") or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain folder name, got {name!r}.")
    if isinstance(version, bool) or int(version) != version or int(version) <= 0:
        raise ValueError(
            f"version must be a positive integer (TF Serving's layout), got {version!r}."
        )
    return pathlib.Path(base_dir) / name / str(int(version))


def targets(out_dir: PathLike, name: str, version: int,
            formats: Iterable[str]) -> Dict[str, pathlib.Path]:
    """The final paths that exporting `formats` into `out_dir` creates, by artefact key.

    In the order they are moved into place: the SavedModel version first, the
    manifest last ('manifest').
    """
    out_dir = pathlib.Path(out_dir)
    paths = {}
    if FORMAT_SAVEDMODEL in formats:
        paths[ARTEFACT_SAVEDMODEL] = version_path(out_dir / SAVEDMODEL_DIR, name, version)
    if FORMAT_ONNX in formats:
        for role, file in ONNX_FILES.items():
            paths[onnx_artefact(role)] = out_dir / ONNX_DIR / file
    if FORMAT_TFLITE in formats:
        paths[ARTEFACT_TFLITE] = out_dir / TFLITE_DIR / TFLITE_FILE
    paths[ARTEFACT_MANIFEST] = out_dir / MANIFEST_FILE
    return paths


__all__ = [
    "MANIFEST_FORMAT", "MANIFEST_FILE", "SAVEDMODEL_DIR", "ONNX_DIR", "TFLITE_DIR", "ONNX_DECODER",
    "ONNX_SAMPLER", "ONNX_SAMPLER_INT8", "ONNX_FILES", "TFLITE_FILE", "FORMAT_SAVEDMODEL",
    "FORMAT_ONNX", "FORMAT_TFLITE", "FORMATS", "DEFAULT_OPSET", "DECODE", "ENCODE", "SAMPLE",
    "SERVING_DEFAULT",
    "SIGNATURES", "TFLITE_SIGNATURES", "Z", "X", "NUM_SAMPLES", "TEMPERATURE", "SEED", "MEAN",
    "LOC", "SCALE", "IMAGES", "INPUTS", "OUTPUTS", "ONNX_SAMPLER_INPUTS",
    "ONNX_SAMPLER_OUTPUTS", "ARTEFACT_SAVEDMODEL", "ARTEFACT_TFLITE", "ARTEFACT_MANIFEST",
    "onnx_artefact",
    "version_path", "targets",
]
