"""The exported ONNX decoder and sampler in Node.js (serving/node/sample.mjs), with
onnxruntime-node and with onnxruntime-web's wasm build.

Needs Node.js and `npm ci --prefix serving/node` (tests/install.sh); a missing tool
FAILS with what to install, it never skips.
"""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from serving_support import COMPAT_EXPORT, COMPAT_REFERENCE, LATENT_DIM, NODE_DIR, \
    require_node_modules, require_tool, run

SCRIPT = NODE_DIR / "sample.mjs"
IMAGE_SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def node_modules():
    return require_node_modules()


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """Latents written by Python: random, zeros, and far in the tails."""
    rng = np.random.default_rng(42)
    z = np.concatenate([rng.normal(size=(30, LATENT_DIM)), np.zeros((1, LATENT_DIM)),
                        np.full((1, LATENT_DIM), 3.5)]).astype("float32")
    path = tmp_path_factory.mktemp("golden") / "golden.json"
    path.write_text(json.dumps({"z": z.tolist()}))
    return path, z


def node_sample(*args, timeout=120):
    result = run(["node", str(SCRIPT), *map(str, args)], timeout=timeout)
    assert result.returncode == 0, f"sample.mjs failed:\n{result.stdout}\n{result.stderr}"
    return result


def array(entry):
    return np.asarray(entry["data"], dtype=np.float32).reshape(entry["dims"])


def onnx_python(path, feeds):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds)))


# ------------------------------------------------------------------------ install


def test_package_pins_and_npmrc():
    package = json.loads((NODE_DIR / "package.json").read_text())
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    for name in ("onnxruntime-node", "onnxruntime-web"):
        version = package["dependencies"][name]
        assert version[0].isdigit(), f"{name} must be pinned exactly, got {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    for key, entry in lock["packages"].items():
        if key:
            assert entry.get("integrity", "").startswith("sha512-"), key
            resolved = entry.get("resolved", "https://registry.npmjs.org/")
            assert resolved.startswith("https://registry.npmjs.org/"), (key, resolved)
    npmrc = (NODE_DIR / ".npmrc").read_text().splitlines()
    assert "onnxruntime-node-install=skip" in npmrc


