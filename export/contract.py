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

SavedModel signatures (SIGNATURES), contract 2: every input has a leading batch dimension N
  decode(z float32 [N, d][, label int64 [N]])        -> mean, *likelihood parameters [N, *event]
  encode(x float32 [N, *event][, label int64 [N]])   -> loc, scale [N, d]
  sample(seed int64 [N], temperature float32 [N][, label int64 [N]])
                                                     -> images [N, *event], z [N, d]
  serving_default = decode
  (a model conditioned on a real vector takes `condition` float32 [N, c] instead of `label`)
ONNX: decoder(z[, label]) as decode; sampler(seed, temperature[, label]) as sample
TFLite: decode and sample, as in the SavedModel
```

Row i of `sample` is a pure function of (seed_i, temperature_i[, label_i]): the
counter generator of `prng` (`row_noise`) keyed by seed_i, the same in every
runtime. Contract 1 (export folders whose manifest has no 'contract', format
"keras_vae.export/1"): sample(num_samples int32 [], temperature float32 [], seed
int64 []) and an ONNX sampler(num_samples int64 [], temperature float32 []);
every reader keeps reading it (`LEGACY_INPUTS`).
"""

import os
import pathlib
from typing import Dict, Iterable, Union

PathLike = Union[str, os.PathLike]

#: The manifest's format tag written; a reader refuses majors outside READABLE_MAJORS.
MANIFEST_FORMAT = "keras_vae.export/2"
#: The format majors every reader reads (1: contract 1, scalar `num_samples`).
READABLE_MAJORS = ("1", "2")
#: The export contract written (the manifest's 'contract'; absent means 1).
CONTRACT_VERSION = 2
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
LABEL = "label"
CONDITION = "condition"
NUM_SAMPLES = "num_samples"
TEMPERATURE = "temperature"
SEED = "seed"
MEAN = "mean"
LOC = "loc"
SCALE = "scale"
IMAGES = "images"

#: Input names of each signature of an unconditional model (a conditional one adds LABEL or
#: CONDITION last; see `inputs`). The decode outputs depend on the likelihood (the manifest).
INPUTS = {
    DECODE: (Z,),
    ENCODE: (X,),
    SAMPLE: (SEED, TEMPERATURE),
    SERVING_DEFAULT: (Z,),
}
#: Contract 1's inputs where they differ (scalars): read, never written.
LEGACY_INPUTS = {SAMPLE: (NUM_SAMPLES, TEMPERATURE, SEED)}
LEGACY_ONNX_SAMPLER_INPUTS = (NUM_SAMPLES, TEMPERATURE)
#: Output names that every export has (decode adds its likelihood's parameters to "mean").
OUTPUTS = {
    DECODE: (MEAN,),
    ENCODE: (LOC, SCALE),
    SAMPLE: (IMAGES, Z),
    SERVING_DEFAULT: (MEAN,),
}
#: Input and output names of the ONNX sampler (as `sample`; a conditional one adds LABEL).
ONNX_SAMPLER_INPUTS = (SEED, TEMPERATURE)
ONNX_SAMPLER_OUTPUTS = (IMAGES, Z)

#: The manifest's artefact keys.
ARTEFACT_SAVEDMODEL = "savedmodel"
ARTEFACT_TFLITE = "tflite"
ARTEFACT_MANIFEST = "manifest"


def condition_input(num_classes=None, condition_dim=0):
    """The extra input of a conditional model: LABEL (classes), CONDITION (a vector) or None."""
    if num_classes:
        return LABEL
    return CONDITION if condition_dim else None


def inputs(signature, num_classes=None, condition_dim=0):
    """The input names of `signature` for a model with this condition (contract 2)."""
    extra = condition_input(num_classes, condition_dim)
    return INPUTS[signature] + ((extra,) if extra else ())


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
    "MANIFEST_FORMAT", "READABLE_MAJORS", "CONTRACT_VERSION", "LABEL", "CONDITION",
    "LEGACY_INPUTS", "LEGACY_ONNX_SAMPLER_INPUTS", "condition_input", "inputs", "MANIFEST_FILE", "SAVEDMODEL_DIR", "ONNX_DIR", "TFLITE_DIR", "ONNX_DECODER",
    "ONNX_SAMPLER", "ONNX_SAMPLER_INT8", "ONNX_FILES", "TFLITE_FILE", "FORMAT_SAVEDMODEL",
    "FORMAT_ONNX", "FORMAT_TFLITE", "FORMATS", "DEFAULT_OPSET", "DECODE", "ENCODE", "SAMPLE",
    "SERVING_DEFAULT",
    "SIGNATURES", "TFLITE_SIGNATURES", "Z", "X", "NUM_SAMPLES", "TEMPERATURE", "SEED", "MEAN",
    "LOC", "SCALE", "IMAGES", "INPUTS", "OUTPUTS", "ONNX_SAMPLER_INPUTS",
    "ONNX_SAMPLER_OUTPUTS", "ARTEFACT_SAVEDMODEL", "ARTEFACT_TFLITE", "ARTEFACT_MANIFEST",
    "onnx_artefact",
    "version_path", "targets",
]
