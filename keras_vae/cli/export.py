r"""`keras-vae export` and `keras-vae verify`, and the `python -m keras_vae.export` command line.

```none
keras-vae export runs/a --format all      # -> runs/a/export (SavedModel, ONNX, TFLite), verified
keras-vae verify runs/a                   # reload each artefact with its runtime, compare
python -m keras_vae.export MODEL.keras --out DIR [--format savedmodel,onnx]
```

The work is `keras_vae.export`'s (`export_all`, `verify.verify_export_dir`,
`manifest.summary_lines`); it is imported on use, since it needs the `export`
extra (onnx, tf2onnx, onnxruntime, ai-edge-litert).
"""

import argparse
import importlib
import pathlib
import sys

from keras_vae import _util, runs
from keras_vae.cli import _common, _options
from keras_vae.cli._errors import EXIT_CORRUPT, EXIT_OK, CommandFailed, UsageError
from keras_vae.cli._options import Option, positive_int
from keras_vae.export import contract

EXPORT_OPTIONS = (
    _options.run_dir_option(),
    Option("format", ("--format",), choices=contract.FORMATS + ("all",), nargs="+",
           default=["all"], help="one or more formats"),
    Option("out", ("--out",), metavar="DIR", help="export folder", default_help="RUN_DIR/export"),
    Option("name", ("--name",), default="vae", help="model name in the TF Serving layout"),
    Option("model_version", ("--version",), type=positive_int, default=1,
           help="model version"),
    Option("overwrite", ("--overwrite",), action="store_true", default=False,
           help="replace an existing export of the same version"),
) + _options.COMMON

VERIFY_OPTIONS = (
    _options.run_dir_option(),
    Option("out", ("--out",), metavar="DIR", help="export folder", default_help="RUN_DIR/export"),
) + _options.COMMON


def register(subparsers):
    _options.add_command(subparsers, "export", EXPORT_OPTIONS, run,
                         help="SavedModel (TF Serving layout), ONNX and TFLite, each verified "
                              "against the Keras model")
    _options.add_command(subparsers, "verify", VERIFY_OPTIONS, run_verify,
                         help="reload an export folder with each runtime and compare with the "
                              "run's model")


def _export_module(name):
    """keras_vae.export.<name>; CommandFailed naming the extra when it is not installed."""
    try:
        return importlib.import_module(f"keras_vae.export.{name}")
    except ImportError as error:
        raise CommandFailed(f"keras_vae.export is not available: {_util.first_line(error)} "
                            "(install the extra: pip install 'keras-vae[export]')") from error


def export_run(run_dir, formats=("all",), out=None, name="vae", version=1, overwrite=False,
               model=None):
    """Exports a run's model.keras; returns (manifest, export folder).

    `model` is the run's model if already loaded. A model.keras that does not load
    is the corrupt-model error (CorruptRunError, exit 4), as in the other commands.
    """
    runs.read_config(run_dir)
    model_path = pathlib.Path(run_dir) / "model.keras"
    api = _export_module("api")
    if model is None:
        model, _ = runs.load_run_model(run_dir)
    formats = list(formats or ["all"])
    if "all" in formats and len(formats) > 1:
        raise UsageError("--format all conflicts with naming formats")
    formats = list(contract.FORMATS) if "all" in formats else formats
    out = pathlib.Path(out) if out else pathlib.Path(run_dir) / "export"
    _common.say(f"keras-vae: exporting {model_path} as {', '.join(formats)} -> {out}")
    try:
        manifest = api.export_all(model, str(out), name=name, version=version,
                                  overwrite=overwrite, formats=tuple(formats))
    except FileExistsError as error:
        raise runs.RunFolderError(f"{_util.first_line(error)} (use --overwrite to replace "
                                  "it)") from error
    return manifest, out


def verify_run(model, export_dir, manifest=None):
    """The lines of `verify.verify_export_dir`; CorruptRunError (exit 4) when a check fails."""
    verify = _export_module("verify")
    try:
        results = verify.verify_export_dir(model, export_dir, manifest)
    except verify.ExportCheckError as error:
        raise runs.CorruptRunError(f"export check failed: {_util.first_line(error)}") from error
    return verify.result_lines(results)


def summary_lines(manifest, out):
    """One line per exported artefact (`manifest.summary_lines`)."""
    return _export_module("manifest").summary_lines(manifest, out)


