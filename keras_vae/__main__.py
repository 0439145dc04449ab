"""`python -m keras_vae ...` runs the `keras-vae` command (see keras_vae/cli.py)."""

import sys

from keras_vae.cli import main

if __name__ == "__main__":
    sys.exit(main())
