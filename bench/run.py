"""The keras_vae benchmark suite: one command, a table, bench/results.json and bench/results.md.

    python bench/run.py                  # the speed suite of issue 12 (train tfp eval export)
    python bench/run.py --quick          # the same, small (a smoke run, a few minutes)
    python bench/run.py --parts all      # every part (the curve alone takes ~50 min)
    python bench/run.py --parts train tfp
    python bench/run.py --device gpu --precision mixed_float16   # on a GPU machine

Parts: train (throughput vs PyTorch, settings, IWAE k vs the compute-bound ideal),
tfp (TFP overhead), eval (k=5000 test log-likelihood: time, peak RSS), export
(SavedModel / ONNX fp32 / ONNX int8 / TFLite latency and sizes), quality (test NLL
at an equal budget vs PyTorch and the IWAE paper), pixels (Fashion-MNIST 8-bit bits/dim
of the conv8 VAE beside a per-pixel histogram and the uniform 8 bits/dim), flows (IAF vs
diagonal q(z|x) at an equal budget, AIS vs IS k=5000, the BDMC gap), uses (clustering, linear
probe, class-conditional samples on full MNIST), curve (test NLL against seconds of training,
keras_vae vs PyTorch: bench/learning_curve.py). The default suite's table also shows the
recorded learning curve (bench/learning_curve.json, with its own date). PyTorch is needed for
train, quality and curve only (`pip install torch`); it is not a dependency of keras_vae.

Each part runs in its own Python process (its peak RSS is its own); the parent
records the date, the machine, the versions and the load average before and after.
"""

import argparse
import json
import pathlib
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402

PARTS = ("train", "tfp", "eval", "export", "quality", "pixels", "flows", "uses", "curve")
DEFAULT_PARTS = ("train", "tfp", "eval", "export")


def parser():
    p = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--parts", nargs="+", default=list(DEFAULT_PARTS),
                   help=f"parts to run, from {PARTS} or 'all' (space or comma separated; "
                        f"default: {' '.join(DEFAULT_PARTS)})")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="cpu hides any GPU (CUDA_VISIBLE_DEVICES=''); gpu lets TF and torch "
                        "use the first GPU")
    p.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"),
                   default="float32",
                   help="Keras global dtype policy for the keras_vae models (distribution "
                        "parameters stay float32) and torch.autocast for the reference")
    p.add_argument("--jit", choices=("true", "false"), default=None,
                   help="fix jit_compile instead of measuring both")
    p.add_argument("--steps-per-execution", type=int, default=None,
                   help="fix steps_per_execution instead of measuring 1, 10, 50")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="PyTorch intra-op threads (0: measure 1 and all cores, keep the faster)")
    p.add_argument("--eval-examples", type=int, default=None,
                   help="test images in the k=5000 log-likelihood timing (default: 10000; "
                        "--quick 200)")
    p.add_argument("--quality-epochs", type=int, default=None,
                   help="epochs per model in the quality part (default 4; --quick 1)")
    p.add_argument("--quality-eval-examples", type=int, default=None,
                   help="test images for each quality NLL at k=5000 (default 1000; --quick 100)")
    p.add_argument("--out", default=str(common.BENCH / "results.json"))
    p.add_argument("--markdown", default=str(common.BENCH / "results.md"))
    p.add_argument("--part-timeout", type=int, default=3600,
                   help="seconds before a part's process is stopped")
    p.add_argument("--_part", help=argparse.SUPPRESS)
    p.add_argument("--_result", help=argparse.SUPPRESS)
    return p


def _normalize_parts(parts):
    names = [n.strip() for item in parts for n in item.split(",") if n.strip()]
    if "all" in names:
        return list(PARTS)
    for name in names:
        if name not in PARTS:
            raise SystemExit(f"unknown part {name!r}; choose from {PARTS}")
    return [n for n in PARTS if n in names]


def part_module(name):
    import importlib

    return importlib.import_module(f"part_{name}")


def child(args):
    """Runs one part in this process and writes its result (JSON) to args._result."""
    common.setup_environment(args.device)
    from keras_vae._backend import keras, tf  # noqa: F401

    if args.precision != "float32":
        keras.mixed_precision.set_global_policy(args.precision)
    if args.jit is not None:
        args.jit = args.jit == "true"
    module = part_module(args._part)
    start = time.perf_counter()
    load_start = common.load_average()
    result = module.run(args)
    result["_part"] = {
        "wall_s": round(time.perf_counter() - start, 1),
        "process_peak_rss_mib": round(common.peak_rss_mib(), 1),
        "load_average_start": load_start,
        "load_average_end": common.load_average(),
        "tf_devices": [d.name for d in tf.config.list_logical_devices()],
    }
    common.write_json(args._result, result)


