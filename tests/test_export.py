"""Export: SavedModel (TF Serving layout), ONNX decoder / sampler / int8 sampler, TFLite, manifest.

One tiny MLP VAE (hidden 64, d = 8) trained one epoch on 500 MNIST digits is
exported once (`export_all` from its .keras file); the tests read the artefacts
back with each runtime's own loader, independently of the exporter's checks.
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import keras
import keras_vae
from keras_vae import networks
from keras_vae import priors as priors_lib
from keras_vae import export
from keras_vae.export import graphs
from keras_vae.export import prng
from keras_vae.export import reference as reference_lib
from keras_vae.export import spec as spec_lib
from keras_vae.export import onnx_export
from keras_vae.export import savedmodel as savedmodel_lib
from keras_vae.export import verify

LATENT = 8
EVENT = (28, 28, 1)
ROOT_FILES = {"savedmodel/vae/1", "onnx/decoder.onnx", "onnx/sampler.onnx",
              "onnx/sampler_int8.onnx", "tflite/vae.tflite", "manifest.json"}


def _tiny_vae(prior="normal", seed=0):
    return keras_vae.VAE(
        latent_dim=LATENT, event_shape=EVENT, prior=prior, seed=seed,
        encoder=networks.build_encoder("mlp", EVENT, hidden_units=(64,)),
        decoder=networks.build_decoder("mlp", LATENT, EVENT, hidden_units=(64,)),
    )


@pytest.fixture(scope="module")
def trained(mnist_binary, tmp_path_factory):
    """(model, .keras path): one short epoch on 500 digits."""
    x = mnist_binary[0][:500]
    model = _tiny_vae()
    model.initialize_output_bias(x)
    model.compile(optimizer="adam")
    model.fit(x, epochs=1, batch_size=100, verbose=0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """(out_dir, manifest) of export_all from the .keras file."""
    out = tmp_path_factory.mktemp("export") / "out"
    manifest = export.export_all(trained[1], out)
    return out, manifest


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _keras_decode(model, z):
    return {k: np.asarray(v) for k, v in model.decoder_parameters(z).items()}


def _assert_decoded(got, want):
    """Images and probabilities within 1e-5; logits within 1e-5 relative (beyond |1|)."""
    for key in ("mean", "probs", "logits"):
        got_, want_ = np.asarray(got[key], "float64"), np.asarray(want[key], "float64")
        assert got_.shape == want_.shape, key
        scale = np.maximum(1.0, np.abs(want_)) if key == "logits" else 1.0
        assert np.max(np.abs(got_ - want_) / scale) <= 1e-5, key


def _z(rows=6, seed=3):
    return np.random.default_rng(seed).standard_normal((rows, LATENT)).astype("float32")


def _run_python(code, cwd, timeout=300):
    """Runs `code` in a fresh interpreter outside the repository; returns stdout."""
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# ------------------------------------------------------------------ layout and manifest


def test_layout_has_every_artefact_and_no_leftovers(exported):
    out, _ = exported
    for rel in ROOT_FILES:
        assert (out / rel).exists(), rel
    assert (out / "savedmodel/vae/1/saved_model.pb").is_file()
    leftovers = [str(p.relative_to(out)) for p in out.rglob(".*")]
    assert leftovers == [], f"temporary folders left behind: {leftovers}"


def test_manifest_file_facts_match_the_files(exported):
    out, manifest = exported
    assert export.load_manifest(out / "manifest.json") == manifest
    artefacts = manifest["artefacts"]
    assert set(artefacts) == {"savedmodel", "onnx_decoder", "onnx_sampler", "onnx_sampler_int8",
                              "tflite"}
    assert {a["path"] for a in artefacts.values()} | {"manifest.json"} == ROOT_FILES
    for key, entry in artefacts.items():
        path = out / entry["path"]
        if key == "savedmodel":
            files = sorted(p for p in path.rglob("*") if p.is_file())
            listed = {f["path"]: f for f in entry["files"]}
            assert sorted(listed) == [p.relative_to(path).as_posix() for p in files]
            for p in files:
                rel = p.relative_to(path).as_posix()
                assert listed[rel]["size_bytes"] == p.stat().st_size
                assert listed[rel]["sha256"] == _sha256(p)
            assert entry["size_bytes"] == sum(p.stat().st_size for p in files)
            assert (entry["base_path"], entry["model_name"], entry["version"]) == (
                "savedmodel", "vae", 1)
        else:
            assert entry["size_bytes"] == path.stat().st_size, key
            assert entry["sha256"] == _sha256(path), key


def test_manifest_model_versions_and_parity(exported):
    _, manifest = exported
    assert manifest["model"] == {
        "latent_dim": LATENT, "event_shape": list(EVENT), "likelihood": "bernoulli",
        "prior": "normal", "prior_components": 1, "decoder_outputs": ["logits", "mean", "probs"],
        "noise_per_pixel": 0, "condition": None,
    }
    import onnx
    import onnxruntime
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tf2onnx

    versions = manifest["versions"]
    assert versions["tensorflow"] == tf.__version__
    assert versions["keras"] == keras.__version__
    assert versions["tensorflow-probability"] == tfp.__version__
    assert versions["onnx"] == onnx.__version__
    assert versions["tf2onnx"] == tf2onnx.__version__
    assert versions["onnxruntime"] == onnxruntime.__version__
    parity = manifest["parity"]
    for key in ("savedmodel", "onnx_decoder", "tflite"):
        diffs = parity[key]["decode_max_abs_diff"]
        assert set(diffs) == {"logits", "mean", "probs"}
        assert max(diffs["mean"], diffs["probs"]) <= verify.DECODE_ATOL, (key, diffs)
        assert diffs["logits"] < 1e-4, (key, diffs)  # 1e-5 relative to |logit| beyond 1
    assert max(parity["savedmodel"]["encode_max_abs_diff"].values()) <= verify.DECODE_ATOL
    int8 = parity["onnx_sampler_int8"]["decode_error_vs_keras"]
    assert 0 < int8["max_abs_error"] < 0.05  # measured, and int8 did change the weights
    for key in ("savedmodel", "onnx_sampler", "onnx_sampler_int8", "tflite"):
        figures = parity[key]["sample_distribution"]
        assert figures["draws"] == verify.DISTRIBUTION_DRAWS
        assert figures["mean_max_sigmas"] <= verify.DISTRIBUTION_SIGMAS
    assert manifest["tolerances"]["decode_atol"] == verify.DECODE_ATOL
    assert manifest["onnx_opset"] == 17 and manifest["formats"] == ["savedmodel", "onnx", "tflite"]
    assert "seed [N]" in manifest["sampling"]["onnx"]
    assert manifest["contract"] == 2 and manifest["format"] == "keras_vae.export/2"
    assert parity["savedmodel"]["warmup"]["records"] == 4


def test_manifest_signatures_match_what_each_runtime_reads(exported):
    import onnx
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    out, manifest = exported
    artefacts = manifest["artefacts"]
    # SavedModel: what tf.saved_model.load reports.
    loaded = tf.saved_model.load(str(out / artefacts["savedmodel"]["path"]))
    signatures = artefacts["savedmodel"]["signatures"]
    assert set(signatures) == {"decode", "sample", "encode", "serving_default"}
    for key, entry in signatures.items():
        fn = loaded.signatures[key]
        inputs = fn.structured_input_signature[1]
        assert set(entry["inputs"]) == set(inputs)
        for name, spec in inputs.items():
            assert entry["inputs"][name]["dtype"] == spec.dtype.name
            assert entry["inputs"][name]["shape"] == [-1 if d is None else d for d in spec.shape]
        assert set(entry["outputs"]) == set(fn.structured_outputs)
        for name, spec in fn.structured_outputs.items():
            assert entry["outputs"][name]["dtype"] == spec.dtype.name
            assert entry["outputs"][name]["shape"] == [-1 if d is None else d for d in spec.shape]
    assert signatures["sample"]["inputs"]["seed"] == {
        "name": "sample_seed:0", "dtype": "int64", "shape": [-1]}
    assert signatures["sample"]["inputs"]["temperature"]["shape"] == [-1]
    # Contract 2: every input of every signature has a batch dimension (TF Serving batching).
    for key, entry in signatures.items():
        for name, tensor in entry["inputs"].items():
            assert tensor["shape"] and tensor["shape"][0] == -1, (key, name)
    assert signatures["serving_default"]["outputs"].keys() == signatures["decode"]["outputs"].keys()
    # ONNX: the graph's own inputs and outputs.
    for key in ("onnx_decoder", "onnx_sampler", "onnx_sampler_int8"):
        model = onnx.load(str(out / artefacts[key]["path"]))
        assert artefacts[key]["opset"] == 17
        assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
        assert sorted(artefacts[key]["inputs"]) == sorted(i.name for i in model.graph.input)
        assert sorted(artefacts[key]["outputs"]) == sorted(o.name for o in model.graph.output)
    assert sorted(artefacts["onnx_decoder"]["outputs"]) == ["logits", "mean", "probs"]
    assert artefacts["onnx_decoder"]["inputs"]["z"]["shape"] == ["N", LATENT]
    assert artefacts["onnx_sampler"]["inputs"] == {
        "seed": {"name": "seed", "dtype": "int64", "shape": ["N"]},
        "temperature": {"name": "temperature", "dtype": "float32", "shape": ["N"]}}
    assert artefacts["onnx_sampler"]["outputs"]["images"]["shape"] == ["N", *EVENT]
    # TFLite: the interpreter's signature runners.
    interp = Interpreter(model_path=str(out / artefacts["tflite"]["path"]))
    tfl = artefacts["tflite"]["signatures"]
    assert sorted(tfl) == sorted(interp.get_signature_list()) == ["decode", "sample"]
    for key in tfl:
        runner = interp.get_signature_runner(key)
        for name, detail in runner.get_input_details().items():
            assert tfl[key]["inputs"][name]["shape"] == list(detail["shape_signature"])
            assert tfl[key]["inputs"][name]["dtype"] == np.dtype(detail["dtype"]).name


# ------------------------------------------------------------------ SavedModel


_FRESH_SAVEDMODEL = r"""
import json, sys
import numpy as np
import tensorflow as tf
path, z_path = sys.argv[1], sys.argv[2]
loaded = tf.saved_model.load(path)
sig = loaded.signatures
z = np.load(z_path)
dec = {k: v.numpy().tolist() for k, v in sig["decode"](z=tf.constant(z)).items()}
default = {k: v.numpy().tolist() for k, v in sig["serving_default"](z=tf.constant(z)).items()}
def sample(seed, n=4, t=1.0):
    out = sig["sample"](temperature=tf.fill([n], float(t)),
                        seed=tf.constant(seed + np.arange(n), tf.int64))
    return {k: v.numpy().tolist() for k, v in out.items()}
