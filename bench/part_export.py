"""Part 4, exports: decode and sample latency through every runtime, and artefact sizes.

A keras_vae model with the default preset ('mlp': 784-512-256-16 and back, ReLU),
briefly trained, goes through `keras_vae.export.export_all` (SavedModel, ONNX
decoder / sampler / int8 sampler, TFLite). Then, from Python, one call at a time:

  decode(z)         z of batch 1 and 256
  sample(n, T)      n = 1 and 256

through the SavedModel (`tf.saved_model.load(...).signatures[...]`, inputs passed
as NumPy, outputs read back as NumPy: the cost a Python caller pays),
onnxruntime (decoder.onnx, sampler.onnx, sampler_int8.onnx; CPU provider, the
session options every keras_vae session uses, `keras_vae.export.runtimes.session_options`;
the batch-1 samplers also with onnxruntime's own defaults, for comparison), and the TFLite interpreter (signature runners). Runtimes take turns in
blocks of calls (interleaved) so a change in machine load hits all of them; p50 and
p99 over all calls, in microseconds.
"""

import pathlib
import shutil
import tempfile
import time

import common
import numpy as np

BATCHES = (1, 256)


def plan(quick):
    return {"blocks": 4 if quick else 10,
            "calls": {1: 50 if quick else 200, 256: 10 if quick else 30}, "warmup": 20}


def _dir_size(path):
    path = pathlib.Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _callables(paths, latent_dim, batch, library_options=True):
    """{runtime: {op: fn()}} for one batch size."""
    import onnxruntime as ort
    import tensorflow as tf
    from keras_vae.export import runtimes, tflite_export

    rng = np.random.default_rng(0)
    z = rng.standard_normal((batch, latent_dim)).astype(np.float32)
    fns = {}

    loaded = tf.saved_model.load(str(paths["savedmodel"]))
    sm_decode, sm_sample = loaded.signatures["decode"], loaded.signatures["sample"]
    fns["SavedModel (TF)"] = {
        "decode": lambda: {k: v.numpy() for k, v in sm_decode(z=tf.constant(z)).items()},
        "sample": lambda: {k: v.numpy() for k, v in sm_sample(  # export contract 2: per row
            seed=tf.range(batch, dtype=tf.int64), temperature=tf.ones([batch])).items()},
    }
    fns["_loaded"] = loaded  # keep alive

    def session(path):
        so = runtimes.session_options() if library_options else ort.SessionOptions()
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    dec = session(paths["onnx_decoder"])
    dec_in = dec.get_inputs()[0].name
    seeds = np.arange(batch, dtype=np.int64)
    t32 = np.ones(batch, np.float32)
    for label, key in (("onnxruntime fp32", "onnx_sampler"), ("onnxruntime int8", "onnx_sampler_int8")):
        s = session(paths[key])
        fns[label] = {"sample": (lambda s=s: s.run(None, {"seed": seeds, "temperature": t32}))}
    fns["onnxruntime fp32"]["decode"] = lambda: dec.run(None, {dec_in: z})

    interp = tflite_export.interpreter(paths["tflite"])
    t_decode = interp.get_signature_runner("decode")
    t_sample = interp.get_signature_runner("sample")
    fns["TFLite"] = {
        "decode": lambda: t_decode(z=z),
        "sample": lambda: t_sample(seed=seeds, temperature=t32),
    }
    return fns


def _measure(fns, blocks, calls, warmup):
    """Interleaved blocks; returns {runtime: {op: [microseconds, ...]}}."""
    times = {rt: {op: [] for op in ops} for rt, ops in fns.items() if not rt.startswith("_")}
    for rt, ops in times.items():
        for op in ops:
            for _ in range(warmup):
                fns[rt][op]()
    for _ in range(blocks):
        for rt, ops in times.items():
            for op in ops:
                fn = fns[rt][op]
                record = ops[op]
                for _ in range(calls):
                    t0 = time.perf_counter_ns()
                    fn()
                    record.append((time.perf_counter_ns() - t0) / 1e3)
    return times