def test_npm_ci_needs_only_the_npm_registry(tmp_path):
    """`npm ci` from the lockfile, install scripts running, with every non-npm download
    pointed at a dead proxy: it must still install a working onnxruntime-node."""
    npm = require_tool("npm", "install Node.js and npm (apt-get install -y nodejs npm)")
    for name in ("package.json", "package-lock.json", ".npmrc"):
        shutil.copy2(NODE_DIR / name, tmp_path / name)
    env = dict(os.environ, GLOBAL_AGENT_HTTP_PROXY="http://127.0.0.1:9",
               GLOBAL_AGENT_HTTPS_PROXY="http://127.0.0.1:9")
    env.pop("ONNXRUNTIME_NODE_INSTALL", None)
    result = run([npm, "ci", "--prefer-offline", "--no-audit", "--no-fund",
                  "--foreground-scripts"], cwd=tmp_path, env=env, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check = run(["node", "-e", "const o=require('onnxruntime-node');"
                 "console.log(o.env.versions.node)"], cwd=tmp_path)
    assert check.returncode == 0 and check.stdout.strip() == "1.30.0", check.stderr


# ------------------------------------------------------------------------ decode


@pytest.mark.parametrize("runtime", ["node", "web"])
def test_decode_matches_python_on_golden_vectors(exported_vae, node_modules, golden, runtime,
                                                tmp_path):
    path, z = golden
    out = tmp_path / "result.json"
    node_sample("--export-dir", exported_vae, "--runtime", runtime, "--golden", path,
                "--num-samples", 0, "--out", out)
    result = json.loads(out.read_text())
    assert result["runtime"] == runtime
    want = onnx_python(exported_vae / "onnx" / "decoder.onnx", {"z": z})
    assert "mean" in result["decode"] and set(result["decode"]) == set(want)
    for key, value in want.items():
        got = array(result["decode"][key])
        assert got.shape == value.shape == (len(z), *IMAGE_SHAPE)
        np.testing.assert_allclose(got, value, rtol=0, atol=1e-5, err_msg=key)
    # and the ONNX decoder agrees with the SavedModel TF Serving serves
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported_vae / "savedmodel" / "vae" / "1"))
    tf_mean = loaded.signatures["decode"](z=tf.constant(z))["mean"].numpy()
    np.testing.assert_allclose(array(result["decode"]["mean"]), tf_mean, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------ sample


@pytest.mark.parametrize("runtime", ["node", "web"])
def test_sampler_statistics_and_grid(exported_vae, node_modules, runtime, tmp_path):
    n = 512
    stats = {}
    for temperature in (1.0, 0.5):
        out = tmp_path / f"sample_{temperature}.json"
        grid = tmp_path / f"grid_{temperature}.png"
        node_sample("--export-dir", exported_vae, "--runtime", runtime, "--num-samples", n,
                    "--temperature", temperature, "--out", out, "--grid", grid,
                    "--columns", 32)
        result = json.loads(out.read_text())
        images, z = array(result["sample"]["images"]), array(result["sample"]["z"])
        assert images.shape == (n, *IMAGE_SHAPE) and z.shape == (n, LATENT_DIM)
        assert np.all(np.isfinite(images)) and images.min() >= 0 and images.max() <= 1
        # the images are the decoder's mean at the sampled latents
        decoded = onnx_python(exported_vae / "onnx" / "decoder.onnx", {"z": z})["mean"]
        np.testing.assert_allclose(images, decoded, rtol=0, atol=1e-5)
        stats[temperature] = (z.mean(), z.std(), images)
        picture = np.asarray(Image.open(grid).convert("L"), dtype=np.float32)
        assert picture.shape == (16 * 29 + 1, 32 * 29 + 1)
        tiles = picture[1:29, 1:29]
        assert tiles.std() > 5, "the first tile of the grid is blank"
    mean1, std1, images1 = stats[1.0]
    mean_half, std_half, _ = stats[0.5]
    # z ~ N(0, T^2 I) under the standard normal prior: 2048 values per temperature
    assert abs(mean1) < 0.12 and 0.9 < std1 < 1.1, (mean1, std1)
    assert abs(mean_half) < 0.06 and 0.45 < std_half < 0.55, (mean_half, std_half)
    # the draws are not all alike (images vary across samples)
    assert images1.std(axis=0).mean() > 0.01


def test_two_runs_draw_different_samples(exported_vae, node_modules, tmp_path):
    draws = []
    for i in range(2):
        out = tmp_path / f"s{i}.json"
        node_sample("--export-dir", exported_vae, "--num-samples", 8, "--out", out)
        draws.append(array(json.loads(out.read_text())["sample"]["z"]))
    assert not np.allclose(draws[0], draws[1]), "the sampler's random seed is fixed"


def test_int8_sampler_runs(exported_vae, node_modules, tmp_path):
    if not (exported_vae / "onnx" / "sampler_int8.onnx").is_file():
        pytest.fail("the export wrote no onnx/sampler_int8.onnx")
    out = tmp_path / "int8.json"
    node_sample("--export-dir", exported_vae, "--sampler", "sampler_int8.onnx",
                "--num-samples", 64, "--out", out, "--grid", tmp_path / "grid.pgm")
    result = json.loads(out.read_text())
    images, z = array(result["sample"]["images"]), array(result["sample"]["z"])
    decoded = onnx_python(exported_vae / "onnx" / "decoder.onnx", {"z": z})["mean"]
    assert np.abs(images - decoded).max() < 0.05        # int8 weights, float decoder
    header = (tmp_path / "grid.pgm").read_bytes()[:2]
    assert header == b"P5"


def test_reads_an_export_folder_written_before_the_redesign(node_modules, tmp_path):
    """tests/support/compat/export (the code at 75878b2): decode equals the reference
    decoder mean on its latents, and the float and int8 samplers draw the right shapes."""
    reference = np.load(COMPAT_REFERENCE)
    z, want = reference["z"].astype("float32"), reference["vae_decode_mean"]
    golden = tmp_path / "z.json"
    golden.write_text(json.dumps({"z": z.tolist()}))
    for sampler in ("sampler.onnx", "sampler_int8"):
        out = tmp_path / f"{sampler}.json"
        node_sample("--export-dir", COMPAT_EXPORT, "--golden", golden, "--num-samples", 6,
                    "--sampler", sampler, "--out", out)
        result = json.loads(out.read_text())
        np.testing.assert_allclose(array(result["decode"]["mean"]), want, rtol=0, atol=1e-5)
        assert array(result["sample"]["images"]).shape == (6, *IMAGE_SHAPE)
        assert array(result["sample"]["z"]).shape == (6, z.shape[1])


def test_script_errors_are_clear(tmp_path, node_modules):
    result = run(["node", str(SCRIPT), "--export-dir", tmp_path, "--num-samples", "2"])
    assert result.returncode == 1 and "manifest.json" in result.stderr
    result = run(["node", str(SCRIPT), "--export-dir", tmp_path, "--num-samples", "-1"])
    assert result.returncode == 1 and "num-samples" in result.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"format": "other/1"}))
    result = run(["node", str(SCRIPT), "--export-dir", bad, "--num-samples", "2"])
    assert result.returncode == 1 and "format" in result.stderr, result.stderr
    result = run(["node", str(SCRIPT), "--export-dir", COMPAT_EXPORT, "--sampler", "nope"])
    assert result.returncode == 1 and "sampler_int8.onnx" in result.stderr, result.stderr
    result = run(["node", str(SCRIPT), "--help"])
    assert result.returncode == 0 and "--export-dir" in result.stdout