ranks = {name: [s.shape.rank for s in fn.structured_input_signature[1].values()]
         for name, fn in sig.items()}
enc = sig["encode"](x=tf.zeros([2, 28, 28, 1]))
print(json.dumps({
    "decode": dec, "serving_default": default, "a": sample(7), "b": sample(7), "c": sample(8),
    "cold": sample(7, n=3, t=0.0), "encode_shapes": {k: v.shape.as_list() for k, v in enc.items()},
    "ranks": ranks, "one": sample(9, n=1),
    "modules": sorted(m for m in sys.modules
                      if m.split(".")[0] in ("keras_vae", "tensorflow_probability", "keras")),
}))
"""


def test_savedmodel_runs_in_a_process_without_keras_vae_or_tfp(exported, trained, tmp_path):
    out, _ = exported
    z = _z()
    np.save(tmp_path / "z.npy", z)
    script = tmp_path / "fresh.py"
    script.write_text(_FRESH_SAVEDMODEL)
    code = (f"import runpy, sys; sys.argv = ['fresh', {str(out / 'savedmodel/vae/1')!r}, "
            f"{str(tmp_path / 'z.npy')!r}]; runpy.run_path({str(script)!r}, run_name='__main__')")
    result = json.loads(_run_python(code, cwd=tmp_path).strip().splitlines()[-1])
    assert not [m for m in result["modules"] if m.split(".")[0] in ("keras_vae",
                                                                     "tensorflow_probability")]
    want = _keras_decode(trained[0], z)
    _assert_decoded(result["decode"], want)
    for key in ("mean", "probs", "logits"):
        np.testing.assert_array_equal(result["serving_default"][key], result["decode"][key])
    assert result["a"] == result["b"]  # the same seed reproduces
    assert result["a"]["z"] != result["c"]["z"]
    # Every input of every signature, read back from the SavedModel, has rank >= 1.
    assert set(result["ranks"]) == {"decode", "sample", "encode", "serving_default"}
    assert all(r is not None and r >= 1 for ranks in result["ranks"].values() for r in ranks)
    # Row i is its seed's: seed 9 alone is row 2 of the batch of seeds 7, 8, 9, 10.
    np.testing.assert_allclose(result["one"]["z"][0], result["a"]["z"][2], atol=1e-6)
    assert np.asarray(result["a"]["images"]).shape == (4, *EVENT)
    np.testing.assert_allclose(result["a"]["images"],
                               _keras_decode(trained[0], np.asarray(result["a"]["z"], "float32"))["mean"],
                               atol=1e-5, rtol=0)
    assert np.all(np.asarray(result["cold"]["z"]) == 0)  # temperature 0: the prior's mode
    assert result["encode_shapes"] == {"loc": [2, LATENT], "scale": [2, LATENT]}


def test_saved_model_cli_lists_the_signatures(exported):
    out, _ = exported
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    assert cli.exists(), cli
    result = subprocess.run([str(cli), "show", "--dir", str(out / "savedmodel/vae/1"), "--all"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    for name in ("decode", "sample", "encode", "serving_default"):
        assert f"signature_def['{name}']" in text
    assert "inputs['num_samples']" not in text
    for tensor in ("inputs['z']", "inputs['temperature']",
                   "inputs['seed']", "inputs['x']", "outputs['images']", "outputs['probs']",
                   "outputs['loc']"):
        assert tensor in text, tensor


# ------------------------------------------------------------------ ONNX


def test_onnx_sampler_is_seeded_per_row_like_the_savedmodel(exported, trained):
    import onnx
    import onnxruntime as ort
    import tensorflow as tf

    out, _ = exported
    sampler = str(out / "onnx/sampler.onnx")
    assert not [n.op_type for n in onnx.load(sampler).graph.node if n.op_type.startswith("Random")]
    seeds = np.array([3, 2**40 + 1, -7, 12345], np.int64)
    temperature = np.array([1.0, 0.5, 1.0, 0.0], np.float32)
    runs = [ort.InferenceSession(sampler, providers=["CPUExecutionProvider"]).run(
        ["images", "z"], {"seed": seeds, "temperature": temperature}) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])  # two sessions, the same draws
    assert np.all(runs[0][1][3] == 0)  # temperature 0: the prior's mode
    # The SavedModel gives the same z and images for the same seeds (one graph, one generator).
    loaded = tf.saved_model.load(str(out / "savedmodel/vae/1"))
    tf_out = loaded.signatures["sample"](seed=tf.constant(seeds), temperature=tf.constant(
        temperature))
    np.testing.assert_allclose(runs[0][1], tf_out["z"].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(runs[0][0], tf_out["images"].numpy(), atol=1e-5, rtol=0)
    # ... and numpy's counter generator computes that z independently (N(0, I) prior).
    eps = prng.numpy_row_noise(seeds, LATENT)[0]
    np.testing.assert_allclose(runs[0][1], temperature[:, None] * eps, atol=1e-5, rtol=0)


def test_onnx_decoder_reproduces_a_given_z_exactly(exported, trained):
    import onnxruntime as ort

    out, _ = exported
    z = _z(rows=5, seed=11)
    runs = []
    for _ in range(2):  # two fresh sessions
        sess = ort.InferenceSession(str(out / "onnx/decoder.onnx"),
                                    providers=["CPUExecutionProvider"])
        runs.append(dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"z": z}))))
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])
    _assert_decoded(runs[0], _keras_decode(trained[0], z))
    assert runs[0]["mean"].shape == (5, *EVENT)


def test_onnx_int8_sampler_is_smaller_and_close(exported, trained):
    import onnxruntime as ort

    out, manifest = exported
    sizes = {k: manifest["artefacts"][k]["size_bytes"] for k in ("onnx_sampler", "onnx_sampler_int8")}
    assert sizes["onnx_sampler_int8"] < sizes["onnx_sampler"] / 2
    sess = ort.InferenceSession(str(out / "onnx/sampler_int8.onnx"), providers=["CPUExecutionProvider"])
    images, z = sess.run(["images", "z"], {"seed": np.arange(64, dtype=np.int64),
                                           "temperature": np.ones(64, np.float32)})
    np.testing.assert_allclose(z, prng.numpy_row_noise(np.arange(64), LATENT)[0], atol=1e-5)
    error = np.abs(images - _keras_decode(trained[0], z)["mean"]).max()
    assert 0 < error < 0.05


# ------------------------------------------------------------------ TFLite


def test_tflite_decode_and_sample_match_the_savedmodel(exported, trained):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    out, _ = exported
    interp = Interpreter(model_path=str(out / "tflite/vae.tflite"))
    z = _z(rows=4, seed=5)
    got = interp.get_signature_runner("decode")(z=z)
    _assert_decoded(got, _keras_decode(trained[0], z))
    sample = interp.get_signature_runner("sample")
    feeds = dict(temperature=np.full(6, 0.7, np.float32), seed=99 + np.arange(6, dtype=np.int64))
    first, again = sample(**feeds), sample(**feeds)
    np.testing.assert_array_equal(first["z"], again["z"])
    assert first["images"].shape == (6, *EVENT)
    loaded = tf.saved_model.load(str(out / "savedmodel/vae/1"))
    tf_z = loaded.signatures["sample"](temperature=tf.constant(feeds["temperature"]),
                                       seed=tf.constant(feeds["seed"]))["z"].numpy()
    np.testing.assert_allclose(first["z"], tf_z, atol=1e-5, rtol=0)  # same seed, same z


# ------------------------------------------------------------------ overwrite and failure


def test_existing_version_is_not_overwritten(exported, trained):
    out, manifest = exported
    version = out / "savedmodel/vae/1"
    before = {p: _sha256(p) for p in version.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.export_savedmodel(trained[0], out / "savedmodel", name="vae", version=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.export_all(trained[0], out)
    assert {p: _sha256(p) for p in version.rglob("*") if p.is_file()} == before
    assert export.load_manifest(out / "manifest.json") == manifest
    assert [p.name for p in (out / "savedmodel/vae").iterdir()] == ["1"]


def test_overwrite_replaces_a_version_and_keeps_others(exported, trained, tmp_path):
    import shutil

    base = tmp_path / "models"
    first = base / "vae" / "1"
    shutil.copytree(exported[0] / "savedmodel/vae/1", first)  # an existing version 1
    (base / "vae" / "2").mkdir()  # another version: never touched
    (base / "vae" / "2" / "keep").write_text("v2")
    marker = first / "stale"
    marker.write_text("from the old version")
    again = export.export_savedmodel(trained[0], base, name="vae", version=1, overwrite=True)
    assert pathlib.Path(again) == first and (first / "saved_model.pb").is_file()
    assert not marker.exists()  # the whole folder was replaced, not merged
    assert (base / "vae" / "2" / "keep").read_text() == "v2"
    assert sorted(p.name for p in (base / "vae").iterdir()) == ["1", "2"]


def test_failed_check_leaves_no_version_folder(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(verify, "DECODE_ATOL", -1.0)  # no difference can pass
    base = tmp_path / "models"
    with pytest.raises(export.ExportCheckError, match="differs from the Keras model"):
        export.export_savedmodel(trained[0], base, name="vae", version=3)
    assert not (base / "vae" / "3").exists()
    assert list((base / "vae").iterdir()) == []  # the temporary folder is gone too


def test_corrupt_onnx_decoder_fails_export_all_and_leaves_nothing(trained, tmp_path, monkeypatch):
    from onnx import numpy_helper

    build = onnx_export.build_decoder

    def corrupt(*args, **kwargs):
        proto = build(*args, **kwargs)
        largest = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
        weights = numpy_helper.to_array(largest) * 1.01
        largest.CopyFrom(numpy_helper.from_array(weights.astype(np.float32), largest.name))
        return proto

    monkeypatch.setattr(onnx_export, "build_decoder", corrupt)
    out = tmp_path / "out"
    with pytest.raises(export.ExportCheckError, match="decoder.onnx output") as error:
        export.export_all(trained[0], out, formats=("savedmodel", "onnx"))
    assert "max abs diff" in str(error.value)
    # The SavedModel had passed its own checks, but the export failed: nothing is left.
    assert not out.exists() or list(out.rglob("*")) == []


# ------------------------------------------------------------------ API, CLI, priors, noise


def test_main_exports_onnx_and_refuses_to_overwrite(trained, tmp_path, capsys):
    out = tmp_path / "cli"
    assert export.main([str(trained[1].parent), "--out", str(out), "--format", "onnx"]) == 0
    printed = capsys.readouterr().out
    assert "onnx/decoder.onnx" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["formats"] == ["onnx"]
    assert sorted(p.name for p in (out / "onnx").iterdir()) == [
        "decoder.onnx", "sampler.onnx", "sampler_int8.onnx"]
    assert not (out / "savedmodel").exists()
    assert export.main([str(trained[1]), "--out", str(out), "--format", "onnx"]) == 1
    assert "overwrite" in capsys.readouterr().err
    assert export.main([str(tmp_path / "missing.keras"), "--out", str(out)]) == 2
    assert export.main([str(trained[1]), "--format", "pdf", "--out", str(out)]) == 2


def test_python_m_entry_point_reports_a_missing_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "keras_vae.export", str(tmp_path / "none.keras"), "--out",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "No .keras model" in result.stderr
    assert not (tmp_path / "out").exists()


def test_counter_normal_is_a_seeded_standard_normal():
    import tensorflow as tf

    shape = tf.constant([4000, 8], tf.int64)
    a = prng.counter_normal(shape, tf.constant(5, tf.int64)).numpy()
    b = prng.counter_normal(shape, tf.constant(5, tf.int64)).numpy()
    c = prng.counter_normal(shape, tf.constant(6, tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.03 and abs(a.std() - 1) < 0.03
    assert abs(np.corrcoef(a.ravel(), c.ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) < 0.05
    assert abs(np.mean(np.abs(a) < 1.0) - 0.6827) < 0.02  # the normal's shape, not just moments
    prefix = prng.counter_normal(tf.constant([10, 8], tf.int64), tf.constant(5, tf.int64))
    np.testing.assert_array_equal(prefix.numpy(), a[:10])  # n only extends the draws


def test_mixture_prior_samplers_agree_with_keras_in_distribution(tmp_path):
    model = _tiny_vae(prior="mixture", seed=1)
    spec = spec_lib.ExportSpec(model)
    assert spec.prior == "mixture" and spec.num_components == 10
    reference = reference_lib.Reference(model, spec)
    import tensorflow as tf

    sample = tf.function(graphs.sample_function(model, spec))
    draws = sample(tf.range(verify.DISTRIBUTION_DRAWS, dtype=tf.int64),
                   tf.ones([verify.DISTRIBUTION_DRAWS]))
    keras_z = np.asarray(model.sample_latents(verify.DISTRIBUTION_DRAWS, 1.0, seed=4))
    figures = verify.check_distribution("mixture z", draws["z"].numpy(), keras_z)
    assert figures["mean_max_sigmas"] <= verify.DISTRIBUTION_SIGMAS
    verify.check_distribution("mixture images", draws["images"].numpy(), reference.draws)
    paths = onnx_export.build(model, spec, tmp_path, quantized=False)
    figures = onnx_export.check(paths, reference)
    assert figures["sampler"]["sample_distribution"]["draws"] == verify.DISTRIBUTION_DRAWS
    with pytest.raises(verify.ExportCheckError, match="sampling disagrees"):
        verify.check_distribution("shifted", draws["z"].numpy() + 0.5, keras_z)


def test_unsupported_prior_raises_not_implemented():
    @keras.saving.register_keras_serializable(package="test_export")
    class OpaquePrior(priors_lib.Prior):
        def components(self, encode=None):
            raise NotImplementedError("no closed-form components")

    model = _tiny_vae(prior=OpaquePrior(LATENT, name="prior"))
    with pytest.raises(NotImplementedError, match="Cannot export the sampler"):
        spec_lib.ExportSpec(model)


def test_bad_names_and_versions_are_refused(trained, tmp_path):
    for name, version in (("a/b", 1), (".hidden", 1), ("vae", 0), ("vae", 1.5), ("vae", True)):
        with pytest.raises(ValueError):
            savedmodel_lib.version_path(tmp_path, name, version)
    with pytest.raises(ValueError, match="Unknown export format"):
        export.export_all(trained[0], tmp_path / "x", formats=("savedmodel", "pdf"))
    assert not (tmp_path / "x").exists()


def test_continuous_bernoulli_decoder_converts_to_onnx(mnist_binary, tmp_path):
    """TFP's ContinuousBernoulli mean uses Expm1, which tf2onnx lacks: the exporter maps it."""
    import onnx

    model = keras_vae.VAE(
        latent_dim=LATENT, event_shape=EVENT, likelihood="continuous_bernoulli", seed=0,
        encoder=networks.build_encoder("mlp", EVENT, hidden_units=(32,)),
        decoder=networks.build_decoder("mlp", LATENT, EVENT, hidden_units=(32,)),
    )
    model.initialize_output_bias(mnist_binary[0][:200])  # logits from -6.9 up: Expm1's branch
    spec = spec_lib.ExportSpec(model)
    assert spec.likelihood == "continuous_bernoulli" and spec.decoder_outputs == ["logits", "mean"]
    path = tmp_path / "decoder.onnx"
    onnx.save(onnx_export.build_decoder(model, spec), str(path))
    assert "Expm1" not in {n.op_type for n in onnx.load(str(path)).graph.node}
    figures = onnx_export.check_decoder(path, reference_lib.Reference(model, spec))
    assert figures["decode_max_abs_diff"]["mean"] <= verify.DECODE_ATOL


