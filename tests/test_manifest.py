"""The manifest reader and `verify_export_dir`, on the export folder written before the redesign.

tests/support/compat/export/ was written by the code at 75878b2 from
tests/support/compat/vae.keras: the reader must read it as it is, and every
artefact in it must still decode like that model under today's decode rule.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from keras_vae.export import contract
from keras_vae.export import manifest as manifest_lib

COMPAT = pathlib.Path(__file__).resolve().parent / "support" / "compat"
EXPORT = COMPAT / "export"


@pytest.fixture(scope="module")
def compat_model():
    import keras

    import keras_vae  # noqa: F401  (registers the custom objects)

    return keras.models.load_model(COMPAT / "vae.keras")


def _copy(tmp_path):
    out = tmp_path / "export"
    shutil.copytree(EXPORT, out)
    return out


def test_load_reads_the_folder_or_the_file():
    manifest = manifest_lib.load(EXPORT)
    assert manifest == manifest_lib.load(EXPORT / contract.MANIFEST_FILE)
    assert manifest["format"] == "keras_vae.export/1"  # read, although this writes /2
    assert manifest_lib.contract_version(manifest) == 1 and manifest_lib.condition(manifest) is None
    assert sorted(manifest["artefacts"]) == sorted(
        k for k in contract.targets(EXPORT, "vae", 1, contract.FORMATS) if k != "manifest")


def test_accessors_on_the_old_export():
    manifest = manifest_lib.load(EXPORT)
    assert manifest_lib.latent_dim(manifest) == 3
    assert manifest_lib.event_shape(manifest) == (28, 28, 1)
    assert manifest_lib.decoder_outputs(manifest) == ["logits", "mean", "probs"]
    base = manifest_lib.savedmodel_base(manifest, EXPORT)
    assert base == EXPORT / "savedmodel" / "vae" and (base / "1" / "saved_model.pb").is_file()
    for role, file in contract.ONNX_FILES.items():
        path = manifest_lib.onnx_file(manifest, role, EXPORT)
        assert path == EXPORT / contract.ONNX_DIR / file and path.is_file()
    tflite = manifest_lib.artefact_path(manifest, contract.ARTEFACT_TFLITE, EXPORT)
    assert tflite == EXPORT / contract.TFLITE_DIR / contract.TFLITE_FILE and tflite.is_file()
    signatures = manifest_lib.signatures(manifest)
    assert set(contract.SIGNATURES) <= set(signatures)
    for name in contract.SIGNATURES:
        inputs = (manifest_lib.sample_inputs(manifest) if name == contract.SAMPLE
                  else contract.INPUTS[name])
        assert tuple(signatures[name]["inputs"]) == tuple(sorted(inputs))
        assert set(contract.OUTPUTS[name]) <= set(signatures[name]["outputs"])
    assert manifest_lib.sample_inputs(manifest) == ("num_samples", "temperature", "seed")
    assert set(manifest_lib.signatures(manifest, contract.ARTEFACT_TFLITE)) == set(
        contract.TFLITE_SIGNATURES)


def test_missing_folder_file_and_artefact_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no manifest.json"):
        manifest_lib.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="No export manifest"):
        manifest_lib.load(tmp_path / "none.json")
    manifest = manifest_lib.load(EXPORT)
    del manifest["artefacts"]["onnx_sampler"]
    with pytest.raises(manifest_lib.MissingArtefactError, match="no 'onnx_sampler' artefact"):
        manifest_lib.onnx_file(manifest, "sampler", EXPORT)
    with pytest.raises(ValueError, match="Unknown ONNX role"):
        manifest_lib.onnx_file(manifest, "encoder", EXPORT)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a JSON object"),
    (json.dumps({"format": "keras_vae.export/3", "model": {}, "artefacts": {}}), "format"),
    (json.dumps({"format": "other/1", "model": {}, "artefacts": {}}), "format 'other/1'"),
    (json.dumps({"model": {}, "artefacts": {}}), "format None"),
    (json.dumps({"format": "keras_vae.export/1", "artefacts": {}}), "'model' and 'artefacts'"),
    (json.dumps({"format": "keras_vae.export/1", "model": {"latent_dim": 2},
                 "artefacts": {}}), "no 'event_shape'"),
    (json.dumps({"format": "keras_vae.export/1", "model": {"latent_dim": 2, "event_shape": [2]},
                 "artefacts": {"tflite": {"size_bytes": 3}}}), "'tflite' has no 'path'"),
])
def test_bad_manifests_are_refused_with_the_reason(tmp_path, text, message):
    (tmp_path / contract.MANIFEST_FILE).write_text(text)
    with pytest.raises(manifest_lib.ManifestError, match=message):
        manifest_lib.load(tmp_path)


def test_an_artefact_path_outside_the_folder_is_refused():
    manifest = manifest_lib.load(EXPORT)
    for bad in ("../elsewhere/vae.tflite", "/etc/passwd", ""):
        manifest["artefacts"]["tflite"]["path"] = bad
        with pytest.raises(manifest_lib.ManifestError, match="not inside the export folder"):
            manifest_lib.artefact_path(manifest, "tflite", EXPORT)


def test_summary_lines_name_every_artefact():
    manifest = manifest_lib.load(EXPORT)
    lines = manifest_lib.summary_lines(manifest, EXPORT)
    assert len(lines) == len(manifest["artefacts"])
    onnx_line = next(line for line in lines if line.split()[0] == "onnx_decoder")
    assert str(EXPORT / "onnx" / "decoder.onnx") in onnx_line and "decode max |diff|" in onnx_line
    assert "int8, error within tolerance" in next(
        line for line in lines if line.split()[0] == "onnx_sampler_int8")
    assert manifest_lib.summary_lines(None, "out") == ["  out"]


def test_the_reader_loads_no_exporter_or_onnx():
    code = ("import sys; from keras_vae.export import manifest as m; "
            f"m.load({str(EXPORT)!r}); "
            "print(sorted(k for k in sys.modules if k.startswith(('onnx', 'tf2onnx')) "
            "or k in ('keras_vae.export.api', 'keras_vae.export.savedmodel', "
            "'keras_vae.export.graphs', 'keras_vae.export._graph')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_verify_export_dir_passes_on_the_old_export(compat_model):
    from keras_vae.export import verify

    results = verify.verify_export_dir(compat_model, EXPORT)
    assert list(results) == list(manifest_lib.load(EXPORT)["artefacts"])
    for key in ("savedmodel", "onnx_decoder", "tflite"):
        assert 0.0 <= results[key] <= verify.DECODE_ATOL
    assert results["onnx_sampler"] == results["onnx_sampler_int8"] == "samples ok"
    lines = verify.result_lines(results)
    assert any(line.split()[0] == "tflite" and "vs Keras" in line for line in lines)


def test_verify_export_dir_fails_on_another_model(compat_model, tmp_path):
    import keras

    from keras_vae.export import verify

    other = keras.models.load_model(COMPAT / "vae.keras")
    kernel = other.decoder.layers[-2].kernel
    kernel.assign(kernel.numpy() * 1.01)
    with pytest.raises(verify.ExportCheckError, match="savedmodel decode differs from the Keras"):
        verify.verify_export_dir(other, EXPORT)


def test_verify_export_dir_fails_on_a_broken_file_or_no_manifest(compat_model, tmp_path):
    from keras_vae.export import verify

    out = _copy(tmp_path)
    decoder = out / "onnx" / "decoder.onnx"
    decoder.write_bytes(decoder.read_bytes()[:100])
    manifest = manifest_lib.load(out)
    del manifest["artefacts"]["savedmodel"]
    with pytest.raises(verify.ExportCheckError, match="decoder.onnx"):
        verify.verify_export_dir(compat_model, out, manifest)
    (out / contract.MANIFEST_FILE).unlink()
    with pytest.raises(verify.ExportCheckError, match="no readable manifest"):
        verify.verify_export_dir(compat_model, out)