def run(args):
    import kfit
    import models
    from keras_vae import export
    from keras_vae._backend import keras

    p = plan(args.quick)
    x_train, _ = common.load_mnist()
    keras.utils.set_random_seed(0)
    import keras_vae

    model = keras_vae.VAE(event_shape=models.EVENT_SHAPE, encoder="mlp", seed=0)
    model.initialize_output_bias(x_train)
    jit, spe = common.keras_settings(args)
    kfit.compile_model(model, jit_compile=jit, steps_per_execution=spe)
    kfit.fit_steps(model, kfit.index_dataset(x_train, 128, dynamic=True), 200)

    work = pathlib.Path(tempfile.mkdtemp(prefix="keras_vae_bench_export_"))
    try:
        start = time.perf_counter()
        export.export_all(model, work / "export")
        export_s = time.perf_counter() - start
        base = work / "export"
        paths = {
            "savedmodel": base / "savedmodel" / "vae" / "1",
            "onnx_decoder": base / "onnx" / "decoder.onnx",
            "onnx_sampler": base / "onnx" / "sampler.onnx",
            "onnx_sampler_int8": base / "onnx" / "sampler_int8.onnx",
            "tflite": base / "tflite" / "vae.tflite",
        }
        sizes = {k: _dir_size(v) for k, v in paths.items()}
        latency = {}
        for batch in BATCHES:
            fns = _callables(paths, model.latent_dim, batch)
            times = _measure(fns, p["blocks"], p["calls"][batch], p["warmup"])
            for rt, ops in times.items():
                for op, values in ops.items():
                    latency.setdefault(rt, {})[f"{op} batch {batch}"] = {
                        "p50_us": round(common.percentile(values, 50), 1),
                        "p99_us": round(common.percentile(values, 99), 1),
                        "calls": len(values),
                    }
            common.log(f"export latency batch {batch}: "
                       f"{ {rt: {op: v['p50_us'] for op, v in d.items() if op.endswith(f'batch {batch}')} for rt, d in latency.items()} }")
        # batch 1 samplers with onnxruntime's default session options, for comparison
        fns1 = _callables(paths, model.latent_dim, 1, library_options=False)
        one = _measure({"onnxruntime fp32": {"sample": fns1["onnxruntime fp32"]["sample"]},
                        "onnxruntime int8": fns1["onnxruntime int8"]},
                       p["blocks"], p["calls"][1], p["warmup"])
        for rt, ops in one.items():
            v = ops["sample"]
            latency[rt]["sample batch 1, onnxruntime defaults"] = {
                "p50_us": round(common.percentile(v, 50), 1),
                "p99_us": round(common.percentile(v, 99), 1), "calls": len(v)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    sm = latency["SavedModel (TF)"]["sample batch 1"]["p50_us"]
    ort_best = latency["onnxruntime fp32"]["sample batch 1"]["p50_us"]  # the library's options
    ort_default = latency["onnxruntime fp32"]["sample batch 1, onnxruntime defaults"]["p50_us"]
    return {
        "protocol": {"model": "preset 'mlp' (784-512-256-16, ReLU), 200 training steps",
                     **p, "timer": "time.perf_counter_ns around one Python call"},
        "export_all_s": round(export_s, 1),
        "sizes_bytes": sizes,
        "int8_size_ratio": round(sizes["onnx_sampler"] / sizes["onnx_sampler_int8"], 2),
        "latency_us": latency,
        "onnx_sampler_b1_p50_us": ort_best,
        "onnx_sampler_b1_p50_us_ort_defaults": ort_default,
        "savedmodel_over_onnx_sampler_b1": round(sm / ort_best, 1),
    }


def rows(result):
    out = []
    lat = result["latency_us"]
    for batch in BATCHES:
        for op in ("sample", "decode"):
            key = f"{op} batch {batch}"
            cells = []
            for rt in ("SavedModel (TF)", "onnxruntime fp32", "onnxruntime int8", "TFLite"):
                if key in lat.get(rt, {}):
                    v = lat[rt][key]
                    cells.append(f"{rt}: {v['p50_us']:.0f} / {v['p99_us']:.0f}")
            out.append((f"{key}: p50 / p99 (us)", "; ".join(cells), "", "", "", None))
    ort = result["onnx_sampler_b1_p50_us"]
    out.append(("ONNX fp32 sampler batch 1, p50 (us), keras_vae session options", ort,
                f"{result['onnx_sampler_b1_p50_us_ort_defaults']} with onnxruntime's defaults",
                "", "<= 100 us", ort <= 100))
    r = result["savedmodel_over_onnx_sampler_b1"]
    out.append(("SavedModel / ONNX sampler, batch 1 p50", "", "", f"{r}x", ">= 10x", r >= 10))
    s = result["sizes_bytes"]
    out.append(("sizes (KiB): SavedModel / decoder.onnx / sampler.onnx / int8 / tflite",
                " / ".join(f"{s[k] / 1024:.0f}" for k in ("savedmodel", "onnx_decoder",
                                                          "onnx_sampler", "onnx_sampler_int8",
                                                          "tflite")),
                "", f"{result['int8_size_ratio']}x", "int8 >= 3x smaller",
                result["int8_size_ratio"] >= 3))
    return out
