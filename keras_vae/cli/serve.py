r"""`keras-vae serve ...`: the development model server of `keras_vae.serving`.

```none
keras-vae serve runs/a/export --rest_api_port 8501 --port 8500
keras-vae serve --help                   # the server's own options
```

Every argument after `serve` goes to `keras_vae.serving.server.main` as is
(this parser reads none of them). Production is TF Serving: see
keras_vae/serving/tf_serving/.
"""

import argparse
import importlib

from keras_vae import _util
from keras_vae.cli._errors import CommandFailed


def register(subparsers):
    # No prefix characters: every word, '--port' and '--help' included, is the server's.
    parser = subparsers.add_parser("serve", add_help=False, prefix_chars="\0",
                                   help="the development model server (keras_vae.serving); "
                                        "'keras-vae serve --help' for its options")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.set_defaults(run=run, option_table=())


def run(args):
    try:
        server = importlib.import_module("keras_vae.serving.server")
    except ImportError as error:
        raise CommandFailed(f"keras_vae.serving is not available: {_util.first_line(error)} "
                            "(install the extra: pip install 'keras-vae[serving]')") from error
    return int(server.main(list(args.args)) or 0)


__all__ = ["register", "run"]