def run(args):
    run_dir = _common.require_run_dir(args)
    runs.read_config(run_dir)
    model, _ = runs.load_run_model(run_dir)
    manifest, out = export_run(run_dir, args.format, args.out, args.name, args.model_version,
                               args.overwrite, model=model)
    _common.say(f"keras-vae: exported -> {out}")
    for line in summary_lines(manifest, out):
        _common.say(line)
    _common.say("keras-vae: verifying: each artefact reloaded by its own runtime, decoding "
                "the same z")
    for line in verify_run(model, out, manifest):
        _common.say(line)
    return EXIT_OK


def run_verify(args):
    run_dir = _common.require_run_dir(args)
    model, _ = runs.load_run_model(run_dir)
    out = pathlib.Path(args.out or run_dir / "export")
    if not out.is_dir():
        raise runs.RunFolderError(f"no export folder {out}: run 'keras-vae export {run_dir}' "
                                  "first")
    _export_module("api").recover(out)  # an export killed mid-swap: finished or undone
    lines = verify_run(model, out)
    _common.say(f"keras-vae: {out}: every artefact agrees with {run_dir / 'model.keras'}")
    for line in lines:
        _common.say(line)
    return EXIT_OK


# ---------------------------------------------------------- python -m keras_vae.export


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


def load_model_file(path):
    """The model of a .keras file; CorruptRunError (exit 4) when it does not load."""
    from keras_vae._backend import keras

    import keras_vae  # noqa: F401 - registers the custom objects

    try:
        return keras.models.load_model(path)
    except Exception as error:  # noqa: BLE001 - any failure to load is a corrupt file
        raise runs.CorruptRunError(f"cannot load {path}: the file is corrupt or not a "
                                   f"keras-vae model ({_util.first_line(error)})") from error


def module_parser(prog="python -m keras_vae.export"):
    """The parser of `python -m keras_vae.export`."""
    p = argparse.ArgumentParser(
        prog=prog, description="Export a trained keras_vae model: SavedModel (TF Serving), "
        "ONNX (decoder, sampler, int8 sampler), TFLite; each artefact checked, plus "
        "manifest.json.")
    p.add_argument("model", help="a .keras file, or a run folder holding one (model.keras)")
    p.add_argument("--out", help="export folder (default: MODEL_DIR/export)")
    p.add_argument("--format", default="all", help="savedmodel, onnx, tflite or all; "
                                                   "comma-separated for several (default all)")
    p.add_argument("--name", default="vae", help="SavedModel model name (default vae)")
    p.add_argument("--version", type=int, default=1, help="SavedModel version (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace existing artefacts")
    p.add_argument("--opset", type=int, default=contract.DEFAULT_OPSET,
                   help=f"ONNX opset ({contract.DEFAULT_OPSET})")
    return p


def module_main(argv=None):
    """`python -m keras_vae.export MODEL.keras --out DIR [--format ...]`; returns an exit code.

    0: exported and checked; 1: a check failed or a target exists (message on
    stderr, nothing written); 2: bad arguments or no model; 4: a corrupt model file.
    """
    args = module_parser().parse_args(argv)
    api, verify = _export_module("api"), _export_module("verify")
    try:
        model_path = find_model(args.model)
        formats = api.normalize_formats(args.format)
    except (FileNotFoundError, ValueError) as error:
        print(f"keras_vae.export: error: {error}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out) if args.out else model_path.parent / "export"
    try:
        model = load_model_file(model_path)
    except runs.CorruptRunError as error:
        print(f"keras_vae.export: error: {error}", file=sys.stderr)
        return EXIT_CORRUPT
    try:
        manifest = api.export_all(model, out, name=args.name, version=args.version,
                                  overwrite=args.overwrite, formats=formats, opset=args.opset)
    except (FileExistsError, verify.ExportCheckError, NotImplementedError) as error:
        print(f"keras_vae.export: error: {error}", file=sys.stderr)
        return 1
    print(f"Exported to {out} (manifest.json):")
    print("\n".join(summary_lines(manifest, out)))
    return 0


__all__ = ["EXPORT_OPTIONS", "VERIFY_OPTIONS", "register", "run", "run_verify", "export_run",
           "verify_run", "summary_lines", "find_model", "load_model_file", "module_parser",
           "module_main"]
