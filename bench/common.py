"""Shared helpers of the benchmark suite: environment, data, machine facts, timing.

Import this module before TensorFlow or Keras: it seeds KERAS_HOME (Keras reads
it at import) from ../shared/datasets when that folder exists, through a symlink
in a temporary folder, so nothing is ever written into ../shared. Without it
`keras.datasets` downloads MNIST as it does for any user.
"""

import datetime
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = pathlib.Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED_DATASETS = pathlib.Path(
    os.environ.get("KERAS_VAE_SHARED_DATASETS", REPO.parent / "shared" / "datasets")
)


def seed_keras_home():
    """Points KERAS_HOME at a temporary folder whose datasets/ links to ../shared/datasets."""
    if "KERAS_HOME" in os.environ or not (SHARED_DATASETS / "mnist.npz").is_file():
        return os.environ.get("KERAS_HOME")
    home = pathlib.Path(tempfile.mkdtemp(prefix="keras_vae_bench_home_"))
    (home / "datasets").symlink_to(SHARED_DATASETS, target_is_directory=True)
    os.environ["KERAS_HOME"] = str(home)
    return str(home)


def setup_environment(device="cpu", threads=None):
    """Environment variables that must be set before TF / torch are imported.

    `threads`: TF's intra- and inter-op pools and OpenMP (oneDNN, torch) get that many
    threads (None: the libraries' defaults).
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if threads is not None:
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            os.environ[name] = str(int(threads))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the same code, pinned to the CPU
    seed_keras_home()


def keras_settings(args):
    """(jit_compile, steps_per_execution) for parts that do not measure them.

    --jit / --steps-per-execution when given; else XLA only on a GPU (what part 1
    measured best on CPU, and Keras's own 'auto') and 50 steps per execution.
    """
    jit = args.jit if args.jit is not None else args.device == "gpu"
    return bool(jit), int(args.steps_per_execution or 50)


# --------------------------------------------------------------------------- data


def load_mnist():
    """MNIST intensities in [0, 1], float32, (x_train [60000, 28, 28, 1], x_test [10000, ...])."""
    import keras
    import numpy as np

    (x_train, _), (x_test, _) = keras.datasets.mnist.load_data()
    x_train = (x_train[..., None] / 255.0).astype(np.float32)
    x_test = (x_test[..., None] / 255.0).astype(np.float32)
    return x_train, x_test


def binarize(x, seed):
    """One Bernoulli draw per pixel with p = intensity (the 'dynamic' binarisation)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)


# --------------------------------------------------------------------------- machine


def _read(path):
    try:
        return pathlib.Path(path).read_text()
    except OSError:
        return ""


def machine_info():
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags")), [])
    meminfo = _read("/proc/meminfo")
    mem_kb = next((int(line.split()[1]) for line in meminfo.splitlines()
                   if line.startswith("MemTotal")), 0)
    gpu = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            gpu = out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "cpu_flags_simd": sorted(f for f in flags if f.startswith(("avx", "fma", "amx", "sse4"))),
        "memory_gib": round(mem_kb / 2**20, 1),
        "gpu": gpu,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions():
    import importlib.metadata as md

    out = {}
    for name in ("tensorflow", "keras", "tensorflow-probability", "numpy", "torch",
                 "onnxruntime", "onnx", "tf2onnx", "ai-edge-litert", "keras-vae"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def load_average():
    return [round(v, 2) for v in os.getloadavg()]


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def peak_rss_mib():
    """Peak resident set size of this process so far, MiB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- timing


def median(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, q):
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def interleave(fns, rounds):
    """Runs fns[0], fns[1], ..., fns[0], fns[1], ... `rounds` times; returns [rounds][len(fns)]."""
    results = []
    for _ in range(rounds):
        results.append([fn() for fn in fns])
    return results


def ratio_summary(pairs):
    """pairs: [(a, b), ...] measured back to back. Median of a/b, and its spread."""
    ratios = [a / b for a, b in pairs]
    return {
        "median": round(median(ratios), 3),
        "min": round(min(ratios), 3),
        "max": round(max(ratios), 3),
        "n": len(ratios),
    }


#: A contender whose per-round figures spread by more than this is flagged (noisy run).
SPREAD_LIMIT = 0.25


def spread(values):
    """(max - min) / median of one contender's per-round figures."""
    values = [v for v in values if v == v]
    if len(values) < 2:
        return 0.0
    return (max(values) - min(values)) / median(values)


def fair_rounds(keras_trial, torch_runner, steps, rounds, thread_options=None):
    """Interleaved rounds, each with each contender's best thread setting for that round.

    Round r: keras_vae (its default thread pools) and the PyTorch reference at every
    thread count in `thread_options` (1 and all cores), in an order that alternates
    between rounds (keras first on even rounds, PyTorch first on odd ones); the round's
    PyTorch figure is its best thread count's. OpenMP threads collapse when another
    process holds a core (16,088 -> 1,685 ex/s measured); one thread does not, so the
    best of the two is what a careful PyTorch user would get in that minute.

    Returns:
      A dict: per-round rows (keras, torch best, torch per thread count, cpu-time ratio,
      load), the median of the per-round ratios, each contender's spread and the flag.
    """
    options = thread_options or sorted({1, os.cpu_count() or 1})
    rows = []
    for r in range(rounds):
        load = load_average()[0]

        def run_torch():
            got = {}
            for n in options:
                torch_runner.set_threads(n)
                got[n] = (torch_runner.trial(steps), torch_runner.cpu_per_example)
            return got

        if r % 2 == 0:
            k = keras_trial(steps)
            k_cpu = getattr(keras_trial.__self__, "cpu_per_example", float("nan"))
            t = run_torch()
        else:
            t = run_torch()
            k = keras_trial(steps)
            k_cpu = getattr(keras_trial.__self__, "cpu_per_example", float("nan"))
        best = max(t, key=lambda n: t[n][0])
        rows.append({"keras": round(k, 1), "torch": round(t[best][0], 1), "torch_threads": best,
                     "torch_by_threads": {str(n): round(v[0], 1) for n, v in t.items()},
                     "ratio": round(k / t[best][0], 3),
                     "ratio_by_cpu_time": round(t[best][1] / k_cpu, 3),
                     "load_average_1min": load})
    keras_spread = spread([row["keras"] for row in rows])
    torch_spread = spread([row["torch"] for row in rows])
    return {
        "keras_examples_per_s": round(median([row["keras"] for row in rows]), 1),
        "torch_examples_per_s": round(median([row["torch"] for row in rows]), 1),
        "ratio": ratio_summary([(row["keras"], row["torch"]) for row in rows]),
        "ratio_by_cpu_time": round(median([row["ratio_by_cpu_time"] for row in rows]), 3),
        "spread": {"keras": round(keras_spread, 3), "torch": round(torch_spread, 3)},
        "noisy": max(keras_spread, torch_spread) > SPREAD_LIMIT,
        "rounds": rows,
    }


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def log(*args):
    print(f"[{time.strftime('%H:%M:%S')}]", *args, flush=True)


def write_text(path, text):
    """Writes text atomically (a temporary file beside it, then a rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def python():
    return sys.executable