# ------------------------------------------------------------------ pixel hook (interface 3)


class _CoinPixels(keras_vae.likelihoods.BernoulliLikelihood):
    """A toy likelihood that draws its pixels: x_i = [u_i < sigmoid(l_i)], one uniform each."""

    noise_per_pixel = 1

    def draw_pixels(self, parameters, uniform):
        import tensorflow as tf

        return tf.cast(uniform[..., 0] < parameters["probs"], "float32")


def test_samplers_draw_pixels_when_the_likelihood_asks(mnist_binary, tmp_path):
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    model = keras_vae.VAE(
        latent_dim=LATENT, event_shape=EVENT, likelihood=_CoinPixels(EVENT, name="likelihood"),
        encoder=networks.build_encoder("mlp", EVENT, hidden_units=(16,)),
        decoder=networks.build_decoder("mlp", LATENT, EVENT, hidden_units=(16,)), seed=0)
    model.initialize_output_bias(mnist_binary[0][:200])
    manifest = export.export_all(model, tmp_path / "out")  # its own checks pass
    assert manifest["model"]["noise_per_pixel"] == 1
    loaded = tf.saved_model.load(str(tmp_path / "out/savedmodel/vae/1"))
    seeds = np.arange(400, dtype=np.int64) + 5
    out = {k: v.numpy() for k, v in loaded.signatures["sample"](
        seed=tf.constant(seeds), temperature=tf.ones([400])).items()}
    assert set(np.unique(out["images"])) == {0.0, 1.0}  # drawn, not the mean
    # The same draw by hand: numpy's counter generator, columns 2d+1.. of each row's draws,
    # thresholded at the Keras probabilities.
    uniform = prng.numpy_row_uniform(seeds, 2 * LATENT + 1 + 784)[:, 2 * LATENT + 1:]
    probs = np.asarray(model.decoder_parameters(out["z"])["probs"])
    want = (uniform.reshape(400, *EVENT) < probs).astype("float32")
    assert np.mean(out["images"] != want) < 1e-3
    # ONNX and TFLite run the same generator: the same seeds give the same pixels.
    sess = ort.InferenceSession(str(tmp_path / "out/onnx/sampler.onnx"),
                                providers=["CPUExecutionProvider"])
    images, z = sess.run(["images", "z"], {"seed": seeds, "temperature": np.ones(400, np.float32)})
    assert np.mean(images != out["images"]) < 1e-3
    p = np.asarray(model.decoder_parameters(z)["probs"], "float64")
    assert abs(images.mean() - p.mean()) < 4 * np.sqrt((p * (1 - p)).sum()) / p.size + 1e-3
    tfl = Interpreter(model_path=str(tmp_path / "out/tflite/vae.tflite"))
    got = tfl.get_signature_runner("sample")(seed=seeds, temperature=np.ones(400, np.float32))
    assert np.mean(got["images"] != out["images"]) < 1e-3


