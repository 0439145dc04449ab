"""`python -m keras_vae ...` runs the `keras-vae` command (see keras_vae/cli/)."""

import sys

from keras_vae.cli import main

__all__ = []

if __name__ == "__main__":
    sys.exit(main())
