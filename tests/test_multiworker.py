"""Two-worker training with MultiWorkerMirroredStrategy on localhost matches one process.

The test starts two worker processes (tests/multiworker_worker.py) with TF_CONFIG
naming two free ports on 127.0.0.1, plus one plain single-process run, all
training the same tiny keras_vae model from the same initial weights for a few
steps on the same global batches (each worker taking its half of every global
batch, via `distribute_datasets_from_function`). It checks that

* both workers end with the same weights (the all-reduce kept them in sync), and
  with the same per-step losses;
* the weights moved (training happened) and no step was skipped as non-finite;
* the two-worker result equals the single-process result: the loss averaged over
  the global batch (`tf.nn.compute_average_loss`) and summed gradients across
  workers give the single-process gradient.

The training noise eps of the reparameterisation z = loc + sigma * eps cannot be
drawn identically by two workers (each draws [S, B/2, d]) and one process (which
draws [S, B, d]). So the model's posterior scale is made negligible instead:
min_scale = 0 and the scale head's bias at -30, i.e. sigma = softplus(-30) ~ 1e-13,
so z = loc to float32 precision and every process computes the same
deterministic gradients (the analytic KL still trains the head). What remains is
float rounding from a different summation order, hence the tolerances.

Every subprocess runs under a timeout, so a worker waiting for a peer that died
cannot hang the suite.
"""

import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np

WORKER = pathlib.Path(__file__).with_name("multiworker_worker.py")
TIMEOUT_S = 240  # a hang guard; the test takes ~30-60 s on 2 idle cores


def _free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _env():
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Two TF processes on a small machine: keep each from taking every core.
    env.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    env.setdefault("TF_NUM_INTEROP_THREADS", "2")
    return env


def _start(args, log):
    return subprocess.Popen([sys.executable, str(WORKER), *args], stdout=log,
                            stderr=subprocess.STDOUT, env=_env(), cwd=str(WORKER.parent))


def _wait_all(procs, deadline):
    """Waits for every process until the deadline; kills the rest on timeout; returns codes."""
    codes = []
    try:
        for p in procs:
            remaining = max(1.0, deadline - time.monotonic())
            codes.append(p.wait(timeout=remaining))
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        return None
    return codes


def _load(path):
    with np.load(path) as f:
        weights = [f[f"w{i}"] for i in range(sum(k.startswith("w") for k in f.files))]
        initial = [f[f"init{i}"] for i in range(sum(k.startswith("init") for k in f.files))]
        return {"weights": weights, "initial": initial, "losses": f["losses"],
                "max_posterior_scale": float(f["max_posterior_scale"]),
                "nonfinite_steps": int(f["nonfinite_steps"])}


def _run_cluster(tmp_path, attempt):
    ports = _free_ports(2)
    workers = ",".join(f"127.0.0.1:{p}" for p in ports)
    logs, procs, outs = [], [], []
    for index in range(2):
        out = tmp_path / f"worker{index}_{attempt}.npz"
        log = open(tmp_path / f"worker{index}_{attempt}.log", "w")
        logs.append(log)
        outs.append(out)
        procs.append(_start(["--out", str(out), "--workers", workers, "--index", str(index)], log))
    single_out = tmp_path / f"single_{attempt}.npz"
    single_log = open(tmp_path / f"single_{attempt}.log", "w")
    logs.append(single_log)
    procs.append(_start(["--out", str(single_out)], single_log))
    codes = _wait_all(procs, time.monotonic() + TIMEOUT_S)
    for log in logs:
        log.close()
    text = "\n".join(
        f"--- {p.name}\n" + p.read_text()[-3000:]
        for p in sorted(tmp_path.glob(f"*_{attempt}.log")))
    return codes, outs, single_out, text


def test_two_workers_match_each_other_and_one_process(tmp_path):
    start = time.monotonic()
    codes, outs, single_out, logs = _run_cluster(tmp_path, 0)
    if codes is not None and codes[:2] != [0, 0] and "address already in use" in logs.lower():
        codes, outs, single_out, logs = _run_cluster(tmp_path, 1)  # a port was taken: retry once
    assert codes is not None, f"timed out after {TIMEOUT_S} s:\n{logs}"
    assert codes == [0, 0, 0], f"exit codes {codes}:\n{logs}"

    w0, w1, single = (_load(p) for p in (*outs, single_out))
    for run in (w0, w1, single):
        assert run["nonfinite_steps"] == 0
        assert run["max_posterior_scale"] < 1e-10  # the noise really was negligible
        assert len(run["losses"]) > 0 and np.all(np.isfinite(run["losses"]))

    # Same starting point everywhere, and training moved it.
    for a, b in zip(w0["initial"], single["initial"]):
        np.testing.assert_array_equal(a, b)
    moved = max(float(np.max(np.abs(w - i))) for w, i in zip(single["weights"], single["initial"]))
    assert moved > 1e-3, moved

    # The two workers hold identical replicas.
    assert len(w0["weights"]) == len(w1["weights"]) == len(single["weights"])
    for a, b in zip(w0["weights"], w1["weights"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(w0["losses"], w1["losses"], rtol=1e-6)

    # ... equal to one process on the same global batches.
    for a, b in zip(w0["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w0["losses"], single["losses"], rtol=1e-4)
    assert time.monotonic() - start < TIMEOUT_S + 30