# ------------------------------------------------------------------ contract 2, warmup


def test_row_noise_is_numpy_s_generator_and_independent_across_seeds():
    import tensorflow as tf

    seeds = np.arange(4000, dtype=np.int64)
    u = prng.row_uniform(tf.constant(seeds), 20).numpy()
    np.testing.assert_array_equal(u, prng.numpy_row_uniform(seeds, 20))  # exact integer maths
    eps = prng.row_noise(tf.constant(seeds), 8)[0].numpy()
    assert abs(eps.mean()) < 0.03 and abs(eps.std() - 1) < 0.03
    assert abs(np.mean(np.abs(eps) < 1.0) - 0.6827) < 0.02
    # Consecutive seeds (the draws' seeds) and columns are uncorrelated; uniforms are uniform.
    assert abs(np.corrcoef(eps[:-1].ravel(), eps[1:].ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(eps[:, 0], eps[:, 1])[0, 1]) < 0.05
    counts = np.histogram(u.ravel(), bins=10, range=(0, 1))[0]
    expected = u.size / 10
    assert np.sum((counts - expected) ** 2 / expected) < 30  # chi^2, 9 dof: p ~ 4e-4
    one = prng.row_uniform(tf.constant(seeds[7:8]), 20).numpy()
    np.testing.assert_array_equal(one[0], u[7])  # a row is its seed's, whatever the batch


def test_warmup_file_parses_as_prediction_logs_and_replays(exported, trained):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    out, _ = exported
    version = out / "savedmodel/vae/1"
    path = version / "assets.extra/tf_serving_warmup_requests"
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(path))]
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"] * 4
    requests = [log.predict_log.request for log in logs]
    assert sorted(r.model_spec.signature_name for r in requests) == [
        "decode", "encode", "sample", "serving_default"]
    assert {r.model_spec.name for r in requests} == {"vae"}
    signatures = tf.saved_model.load(str(version)).signatures
    for request in requests:  # replay each as TF Serving does at load time
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        assert all(v.shape.rank >= 1 and v.shape[0] == 1 for v in inputs.values())
        outputs = signatures[request.model_spec.signature_name](**inputs)
        if request.model_spec.signature_name == "decode":
            np.testing.assert_allclose(
                outputs["mean"].numpy(), _keras_decode(trained[0], inputs["z"].numpy())["mean"],
                atol=1e-5)