# ------------------------------------------------------------------------ contract 2, conditional


def test_a_seed_gives_the_savedmodel_s_images(exported_vae, node_modules, tmp_path):
    """Row i draws with seed + i: the same z and images as TF Serving's `sample` for it."""
    import tensorflow as tf

    out = tmp_path / "seeded.json"
    node_sample("--export-dir", exported_vae, "--num-samples", 5, "--seed", 123456789012,
                "--temperature", 0.7, "--out", out)
    result = json.loads(out.read_text())
    assert result["seed"] == "123456789012"
    loaded = tf.saved_model.load(str(exported_vae / "savedmodel" / "vae" / "1"))
    want = loaded.signatures["sample"](seed=tf.constant(123456789012 + np.arange(5), tf.int64),
                                       temperature=tf.fill([5], 0.7))
    np.testing.assert_allclose(array(result["sample"]["z"]), want["z"].numpy(), atol=1e-5)
    np.testing.assert_allclose(array(result["sample"]["images"]), want["images"].numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("runtime", ["node", "web"])
def test_conditional_decode_and_sample_with_a_label(exported_conditional, node_modules, runtime,
                                                    tmp_path):
    from serving_support import conditional_reference

    folder, model, _ = exported_conditional
    z, labels, want = conditional_reference(model)
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps({"z": z.tolist(), "labels": labels.tolist()}))
    out = tmp_path / "cond.json"
    node_sample("--export-dir", folder, "--runtime", runtime, "--golden", golden,
                "--num-samples", 4, "--label", 3, "--seed", 11, "--temperature", 0, "--out", out)
    result = json.loads(out.read_text())
    np.testing.assert_allclose(array(result["decode"]["mean"]), want, rtol=0, atol=1e-5)
    loc, _ = model.prior.class_components()  # temperature 0: z is class 3's mean, p(z|y=3)
    np.testing.assert_allclose(array(result["sample"]["z"]), np.repeat(loc[3:4], 4, 0), atol=1e-6)
    for bad, message in ((10, r"label must be an integer class in [0, 9]"),
                         (-1, r"label must be an integer class in [0, 9]")):
        failed = run(["node", str(SCRIPT), "--export-dir", str(folder), "--num-samples", "2",
                      "--label", str(bad)])
        assert failed.returncode == 1 and message in failed.stderr, failed.stderr
    failed = run(["node", str(SCRIPT), "--export-dir", str(folder), "--num-samples", "2"])
    assert failed.returncode == 1 and "class-conditional" in failed.stderr, failed.stderr
