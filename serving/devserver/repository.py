"""The development server's model repository: TF Serving's base paths, versions and labels.

```none
BASE/NAME/VERSION/saved_model.pb      TF Serving's layout (VERSION a positive integer)
OUT/manifest.json                     an export folder: the manifest names BASE/NAME
```

A `ModelVersion` is one loaded SavedModel; a `Model` is a name with its loaded versions
and version labels; `read_model_config` reads TF Serving's ``models.config``.
"""

import logging
import pathlib

import numpy as np

from keras_vae.export import contract, describe
from keras_vae.export import manifest as export_manifest
from keras_vae.serving.errors import ServingError

__all__ = ["ModelVersion", "Model", "read_model_config", "resolve_base_path"]

log = logging.getLogger("keras_vae.serving")


class ModelVersion:
    """One loaded SavedModel version: its callable signatures and SignatureDefs.

    Args:
      name: the model's name.
      version: the version number.
      path: the numbered SavedModel folder.

    Attributes:
      signature_defs: a ``tensorflow.serving.SignatureDefMap`` proto (what
        GetModelMetadata returns), built once from export's reader of saved_model.pb.
      specs: {signature: {input: (shape list or None, numpy dtype)}}.
      output_specs: {signature: {output: (shape list or None, numpy dtype)}}.
      functions: {signature: concrete function}.
    """

    def __init__(self, name, version, path):
        import tensorflow as tf

        self.name = name
        self.version = int(version)
        self.path = pathlib.Path(path)
        signatures = describe.savedmodel_signatures(self.path)
        self.signature_defs = _signature_def_map(signatures)
        self.specs = {sig: {key: (info["shape"], np.dtype(info["dtype"]))
                            for key, info in entry["inputs"].items()}
                      for sig, entry in signatures.items()}
        self.output_specs = {sig: {key: (info["shape"], np.dtype(info["dtype"]))
                                   for key, info in entry["outputs"].items()}
                             for sig, entry in signatures.items()}
        self._loaded = tf.saved_model.load(str(self.path))
        self.functions = dict(self._loaded.signatures)

    def signature(self, signature_name):
        """The input specs of a signature.

        Raises:
          ServingError: INVALID_ARGUMENT when the model has no such signature.
        """
        if signature_name not in self.specs or signature_name not in self.functions:
            raise ServingError(f"Serving signature name: \"{signature_name}\" not found in "
                               f"signature def (available: {sorted(self.specs)})",
                               "INVALID_ARGUMENT")
        return self.specs[signature_name]

    def run(self, signature_name, inputs):
        """Calls a signature on numpy inputs; returns {output name: numpy array}."""
        import tensorflow as tf

        fn = self.functions[signature_name]
        try:
            outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
                ValueError, TypeError) as err:
            message = getattr(err, "message", None) or str(err)
            raise ServingError(message.strip().splitlines()[0], "INVALID_ARGUMENT") from None
        except tf.errors.ResourceExhaustedError as err:
            raise ServingError(str(err.message), "RESOURCE_EXHAUSTED") from None
        return {k: v.numpy() for k, v in outputs.items()}


def _signature_def_map(signatures):
    """export's {signature: {method, inputs, outputs}} as a SignatureDefMap proto."""
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    for key, entry in signatures.items():
        sig = sig_map.signature_def[key]
        sig.method_name = entry["method"]
        for section, tensors in (("inputs", entry["inputs"]), ("outputs", entry["outputs"])):
            for tensor_key, info in tensors.items():
                proto = getattr(sig, section)[tensor_key]
                proto.name = info["name"]
                proto.dtype = tf.dtypes.as_dtype(info["dtype"]).as_datatype_enum
                if info["shape"] is None:
                    proto.tensor_shape.unknown_rank = True
                for size in info["shape"] or ():
                    proto.tensor_shape.dim.add(size=size)
    return sig_map


def _version_dirs(base_path):
    base = pathlib.Path(base_path)
    return sorted(int(p.name) for p in base.iterdir()
                  if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file())