# ------------------------------------------------------------------ conditional exports


def test_conditional_export_decodes_like_keras_in_every_runtime(exported_conditional):
    import onnxruntime as ort
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter
    from serving_support import conditional_reference

    out, model, manifest = exported_conditional
    assert manifest["model"]["condition"] == {
        "kind": "class", "input": "label", "dtype": "int64", "num_classes": 10,
        "prior": "class_conditional"}
    z, labels, want = conditional_reference(model)
    sm = tf.saved_model.load(str(out / "savedmodel/cvae/1")).signatures
    got = {"savedmodel": sm["decode"](z=tf.constant(z), label=tf.constant(labels))["mean"].numpy()}
    sess = ort.InferenceSession(str(out / "onnx/decoder.onnx"), providers=["CPUExecutionProvider"])
    got["onnx"] = sess.run(["mean"], {"z": z, "label": labels})[0]
    tfl = Interpreter(model_path=str(out / "tflite/vae.tflite"))
    got["tflite"] = tfl.get_signature_runner("decode")(z=z, label=labels)["mean"]
    for key, value in got.items():
        np.testing.assert_allclose(value, want, atol=1e-5, rtol=0, err_msg=key)
    # The label matters, and the sampler draws z from p(z|y): loc_y at temperature 0.
    other = sm["decode"](z=tf.constant(z), label=tf.constant((labels + 1) % 10))["mean"].numpy()
    assert np.abs(other - want).max() > 1e-3
    loc, _ = model.prior.class_components()
    cold = sm["sample"](seed=tf.range(10, dtype=tf.int64), temperature=tf.zeros([10]),
                        label=tf.constant(labels))
    np.testing.assert_allclose(cold["z"].numpy(), loc[labels], atol=1e-6)
    onnx_sampler = ort.InferenceSession(str(out / "onnx/sampler.onnx"),
                                        providers=["CPUExecutionProvider"])
    seeds = np.arange(10, dtype=np.int64)
    images, onnx_z = onnx_sampler.run(["images", "z"], {
        "seed": seeds, "temperature": np.ones(10, np.float32), "label": labels})
    tf_sample = sm["sample"](seed=tf.constant(seeds), temperature=tf.ones([10]),
                             label=tf.constant(labels))
    np.testing.assert_allclose(onnx_z, tf_sample["z"].numpy(), atol=1e-5)
    np.testing.assert_allclose(images, tf_sample["images"].numpy(), atol=1e-5)


