r"""The `keras-vae` command: train, evaluate, picture, export, verify, compare and serve a VAE.

```none
keras-vae demo                                   # the first command: about a minute, offline
keras-vae train --out runs/a --objective iwae --k 5 --epochs 20
keras-vae train --out runs/a --resume            # continue a killed or interrupted run
keras-vae evaluate runs/a --k 1000               # -> runs/a/metrics.json and a table
keras-vae sample runs/a -n 64 --temperature 0.8 --seed 1 --out grid.png
keras-vae interpolate runs/a --pairs 4 --steps 10 --method slerp --out path.png
keras-vae export runs/a --format all             # -> runs/a/export (SavedModel, ONNX, TFLite)
keras-vae verify runs/a                          # each artefact against model.keras
keras-vae compare runs/a runs/b                  # side by side
keras-vae serve runs/a/export                    # keras_vae.serving's development server
```

Every option can also come from a YAML or JSON file (`--config FILE`): its keys
are the options' long names (`learning-rate` or `learning_rate`); flags given on
the command line win. A run folder's own config.json is such a file, so
`keras-vae train --config runs/a/config.json --out runs/b` repeats run a.

Exit codes: 0 success, 1 failure, 2 bad or conflicting arguments (unknown data
set, bad config file), 3 run folder missing, foreign or already used, 4 corrupt
checkpoint or model file, 130 interrupted (Ctrl-C; training saves a checkpoint
first). Errors print one line on stderr; `--debug` prints the traceback and
TensorFlow's C++ start-up log (hidden otherwise, see keras_vae/_backend.py).

Layout: one module per command (`train`, `evaluate`, `sample` with
`interpolate`, `export` with `verify`, `compare`, `serve`, `demo`), each a
`register(subparsers)` and a `run(args)` over library calls; `_app` (root
parser, `main`, the exit-code table), `_options` (the option rows and
`TrainConfig`), `_config` (--config files), `_common` (printing, a run's
data), `_errors` (exit codes and error types). The run folder is
`keras_vae.runs`.
"""

from keras_vae.cli._app import main, parse
from keras_vae.cli._errors import (
    EXIT_CORRUPT, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_RUN_FOLDER, EXIT_USAGE,
)
from keras_vae.cli._options import TRAIN_DEFAULTS, TrainConfig
from keras_vae.plotting import SAMPLE_TEMPERATURES
from keras_vae.runs import RUN_FORMAT, RUN_MARKER

__all__ = [
    "main", "parse", "EXIT_OK", "EXIT_FAILURE", "EXIT_USAGE", "EXIT_RUN_FOLDER",
    "EXIT_CORRUPT", "EXIT_INTERRUPTED", "TRAIN_DEFAULTS", "TrainConfig", "RUN_MARKER",
    "RUN_FORMAT", "SAMPLE_TEMPERATURES",
]
