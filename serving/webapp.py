"""The browser sampler page (``serving/web``): serve it on localhost, or build a static site.

The page needs three things on one origin, and nothing from the internet:

* ``/``        the page itself (``keras_vae/serving/web``: index.html, app.js, grid.mjs)
* ``/ort/``    onnxruntime-web's ``dist`` files (from ``npm ci --prefix keras_vae/serving/node``)
* ``/model/``  an export folder (``manifest.json``, ``onnx/sampler.onnx``, ...)

```
python -m keras_vae.serving web out/ --port 8000     # then open http://127.0.0.1:8000/
python -m keras_vae.serving web out/ --build site/   # a static folder for any web server
```
"""

import argparse
import os
import pathlib
import shutil
import sys
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

WEB_DIR = pathlib.Path(__file__).resolve().parent / "web"
NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"
DEFAULT_ORT_DIR = NODE_DIR / "node_modules" / "onnxruntime-web" / "dist"
#: The onnxruntime-web files the page loads (wasm backend, no threads, no WebGPU).
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_FILES = ("index.html", "app.js", "grid.mjs")
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


def _check_export(export_dir):
    export_dir = pathlib.Path(export_dir)
    if not (export_dir / "manifest.json").is_file() or not (export_dir / "onnx").is_dir():
        raise FileNotFoundError(
            f"{export_dir} is not an export folder (manifest.json and onnx/ expected; "
            "write one with keras_vae.export.export_all)")
    return export_dir


def build_site(export_dir, dest, ort_path=None):
    """Copies the page, onnxruntime-web's files and the export into one static folder.

    Returns the folder; serve it with any static web server (``.wasm`` as
    application/wasm), e.g. ``python -m http.server -d DEST``.
    """
    export_dir = _check_export(export_dir)
    ort_path = ort_dir(ort_path)
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES:
        shutil.copy2(WEB_DIR / name, dest / name)
    (dest / "ort").mkdir(exist_ok=True)
    for name in ORT_FILES:
        shutil.copy2(ort_path / name, dest / "ort" / name)
    model = dest / "model"
    (model / "onnx").mkdir(parents=True, exist_ok=True)
    shutil.copy2(export_dir / "manifest.json", model / "manifest.json")
    for onnx_file in (export_dir / "onnx").glob("*.onnx"):
        shutil.copy2(onnx_file, model / "onnx" / onnx_file.name)
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
                target = (root / rel).resolve()
                if root.resolve() in target.parents or target == root.resolve():
                    return str(target) if target.is_file() else _MISSING
        return _MISSING

    def list_directory(self, path):
        self.send_error(404, "not found")
        return None

    def guess_type(self, path):
        return MIME_TYPES.get(pathlib.Path(path).suffix, "application/octet-stream")

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def make_server(export_dir, host="127.0.0.1", port=8000, ort_path=None):
    """A ThreadingHTTPServer for the page (not started; port 0 picks a free one)."""
    export_dir = _check_export(export_dir).resolve()
    roots = {"/ort/": ort_dir(ort_path).resolve(), "/model/": export_dir, "/": WEB_DIR}
    handler = type("PageHandler", (_PageHandler,), {"roots": roots})
    server = _QuietServer((host, int(port)), handler)
    return server


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
    except FileNotFoundError as err:
        raise SystemExit(f"keras-vae web: {err}") from None
    return 0