def resolve_base_path(path, model_name="vae"):
    """Finds the TF Serving base path (a folder of numbered versions) from what a user gives.

    Args:
      path: the base path itself (``out/savedmodel/vae``), an export folder (``out``,
        whose manifest names the base path) or one numbered SavedModel folder.
      model_name: the model's folder under ``savedmodel/`` when `path` is an export
        folder without a manifest.

    Returns:
      (base_path, versions or None); None means "use the version policy".

    Raises:
      ServingError: FAILED_PRECONDITION for a SavedModel outside a numbered folder,
        NOT_FOUND when there is no version to serve.
    """
    path = pathlib.Path(path)
    if (path / "saved_model.pb").is_file():
        if path.name.isdigit():
            return path.parent, [int(path.name)]
        raise ServingError(f"{path} is a SavedModel but not inside a numbered version folder "
                           "(TF Serving's layout is BASE/NAME/VERSION/saved_model.pb)",
                           "FAILED_PRECONDITION")
    if (path / contract.MANIFEST_FILE).is_file():
        try:
            path = export_manifest.savedmodel_base(export_manifest.load(path), path)
        except export_manifest.MissingArtefactError as err:
            raise ServingError(f"{path}: {err}", "NOT_FOUND") from None
        except export_manifest.ManifestError as err:
            raise ServingError(str(err), "FAILED_PRECONDITION") from None
    elif (path / contract.SAVEDMODEL_DIR / model_name).is_dir():
        path = path / contract.SAVEDMODEL_DIR / model_name
    if not path.is_dir() or not _version_dirs(path):
        raise ServingError(f"no SavedModel versions under {path} (expected "
                           f"{path}/1/saved_model.pb)", "NOT_FOUND")
    return path, None


class Model:
    """A named model: its loaded versions and version labels (TF Serving's semantics).

    Args:
      name: the name clients ask for.
      base_path: anything `resolve_base_path` accepts.
      version_policy: ("latest", n), ("all", None) or ("specific", [versions]).
      labels: {label: version}.
    """

    def __init__(self, name, base_path, version_policy=("latest", 1), labels=None):
        self.name = name
        base_path, chosen = resolve_base_path(base_path, name)
        self.base_path = base_path
        if chosen is None:
            chosen = _choose_versions(name, base_path, version_policy)
        self.versions = {v: ModelVersion(name, v, base_path / str(v)) for v in chosen}
        # Like TF Serving with --allow_version_labels_for_unavailable_models: a label may
        # name a version that is not (yet) loaded; requests through it get NOT_FOUND.
        self.labels = {str(k): int(v) for k, v in (labels or {}).items()}
        for label, version in self.labels.items():
            if version not in self.versions:
                log.warning("model %s: label %r names version %d, which is not loaded",
                            name, label, version)

    def get(self, version=None, label=None):
        """The ModelVersion a request names (the latest when it names none).

        Raises:
          ServingError: INVALID_ARGUMENT for an unknown label, NOT_FOUND for a version
            that is not loaded.
        """
        if label is not None:
            if label not in self.labels:
                raise ServingError(f"Unrecognized servable version label: {label}",
                                   "INVALID_ARGUMENT")
            version = self.labels[label]
            if version not in self.versions:
                raise ServingError(f"Servable not found for request: Specific({self.name}, "
                                   f"{version}) (label {label})", "NOT_FOUND")
        if version is None:
            return self.versions[max(self.versions)]
        if int(version) not in self.versions:
            raise ServingError(f"Servable not found for request: Specific({self.name}, "
                               f"{version})", "NOT_FOUND")
        return self.versions[int(version)]


def _choose_versions(name, base_path, version_policy):
    available = _version_dirs(base_path)
    kind, arg = version_policy
    if kind == "latest":
        return available[-int(arg or 1):]
    if kind == "all":
        return available
    if kind == "specific":
        missing = sorted(set(arg) - set(available))
        if missing:
            raise ServingError(f"model {name}: versions {missing} not under {base_path}",
                               "NOT_FOUND")
        return sorted(arg)
    raise ValueError(f"unknown version policy {kind!r}; choose latest, all or specific")


def read_model_config(path):
    """Parses TF Serving's ``models.config`` (a ModelServerConfig text proto).

    Args:
      path: the config file; relative base paths are resolved against its folder.

    Returns:
      A list of dicts: name, base_path, version_policy, labels.

    Raises:
      ServingError: INVALID_ARGUMENT when the file is not a ModelServerConfig.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    text = pathlib.Path(path).read_text()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ServingError(f"{path}: {err}", "INVALID_ARGUMENT") from None
    out = []
    for mc in config.model_config_list.config:
        policy = mc.model_version_policy
        which = policy.WhichOneof("policy_choice")
        if which == "all":
            version_policy = ("all", None)
        elif which == "specific":
            version_policy = ("specific", list(policy.specific.versions))
        else:
            version_policy = ("latest", policy.latest.num_versions or 1)
        base = pathlib.Path(mc.base_path)
        if not base.is_absolute():
            base = pathlib.Path(path).parent / base
        out.append({"name": mc.name, "base_path": str(base), "version_policy": version_policy,
                    "labels": dict(mc.version_labels)})
    return out