def test_conditional_export_rejects_labels_out_of_range(exported_conditional):
    import tensorflow as tf

    out, _, manifest = exported_conditional
    sm = tf.saved_model.load(str(out / "savedmodel/cvae/1")).signatures
    z = tf.zeros([2, 4])
    for bad in ([1, 10], [-1, 0]):  # in the graph: TF Serving answers INVALID_ARGUMENT
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"label must be an integer "
                           r"class in \[0, 9\]"):
            sm["decode"](z=z, label=tf.constant(bad, tf.int64))
        with pytest.raises(tf.errors.InvalidArgumentError, match="label must be"):
            sm["sample"](seed=tf.constant([1, 2], tf.int64), temperature=tf.ones([2]),
                         label=tf.constant(bad, tf.int64))
    # TFLite and ONNX have no assertion op: the readers check against the manifest.
    from keras_vae.export import manifest as manifest_lib

    for bad in ([1, 10], [0.5, 1], [-1, 2]):
        with pytest.raises(ValueError, match=r"label must be an integer class in \[0, 9\]"):
            manifest_lib.check_labels(manifest, bad, 2)
    with pytest.raises(ValueError, match="class-conditional: give a label"):
        manifest_lib.check_labels(manifest, None, 2)
    np.testing.assert_array_equal(manifest_lib.check_labels(manifest, 3, 2), [3, 3])
