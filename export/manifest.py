r"""manifest.json: what was exported, read back from the files themselves.

```none
{
  "format": "keras_vae.export/1",
  "model": {latent_dim, event_shape, likelihood, prior, prior_components, decoder_outputs},
  "artefacts": {
    "savedmodel":   {path, base_path, model_name, version, size_bytes, sha256, files: [...],
                     signatures: {decode: {inputs: {z: {name, dtype, shape}}, outputs: {...}}, ...}},
    "onnx_decoder" | "onnx_sampler" | "onnx_sampler_int8": {path, size_bytes, sha256, opset,
                     inputs: {...}, outputs: {...}},
    "tflite":       {path, size_bytes, sha256, signatures: {...}}
  },
  "sampling": {how each runtime draws its noise and how to seed it},
  "parity": {per artefact: max abs diffs, int8 error, sampling statistics},
  "tolerances": {...}, "versions": {tensorflow, keras, ...}, "created": ISO time
}
```

Paths are relative to the manifest's folder. Shapes use -1 (SavedModel, TFLite)
or a symbol name (ONNX) for dynamic sizes. A folder's sha256 is the digest of
its sorted list of 'relative path, NUL, file sha256, newline' lines.
"""

import datetime
import hashlib
import importlib.metadata
import json
import pathlib
import platform

import numpy as np

FORMAT = "keras_vae.export/1"
_PACKAGES = ("tensorflow", "keras", "tensorflow-probability", "onnx", "tf2onnx", "onnxruntime",
             "ai-edge-litert", "numpy", "keras-vae")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path, rel):
    """{path, size_bytes, sha256} of a file, `rel` being the path written into the manifest."""
    path = pathlib.Path(path)
    return {"path": str(rel), "size_bytes": path.stat().st_size, "sha256": sha256_file(path)}


def describe_dir(path, rel):
    """{path, size_bytes, sha256, files} of a folder (every file, sorted, relative)."""
    path = pathlib.Path(path)
    files = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        files.append(describe_file(file, file.relative_to(path).as_posix()))
    digest = hashlib.sha256()
    for entry in files:
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return {"path": str(rel), "size_bytes": sum(f["size_bytes"] for f in files),
            "sha256": digest.hexdigest(), "files": files}


def versions():
    """Installed versions of the libraries an export depends on."""
    found = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


# ------------------------------------------------------------------- reading signatures back


def savedmodel_signatures(path):
    """{signature: {inputs, outputs}} from saved_model.pb, as TF Serving reads it."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import dtypes

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(path) / "saved_model.pb").read_bytes())
    meta = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)

    def tensors(mapping):
        out = {}
        for key in sorted(mapping):
            info = mapping[key]
            shape = None if info.tensor_shape.unknown_rank else [int(d.size) for d in info.tensor_shape.dim]
            out[key] = {"name": info.name, "dtype": dtypes.as_dtype(info.dtype).name, "shape": shape}
        return out

    return {key: {"method": sig.method_name, "inputs": tensors(sig.inputs),
                  "outputs": tensors(sig.outputs)}
            for key, sig in sorted(meta.signature_def.items())
            if not key.startswith("__")}


def onnx_io(path):
    """({input: spec}, {output: spec}, opset) of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def spec(value):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or -1)
                for d in tensor.shape.dim]
        return {"name": value.name,
                "dtype": np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name,
                "shape": dims}

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return ({v.name: spec(v) for v in model.graph.input},
            {v.name: spec(v) for v in model.graph.output}, opset)


def tflite_signatures(path):
    """{signature: {inputs, outputs}} from the .tflite file's own signature defs."""
    from keras_vae.export import tflite_export

    interp = tflite_export.interpreter(path)
    out = {}
    for key in sorted(interp.get_signature_list()):
        runner = interp.get_signature_runner(key)

        def tensors(details):
            return {k: {"name": d["name"], "dtype": np.dtype(d["dtype"]).name,
                        "shape": [int(s) for s in d["shape_signature"]]}
                    for k, d in sorted(details.items())}

        out[key] = {"inputs": tensors(runner.get_input_details()),
                    "outputs": tensors(runner.get_output_details())}
    return out


# ------------------------------------------------------------------- the manifest


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def build(spec, artefacts, parity, sampling, tolerances):
    """The manifest dict.

    Args:
      spec: the model's `_graph.ExportSpec`.
      artefacts: {key: (path on disk now, path relative to the manifest, extra dict)}.
      parity, sampling, tolerances: dicts recorded as they are.
    """
    described = {}
    for key, (path, rel, extra) in artefacts.items():
        path = pathlib.Path(path)
        if key == "savedmodel":
            entry = describe_dir(path, rel)
            entry["signatures"] = savedmodel_signatures(path)
        elif key.startswith("onnx_"):
            entry = describe_file(path, rel)
            entry["inputs"], entry["outputs"], entry["opset"] = onnx_io(path)
        elif key == "tflite":
            entry = describe_file(path, rel)
            entry["signatures"] = tflite_signatures(path)
        else:  # pragma: no cover
            raise ValueError(f"Unknown artefact {key!r}.")
        entry.update(extra or {})
        described[key] = entry
    return _jsonable({
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": spec.describe(),
        "artefacts": described,
        "sampling": sampling,
        "parity": parity,
        "tolerances": tolerances,
        "versions": versions(),
    })


def write(manifest, path):
    pathlib.Path(path).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def load(path):
    """Reads a manifest.json (a dict)."""
    return json.loads(pathlib.Path(path).read_text())
