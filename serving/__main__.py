"""`python -m keras_vae.serving COMMAND ...`

Commands:
  serve   the development server speaking TF Serving's REST and gRPC APIs
          (production is TF Serving: see keras_vae/serving/tf_serving/)
  web     the browser sampler page (onnxruntime-web) for an export folder, on localhost
"""

import sys

__all__ = ["main"]


def main(argv=None):
    """Runs one command (serve, web) with its arguments; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    command, rest = argv[0], argv[1:]
    if command == "serve":
        from keras_vae.serving.server import main as serve_main

        return serve_main(rest)
    if command == "web":
        from keras_vae.serving.webapp import main as web_main

        return web_main(rest)
    print(f"unknown command {command!r}\n\n{__doc__.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