def _fmt(value):
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return "" if value is None else str(value)


def table(results):
    header = ("part", "benchmark", "keras_vae", "reference", "ratio", "target", "met")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in PARTS:
        res = results["parts"].get(name)
        if res is None:
            continue
        if "error" in res:
            lines.append(f"| {name} | failed: {res['error'][:120]} | | | | | |")
            continue
        for row in part_module(name).rows(res):
            lines.append("| " + " | ".join([name] + [_fmt(v) for v in row]) + " |")
    return "\n".join(lines)


def markdown(results):
    m = results["machine"]
    v = results["versions"]
    head = (
        f"Benchmarks of {results['date']} on {m['cores']} cores of an {m['cpu_model']}, "
        f"{m['memory_gib']} GiB, {'GPU ' + m['gpu'] if m['gpu'] else 'no GPU'} "
        f"(`{results['command'].strip()}`, "
        f"{results['wall_s'] / 60:.0f} min; 1-minute load average {results['load_average_start'][0]} "
        f"at the start, {results['load_average_end'][0]} at the end, the suite's own work "
        f"included: on a shared machine, ratios measured back to back are the figures to read). "
        f"TensorFlow {v['tensorflow']}, Keras {v['keras']}, TFP {v['tensorflow-probability']}, "
        f"PyTorch {v['torch']}, onnxruntime {v['onnxruntime']}. Ratios are medians of "
        "back-to-back (interleaved) pairs.\n\n"
    )
    return head + table(results) + "\n"


def _add_recorded_curve(results, parts, quick):
    """The default suite's table shows the recorded learning curve (its own run and date)."""
    import part_curve

    if "curve" not in parts and not quick and part_curve.RECORDED.exists():
        results["parts"]["curve"] = part_curve.load()


def main(argv=None):
    args = parser().parse_args(argv)
    if args._part:
        return child(args)
    parts = _normalize_parts(args.parts)
    common.setup_environment(args.device)
    results = {
        "date": common.now_utc(),
        "command": "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "machine": common.machine_info(),
        "versions": common.versions(),
        "settings": {"device": args.device, "precision": args.precision, "jit": args.jit,
                     "steps_per_execution": args.steps_per_execution},
        "load_average_start": common.load_average(),
        "parts": {},
    }
    start = time.perf_counter()
    out_dir = pathlib.Path(args.out).parent
    for name in parts:
        common.log(f"part {name}: starting (load {common.load_average()})")
        result_file = out_dir / f".part_{name}.json"
        if result_file.exists():
            result_file.unlink()
        cmd = [sys.executable, __file__, "--_part", name, "--_result", str(result_file),
               "--device", args.device, "--precision", args.precision]
        for flag, value in (("--jit", args.jit), ("--steps-per-execution", args.steps_per_execution),
                            ("--eval-examples", args.eval_examples),
                            ("--quality-epochs", args.quality_epochs),
                            ("--quality-eval-examples", args.quality_eval_examples),
                            ("--torch-threads", args.torch_threads)):
            if value is not None:
                cmd += [flag, str(value)]
        if args.quick:
            cmd.append("--quick")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, timeout=args.part_timeout)
            if proc.returncode != 0 or not result_file.exists():
                results["parts"][name] = {"error": f"exit code {proc.returncode}"}
            else:
                results["parts"][name] = json.loads(result_file.read_text())
        except subprocess.TimeoutExpired:
            results["parts"][name] = {"error": f"timed out after {args.part_timeout} s"}
        finally:
            if result_file.exists():
                result_file.unlink()
        common.log(f"part {name}: done in {time.perf_counter() - t0:.0f} s")
    results["wall_s"] = round(time.perf_counter() - start, 1)
    results["load_average_end"] = common.load_average()
    _add_recorded_curve(results, parts, args.quick)
    common.write_json(args.out, results)
    text = markdown(results)
    common.write_text(args.markdown, text)
    print()
    print(text)
    failed = [n for n, r in results["parts"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
