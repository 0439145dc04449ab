"""Small helpers shared by the library, the CLI and the exporters (no TensorFlow here).

- `jsonable(value)`: a JSON-safe copy of configs and reports (numpy to Python, tuples to lists);
- `versions(packages)`: the installed versions of the named distributions;
- `atomic_write_bytes/text/json(path, ...)`: write a temporary file beside the target,
  flush and fsync it, then rename it over the target, so a reader (or a crash) sees the
  old file or the new one, never a truncated mixture;
- `first_line(error)`: the line of an exception worth printing to a user.
"""

import importlib.metadata
import json
import math
import os
import pathlib
import platform
import tempfile

import numpy as np

#: The distributions whose versions reports and manifests record.
PACKAGES = ("keras-vae", "tensorflow", "keras", "tensorflow-probability", "numpy", "onnx",
            "tf2onnx", "onnxruntime", "ai-edge-litert")


def jsonable(value, finite=False):
    """A JSON-safe copy of `value`: dicts, lists, numpy scalars/arrays, paths; else str.

    Args:
      value: any nesting of dicts, lists and tuples.
      finite: if True, NaN and +-Inf become None (strict JSON); otherwise they stay
        floats (Python's json writes them as NaN / Infinity).
    """
    if isinstance(value, dict):
        return {str(key): jsonable(item, finite) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item, finite) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), finite)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and finite and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def versions(packages=PACKAGES):
    """{'python': ..., package: version or None} for the installed distributions."""
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def atomic_write_bytes(path, data):
    """Writes `data` to `path` atomically (temp file in the same folder, fsync, rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_path(path.parent)


def atomic_write_npy(path, array):
    """`atomic_write_bytes` of `np.save`'s bytes of `array`."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_text(path, text):
    """`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj, finite=False):
    """Writes `jsonable(obj)` as indented JSON (with a final newline), atomically."""
    text = json.dumps(jsonable(obj, finite), indent=2, allow_nan=not finite) + "\n"
    atomic_write_text(path, text)


def fsync_path(path):
    """Flushes a file, or a folder's entries (a rename inside it), to disk where the platform
    allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def first_line(error):
    """The first meaningful line of an exception's message (at most 300 characters)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    line = lines[0] if not lines[0].endswith(":") else lines[-1]
    return line if len(line) <= 300 else line[:297] + "..."


__all__ = [
    "PACKAGES", "jsonable", "versions", "atomic_write_bytes", "atomic_write_npy", "atomic_write_text",
    "atomic_write_json", "fsync_path", "first_line",
]
