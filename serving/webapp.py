"""The browser sampler page (``serving/web``): serve it on localhost, or build a static site.

The page needs three things on one origin, and nothing from the internet:

* ``/``        the page itself (``keras_vae/serving/web``: index.html, app.js, grid.mjs,
               manifest.mjs)
* ``/ort/``    onnxruntime-web's ``dist`` files (from ``npm ci --prefix keras_vae/serving/node``)
* ``/model/``  an export folder (``manifest.json`` and the ONNX files it lists)

```
python -m keras_vae.serving web out/ --port 8000     # then open http://127.0.0.1:8000/
python -m keras_vae.serving web out/ --build site/   # a static folder for any web server
```
"""

import argparse
import os
import pathlib
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler

from keras_vae import _util
from keras_vae.export import contract
from keras_vae.export import manifest as export_manifest
from keras_vae.serving._http import QuietHTTPServer

__all__ = ["WEB_DIR", "ORT_FILES", "PAGE_FILES", "ort_dir", "build_site", "make_server",
           "serve_web", "main"]

WEB_DIR = pathlib.Path(__file__).resolve().parent / "web"
NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"
DEFAULT_ORT_DIR = NODE_DIR / "node_modules" / "onnxruntime-web" / "dist"
#: The onnxruntime-web files the page loads (wasm backend, no threads, no WebGPU).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.js", "grid.mjs", "manifest.mjs")
MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".map": "application/json",
}


def ort_dir(path=None):
    """onnxruntime-web's dist folder, or a clear error saying how to install it.

    Looks at `path`, then $KERAS_VAE_ORT_DIR, then node/node_modules beside this module.
    """
    path = pathlib.Path(path or os.environ.get("KERAS_VAE_ORT_DIR") or DEFAULT_ORT_DIR)
    missing = [f for f in ORT_FILES if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"onnxruntime-web is not installed at {path} (missing {missing}); run "
            f"`npm ci --prefix {NODE_DIR}` (needs the npm registry only)")
    return path


def _onnx_files(export_dir):
    """The export folder's ONNX files, {role: path}, read from its manifest.

    Raises:
      FileNotFoundError: no manifest, or no ONNX sampler in it or on disk.
      keras_vae.export.manifest.ManifestError: a manifest this reader does not understand.
    """
    manifest = export_manifest.load(export_dir)
    files = {role: export_manifest.onnx_file(manifest, role, export_dir)
             for role in contract.ONNX_FILES
             if contract.onnx_artefact(role) in manifest["artefacts"]}
    if "sampler" not in files or not files["sampler"].is_file():
        raise FileNotFoundError(
            f"{export_dir} has no ONNX sampler (its manifest lists "
            f"{sorted(manifest['artefacts'])}; export with formats including 'onnx')")
    return files


def build_site(export_dir, dest, ort_path=None):
    """Copies the page, onnxruntime-web's files and the export into one static folder.

    Returns the folder; serve it with any static web server (``.wasm`` as
    application/wasm), e.g. ``python -m http.server -d DEST``.
    """
    files = _onnx_files(export_dir)
    ort_path = ort_dir(ort_path)
    export_dir = pathlib.Path(export_dir)
    dest = pathlib.Path(dest)
    copies = {dest / name: WEB_DIR / name for name in PAGE_FILES}
    copies.update({dest / "ort" / name: ort_path / name for name in ORT_FILES})
    copies[dest / "model" / contract.MANIFEST_FILE] = export_dir / contract.MANIFEST_FILE
    copies.update({dest / "model" / path.relative_to(export_dir): path for path in files.values()})
    for target, source in copies.items():
        _util.atomic_write_bytes(target, source.read_bytes())
    return dest


_MISSING = "/nonexistent/keras-vae-404"


class _PageHandler(SimpleHTTPRequestHandler):
    """Static files from three roots, read-only, no directory listings."""

    roots = {}

    def log_message(self, fmt, *args):  # quiet
        pass

    def translate_path(self, path):
        path = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if path in ("", "/"):
            path = "/index.html"
        for prefix, root in self.roots.items():
            if path.startswith(prefix):
                rel = path[len(prefix):].lstrip("/")
                try:
                    target = (root / rel).resolve()
                    inside = root.resolve() in target.parents or target == root.resolve()
                    return str(target) if inside and target.is_file() else _MISSING
                except (OSError, ValueError):     # a name too long, a NUL byte
                    return _MISSING
        return _MISSING

    def send_head(self):
        """400 for a path that no file can have (a NUL byte, bad escapes), else the file."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if "\0" in path or "\0" in self.path:
            self.send_error(400, "bad request: the URL holds a NUL byte")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "not found")
        return None

    def guess_type(self, path):
        return MIME_TYPES.get(pathlib.Path(path).suffix, "application/octet-stream")

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def make_server(export_dir, host="127.0.0.1", port=8000, ort_path=None):
    """A ThreadingHTTPServer for the page (not started; port 0 picks a free one)."""
    _onnx_files(export_dir)
    roots = {"/ort/": ort_dir(ort_path).resolve(), "/model/": pathlib.Path(export_dir).resolve(),
             "/": WEB_DIR}
    handler = type("PageHandler", (_PageHandler,), {"roots": roots})
    return QuietHTTPServer((host, int(port)), handler)


def serve_web(export_dir, host="127.0.0.1", port=8000, ort_path=None, block=True):
    """Serves the sampler page for an export folder; blocks unless block=False.

    Returns the server (``server.server_address`` has the port; call
    ``server.shutdown()`` when block=False).
    """
    server = make_server(export_dir, host, port, ort_path)
    if not block:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
    print(f"keras-vae sampler page: http://{host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return server


def main(argv=None):
    """`python -m keras_vae.serving web EXPORT_DIR [--port 8000] [--build DEST]`."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_vae.serving web",
        description="The browser sampler page (onnxruntime-web) for an export folder.")
    parser.add_argument("export_dir", help="export folder (manifest.json, onnx/)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ort-dir", default=None,
                        help=f"onnxruntime-web dist folder (default {DEFAULT_ORT_DIR})")
    parser.add_argument("--build", metavar="DEST", default=None,
                        help="write a static site into DEST instead of serving")
    args = parser.parse_args(argv)
    try:
        if args.build:
            print(build_site(args.export_dir, args.build, args.ort_dir))
        else:
            serve_web(args.export_dir, args.host, args.port, args.ort_dir)
    except (FileNotFoundError, export_manifest.ManifestError) as err:
        raise SystemExit(f"keras-vae web: {err}") from None
    return 0

