r"""The manifest's facts about each artefact, read back from the files themselves.

```none
file:    {path, size_bytes, sha256}
folder:  {path, size_bytes, sha256, files: [file, ...]}
         sha256 = SHA-256 of the sorted lines 'relative path \0 file sha256 \n'
```

SavedModel signatures are read from `saved_model.pb` as TF Serving reads them,
ONNX inputs and outputs from the graph, TFLite signatures from the interpreter.
Each reader imports its runtime only when called.
"""

import hashlib
import pathlib

import numpy as np

from keras_vae.export import contract
from keras_vae.export import runtimes


def sha256_file(path):
    """The hex SHA-256 of a file."""
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
    files = [describe_file(file, file.relative_to(path).as_posix())
             for file in sorted(p for p in path.rglob("*") if p.is_file())]
    digest = hashlib.sha256()
    for entry in files:
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return {"path": str(rel), "size_bytes": sum(f["size_bytes"] for f in files),
            "sha256": digest.hexdigest(), "files": files}


def savedmodel_signatures(path):
    """{signature: {method, inputs, outputs}} from saved_model.pb, as TF Serving reads it."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import dtypes

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(path) / "saved_model.pb").read_bytes())
    meta = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)

    def tensors(mapping):
        out = {}
        for key in sorted(mapping):
            info = mapping[key]
            shape = (None if info.tensor_shape.unknown_rank
                     else [int(d.size) for d in info.tensor_shape.dim])
            out[key] = {"name": info.name, "dtype": dtypes.as_dtype(info.dtype).name,
                        "shape": shape}
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
    interp = runtimes.tflite_interpreter(path)

    def tensors(details):
        return {k: {"name": d["name"], "dtype": np.dtype(d["dtype"]).name,
                    "shape": [int(s) for s in d["shape_signature"]]}
                for k, d in sorted(details.items())}

    out = {}
    for key in sorted(interp.get_signature_list()):
        runner = interp.get_signature_runner(key)
        out[key] = {"inputs": tensors(runner.get_input_details()),
                    "outputs": tensors(runner.get_output_details())}
    return out


def artefact(key, path, rel, extra=None):
    """The manifest entry of artefact `key` now at `path`, recorded as `rel`."""
    path = pathlib.Path(path)
    if key == contract.ARTEFACT_SAVEDMODEL:
        entry = describe_dir(path, rel)
        entry["signatures"] = savedmodel_signatures(path)
    elif key in {contract.onnx_artefact(role) for role in contract.ONNX_FILES}:
        entry = describe_file(path, rel)
        entry["inputs"], entry["outputs"], entry["opset"] = onnx_io(path)
    elif key == contract.ARTEFACT_TFLITE:
        entry = describe_file(path, rel)
        entry["signatures"] = tflite_signatures(path)
    else:
        raise ValueError(f"Unknown artefact {key!r}.")
    entry.update(extra or {})
    return entry


__all__ = ["sha256_file", "describe_file", "describe_dir", "savedmodel_signatures", "onnx_io",
           "tflite_signatures", "artefact"]
