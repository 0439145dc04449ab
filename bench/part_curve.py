"""Part curve: test NLL against seconds of training, keras_vae vs PyTorch (bench/learning_curve.py).

`--parts curve` runs bench/learning_curve.py in its own process (20 minutes of training
each, ~50 min wall; --quick: 1 minute each, written beside results.json, not over the
recorded curve). The default suite does not run it: its table shows the recorded run,
bench/learning_curve.json, with that run's date (`recorded`).

Target (issue 12): keras_vae's test NLL at or below PyTorch's at every checkpoint after
the first minute of training.
"""

import json
import pathlib
import subprocess
import sys

import common

RECORDED = common.BENCH / "learning_curve.json"


def run(args):
    out = RECORDED if not args.quick else pathlib.Path(args.out).parent / "learning_curve_quick.json"
    cmd = [sys.executable, str(common.BENCH / "learning_curve.py"), "--out", str(out),
           "--minutes", "1" if args.quick else "20"]
    subprocess.run(cmd, check=True)
    return load(out, recorded=False)


def load(path=RECORDED, recorded=True):
    """The result of a learning-curve run, as this part reports it."""
    curve = json.loads(pathlib.Path(path).read_text())
    return {"recorded": recorded, "path": str(path), "date": curve["date"],
            "protocol": curve["protocol"], "curves": curve["curves"],
            "load_average_start": curve.get("load_average_start"),
            "load_average_end": curve.get("load_average_end"),
            "keras_at_or_below_after_first_minute":
                curve.get("keras_at_or_below_after_first_minute")}


def rows(result):
    keras, torch = result["curves"]["keras_vae"], result["curves"]["pytorch"]
    minutes = result["protocol"]["minutes_each"]
    first_minute = 60 * minutes / 20
    pairs = [(a, b) for a, b in zip(keras, torch) if b["train_s"] > first_minute]
    below = sum(a["nll"] <= b["nll"] for a, b in pairs)
    clock = result["protocol"].get("clock", "wall seconds")
    when = f"recorded run of {result['date']}" if result["recorded"] else result["date"]
    out = [(f"learning curve, IWAE net k=5, {minutes:g} min each ({clock}; {when}): "
            f"checkpoints after the first minute where keras_vae's NLL <= PyTorch's",
            f"{below} of {len(pairs)}", "", "", "all", bool(pairs) and below == len(pairs))]
    if keras and torch:
        a, b = keras[-1], torch[-1]
        out.append((f"test NLL (k=1000, 1,000 images) after {a['train_s']:.0f} s / "
                    f"{b['train_s']:.0f} s of training", f"{a['nll']:.2f} nats",
                    f"{b['nll']:.2f} nats", round(a["nll"] - b["nll"], 2), "", None))
    return out
