"""Serving: the REST and gRPC clients against the development server, which speaks TF
Serving's protocol for a SavedModel written by the real `keras_vae.export.export_all`.

What must show (issue 5): decode(z) over REST and gRPC equals the in-process SavedModel;
sample shapes and ranges; metadata lists the signatures; 500 concurrent requests with
0 errors, every response checked; malformed requests get a 4xx with a message and the
server keeps serving; the TF Serving deployment files are valid.
"""

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from serving_support import COMPAT_EXPORT, COMPAT_REFERENCE, LATENT_DIM, REPO

import keras_vae.serving
from keras_vae.serving import client as client_lib, errors
from keras_vae.serving.wire import is_row_compatible
from keras_vae.serving.client import GrpcClient, RestClient, ServingConnectionError, ServingError
from keras_vae.serving.server import ModelServer, read_model_config

TF_SERVING = REPO / "serving" / "tf_serving"
MAX_NUM_SAMPLES = 256
IMAGE_SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def reference(exported_vae):
    """The SavedModel's signatures, loaded in this process (the ground truth)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported_vae / "savedmodel" / "vae" / "1"))

    def run(signature, **inputs):
        fn = loaded.signatures[signature]
        return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()})
                .items()}

    run.loaded = loaded
    return run


@pytest.fixture(scope="module")
def server(exported_vae):
    srv = ModelServer(model_base_path=exported_vae / "savedmodel" / "vae", model_name="vae",
                      max_num_samples=MAX_NUM_SAMPLES)
    srv.start(rest_port=0, grpc_port=0)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def rest(server):
    return RestClient(f"http://127.0.0.1:{server.rest_port}", model="vae", timeout=30)


@pytest.fixture(scope="module")
def grpc_client(server):
    with GrpcClient(f"127.0.0.1:{server.grpc_port}", model="vae", timeout=30) as c:
        yield c


@pytest.fixture(params=["rest", "grpc"])
def client(request, rest, grpc_client):
    return rest if request.param == "rest" else grpc_client


def latents(seed, n=5):
    return np.random.default_rng(seed).normal(size=(n, LATENT_DIM)).astype("float32")


# ------------------------------------------------------------------------ contract


def test_decode_equals_in_process_savedmodel(client, reference):
    z = latents(0, 7)
    got = client.decode(z, outputs=None)
    want = reference("decode", z=z)
    assert set(got) == set(want) and "mean" in got
    for key in want:
        assert got[key].dtype == np.float32 and got[key].shape == (7, *IMAGE_SHAPE)
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(client.decode(z), want["mean"], rtol=0, atol=1e-6)
    # one latent vector (rank 1) is a batch of one
    np.testing.assert_allclose(client.decode(z[0]), want["mean"][:1], rtol=0, atol=1e-6)


def test_sample_shapes_ranges_and_seeds(client, reference):
    images, z = client.sample(16, temperature=0.8, seed=7, return_latents=True)
    assert images.shape == (16, *IMAGE_SHAPE) and images.dtype == np.float32
    assert z.shape == (16, LATENT_DIM) and z.dtype == np.float32
    assert np.all(np.isfinite(images)) and images.min() >= 0.0 and images.max() <= 1.0
    want = reference("sample", seed=7 + np.arange(16, dtype=np.int64),
                     temperature=np.full(16, 0.8, np.float32))  # contract 2: row i, seed 7 + i
    np.testing.assert_allclose(images, want["images"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(z, want["z"], rtol=0, atol=1e-6)
    # the images are the decoder's mean at those latents
    np.testing.assert_allclose(images, client.decode(z), rtol=0, atol=1e-5)
    other = client.sample(16, temperature=0.8, seed=8)
    assert not np.allclose(images, other)
    assert client.sample(3).shape == (3, *IMAGE_SHAPE)          # a fresh random seed


def test_sample_temperature_scales_latents(grpc_client):
    _, z1 = grpc_client.sample(MAX_NUM_SAMPLES, temperature=1.0, seed=1, return_latents=True)
    _, zh = grpc_client.sample(MAX_NUM_SAMPLES, temperature=0.5, seed=1, return_latents=True)
    assert 0.85 < z1.std() < 1.15, z1.std()
    assert 0.42 < zh.std() < 0.58, zh.std()
    assert abs(z1.mean()) < 0.15


def test_metadata_lists_the_signatures(client):
    signatures = client.signatures()
    assert {"decode", "sample", "encode", "serving_default"} <= set(signatures)
    decode = signatures["decode"]
    assert decode["inputs"]["z"]["dtype"] == "DT_FLOAT"
    assert decode["inputs"]["z"]["shape"] == [-1, LATENT_DIM]
    assert {"mean", "probs", "logits"} <= set(decode["outputs"])
    assert decode["outputs"]["mean"]["shape"] == [-1, *IMAGE_SHAPE]
    sample = signatures["sample"]
    assert {k: v["dtype"] for k, v in sample["inputs"].items()} == {
        "temperature": "DT_FLOAT", "seed": "DT_INT64"}
    assert all(v["shape"] == [-1] for v in sample["inputs"].values())  # contract 2: batched
    assert {"images", "z"} <= set(sample["outputs"])
    assert signatures["serving_default"]["inputs"] == {
        "z": {**decode["inputs"]["z"], "name": signatures["serving_default"]["inputs"]["z"]
              ["name"]}}
    # row format for batchable signatures: every signature of contract 2
    assert is_row_compatible(decode) and is_row_compatible(signatures["encode"])
    assert is_row_compatible(sample)


def test_status_and_raw_rest_formats(rest, reference):
    assert rest.status() == [{"version": "1", "state": "AVAILABLE",
                              "status": {"error_code": "OK", "error_message": ""}}]
    meta = rest.metadata()
    assert meta["model_spec"] == {"name": "vae", "signature_name": "", "version": "1"}
    z = latents(1, 2)
    want = reference("decode", z=z)
    # row format: "instances" -> "predictions", one object per row
    body = rest.predict_json({"signature_name": "decode",
                              "instances": [{"z": row} for row in z.tolist()]})
    assert len(body["predictions"]) == 2 and set(body["predictions"][0]) == set(want)
    np.testing.assert_allclose(np.array([p["mean"] for p in body["predictions"]], "float32"),
                               want["mean"], rtol=0, atol=1e-6)
    # unnamed rows for a one-input signature, default signature
    body = rest.predict_json({"instances": z.tolist()})
    np.testing.assert_allclose(np.array([p["mean"] for p in body["predictions"]], "float32"),
                               want["mean"], rtol=0, atol=1e-6)
    # column format: "inputs" -> "outputs"
    body = rest.predict_json({"signature_name": "sample",
                              "inputs": {"seed": [5, 6, 7], "temperature": [1.0] * 3}})
    assert np.array(body["outputs"]["images"]).shape == (3, *IMAGE_SHAPE)
    body = rest.predict_json({"signature_name": "decode", "inputs": {"z": z.tolist()}})
    np.testing.assert_allclose(np.array(body["outputs"]["mean"], "float32"), want["mean"],
                               rtol=0, atol=1e-6)


def test_client_picks_the_format_per_signature(rest, monkeypatch):
    sent = []
    original = RestClient.predict_json

    def spy(self, body):
        sent.append(body)
        return original(self, body)

    monkeypatch.setattr(RestClient, "predict_json", spy)
    rest.decode(latents(2, 3))
    rest.sample(2, seed=1)
    assert "instances" in sent[0] and "inputs" not in sent[0]
    assert "instances" in sent[1] and "inputs" not in sent[1]  # contract 2: sample batches too
    # scalars for batched inputs are the server's 400, with its message
    with pytest.raises(ServingError) as err:
        rest.predict({"temperature": 1.0, "seed": 1}, signature_name="sample", format="column")
    assert err.value.status == 400 and "rank 1" in err.value.message


# ------------------------------------------------------------------------ malformed


BAD_REST = [
    # (method, path, body, status, words in the message)
    ("POST", "/v1/models/vae:predict", b"{not json", 400, "JSON"),
    ("POST", "/v1/models/vae:predict", b"[1, 2]", 400, "object"),
    ("POST", "/v1/models/vae:predict", {"signature_name": "decode"}, 400, "instances"),
    ("POST", "/v1/models/vae:predict", {"instances": [[0.0] * 4], "inputs": {}}, 400, "both"),
    ("POST", "/v1/models/vae:predict", {"signature_name": "nope", "instances": [[0.0] * 4]},
     400, "nope"),
    ("POST", "/v1/models/nope:predict", {"instances": [[0.0] * 4]}, 404, "nope"),
    ("POST", "/v1/models/vae/versions/9:predict", {"instances": [[0.0] * 4]}, 404, "9"),
    ("POST", "/v1/models/vae/labels/gold:predict", {"instances": [[0.0] * 4]}, 400, "gold"),
    ("POST", "/v1/models/vae:predict", {"instances": [[0.0] * 3]}, 400, "shape"),
    ("POST", "/v1/models/vae:predict", {"instances": [[[0.0] * 4]]}, 400, "rank"),
    ("POST", "/v1/models/vae:predict", {"instances": [["a", "b", "c", "d"]]}, 400, "numbers"),
    ("POST", "/v1/models/vae:predict", {"instances": [[0.0] * 4, [0.0] * 3]}, 400, "rectangular"),
    ("POST", "/v1/models/vae:predict", {"instances": []}, 400, "non-empty"),
    ("POST", "/v1/models/vae:predict", {"instances": [{"x": [0.0] * 4}]}, 400, "missing"),
    ("POST", "/v1/models/vae:predict",
     {"signature_name": "sample", "inputs": {"seed": [], "temperature": []}}, 400, "empty"),
    ("POST", "/v1/models/vae:predict",
     {"signature_name": "sample", "inputs": {"seed": 1, "temperature": 1.0}}, 400, "rank"),
    ("POST", "/v1/models/vae:predict",
     {"signature_name": "sample",
      "inputs": {"seed": list(range(MAX_NUM_SAMPLES + 1)),
                 "temperature": [1.0] * (MAX_NUM_SAMPLES + 1)}},
     400, "limit"),
    ("POST", "/v1/models/vae:predict",
     {"signature_name": "sample", "inputs": {"seed": [2.5], "temperature": [1.0]}},
     400, "integers"),
    ("POST", "/v1/models/vae:predict",
     {"signature_name": "sample", "inputs": {"seed": [2], "temperature": ["hot"]}},
     400, "numbers"),
    ("POST", "/v1/models/vae:predict",
     {"signature_name": "sample", "inputs": {"temperature": [1.0]}},
     400, "seed"),
    ("POST", "/v1/models/vae:predict",
     {"signature_name": "sample", "inputs": {"seed": [2 ** 70], "temperature": [1.0]}},
     400, "range"),
    ("POST", "/v1/models/vae:frobnicate", {"instances": [[0.0] * 4]}, 404, "Malformed"),
    ("GET", "/v1/models/nope", None, 404, "nope"),
    ("GET", "/v1/models/vae/versions/3/metadata", None, 404, "3"),
    ("GET", "/v1/models/vae/versions/x", None, 400, "integer"),
    ("GET", "/v2/whatever", None, 404, "Malformed"),
]


@pytest.mark.parametrize("method,path,body,status,words", BAD_REST,
                         ids=[f"{m} {p} {str(b)[:40]}" for m, p, b, *_ in BAD_REST])
def test_malformed_rest_requests_get_4xx_and_server_keeps_serving(rest, method, path, body,
                                                                   status, words):
    with pytest.raises(ServingError) as err:
        rest.request(method, path, body)
    assert err.value.status == status, err.value
    assert words.lower() in err.value.message.lower(), err.value.message
    assert json.loads(err.value.body)["error"] == err.value.message   # TF Serving's body
    assert rest.decode(latents(3, 1)).shape == (1, *IMAGE_SHAPE)      # still serving


def _raw_http(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        response = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("data,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"POST /v1/models/vae:predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    (b"POST /v1/models/vae:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n"
     b"Connection: close\r\n\r\n{}", 413),
    (b"BREW /v1/models/vae HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
], ids=["garbage", "chunked", "huge", "method"])
def test_malformed_http_gets_json_errors(server, rest, data, status):
    code, body = _raw_http(server.rest_port, data)
    assert code == status and body["error"]
    assert rest.status()[0]["state"] == "AVAILABLE"                   # still serving


def test_malformed_grpc_requests(grpc_client, server):
    with pytest.raises(ServingError) as err:
        grpc_client.sample(0)
    assert err.value.status == "INVALID_ARGUMENT" and "empty" in err.value.message
    with pytest.raises(ServingError) as err:
        grpc_client.sample(MAX_NUM_SAMPLES + 1)
    assert err.value.status == "INVALID_ARGUMENT" and "limit" in err.value.message
    with pytest.raises(ServingError) as err:
        grpc_client.predict_proto("nope", {"z": latents(0, 1)})
    assert err.value.status == "INVALID_ARGUMENT" and "nope" in err.value.message
    with pytest.raises(ServingError) as err:
        grpc_client.predict_proto("decode", {"z": np.zeros((2, LATENT_DIM + 1), "float32")})
    assert err.value.status == "INVALID_ARGUMENT" and "shape" in err.value.message
    with pytest.raises(ServingError) as err:
        grpc_client.predict_proto("decode", {"z": np.array([["a"] * LATENT_DIM])})
    assert err.value.status == "INVALID_ARGUMENT"
    with GrpcClient(f"127.0.0.1:{server.grpc_port}", model="nope") as other:
        with pytest.raises(ServingError) as err:
            other.status()
        assert err.value.status == "NOT_FOUND"
    with GrpcClient(f"127.0.0.1:{server.grpc_port}", version=4) as other:
        with pytest.raises(ServingError) as err:
            other.decode(latents(0, 1))
        assert err.value.status == "NOT_FOUND"
    assert grpc_client.sample(2, seed=3).shape == (2, *IMAGE_SHAPE)    # still serving


# ------------------------------------------------------------------------ load


def test_load_500_concurrent_requests_zero_errors(server, rest, grpc_client, reference):
    """500 REST and 500 gRPC predict requests from a pool of 32 threads; every answer
    is compared with the in-process result for its own input."""
    zs = [latents(100 + i, 1 + i % 4) for i in range(10)]
    decode_want = [reference("decode", z=z)["mean"] for z in zs]
    seeds = list(range(10))
    sample_want = [reference("sample", seed=s + np.arange(4, dtype=np.int64),
                             temperature=np.full(4, 0.7, np.float32))["images"] for s in seeds]

    def one(i, c):
        if i % 2:
            got = c.decode(zs[i % 10])
            np.testing.assert_allclose(got, decode_want[i % 10], rtol=0, atol=1e-6)
        else:
            got = c.sample(4, temperature=0.7, seed=seeds[i % 10])
            np.testing.assert_allclose(got, sample_want[i % 10], rtol=0, atol=1e-6)
        return True

    for c in (rest, grpc_client):
        errors = []
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            futures = [pool.submit(one, i, c) for i in range(500)]
            for f in concurrent.futures.as_completed(futures, timeout=240):
                try:
                    assert f.result() is True
                except Exception as err:  # noqa: BLE001 - count every failure
                    errors.append(repr(err))
        elapsed = time.perf_counter() - start
        assert errors == [], f"{len(errors)} of 500 failed, e.g. {errors[:3]}"
        print(f"{type(c).__name__}: 500 requests in {elapsed:.1f} s "
              f"({500 / elapsed:.0f}/s)")
    assert rest.status()[0]["state"] == "AVAILABLE"


# ------------------------------------------------------------------------ client behaviour


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_retries_connection_errors_then_gives_up():
    port = _free_port()
    c = RestClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.01, timeout=2)
    start = time.perf_counter()
    with pytest.raises(ServingConnectionError) as err:
        c.status()
    assert "3 attempts" in err.value.message
    assert time.perf_counter() - start < 5
    g = GrpcClient(f"127.0.0.1:{port}", retries=1, backoff=0.01, timeout=2)
    with pytest.raises(ServingConnectionError):
        g.status()
    g.close()


def test_client_retry_reaches_a_server_that_comes_up_late(exported_vae):
    port = _free_port()
    started = {}

    def start_later():
        time.sleep(0.5)
        started["server"] = ModelServer(
            model_base_path=exported_vae / "savedmodel" / "vae").start(
            rest_port=port, grpc_port=-1)

    thread = threading.Thread(target=start_later)
    thread.start()
    try:
        c = RestClient(f"http://127.0.0.1:{port}", retries=12, backoff=0.05, timeout=10)
        assert c.status()[0]["state"] == "AVAILABLE"
    finally:
        thread.join()
        started["server"].stop()


def test_client_timeout():
    with socket.socket() as listener:      # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        c = RestClient(f"http://127.0.0.1:{port}", timeout=0.5, retries=3)
        start = time.perf_counter()
        with pytest.raises(ServingConnectionError) as err:
            c.status()
        assert err.value.status == "DEADLINE_EXCEEDED"
        assert time.perf_counter() - start < 3     # a timeout is not retried


def test_error_class_carries_the_server_message(rest):
    with pytest.raises(ServingError) as err:
        rest.sample(MAX_NUM_SAMPLES * 10)
    assert isinstance(err.value, client_lib.ServingError)
    assert err.value.status == 400
    assert f"[1, {MAX_NUM_SAMPLES}]" in err.value.message
    assert str(err.value).startswith("[400]")


def test_one_error_family_for_server_and_clients(grpc_client, server):
    assert keras_vae.serving.ServingError is client_lib.ServingError is errors.ServingError
    assert issubclass(keras_vae.serving.ServingConnectionError, errors.ServingError)
    # the server's own refusal: a code name and TF Serving's HTTP status for it
    with pytest.raises(errors.ServingError) as err:
        server.predict("vae", "decode", {"z": np.zeros((1, LATENT_DIM + 1), "float32")})
    assert err.value.code == "INVALID_ARGUMENT" and err.value.http_status == 400
    assert err.value.status == "INVALID_ARGUMENT" and "shape" in err.value.message
    with pytest.raises(errors.ServingError) as err:
        server.model("nope")
    assert (err.value.code, err.value.http_status) == ("NOT_FOUND", 404)
    # a gRPC client sees the same code and status
    with pytest.raises(errors.ServingError) as err:
        grpc_client.decode(np.zeros((1, LATENT_DIM + 1), "float32"))
    assert (err.value.code, err.value.http_status) == ("INVALID_ARGUMENT", 400)


def test_serves_an_export_folder_written_before_the_redesign():
    """tests/support/compat/export (the code at 75878b2): its manifest names the SavedModel,
    and decode over REST and gRPC equals the reference decoder mean."""
    reference = np.load(COMPAT_REFERENCE)
    z, want = reference["z"].astype("float32"), reference["vae_decode_mean"]
    with ModelServer(model_base_path=COMPAT_EXPORT) as srv:
        assert sorted(srv.models["vae"].versions) == [1]
        rest = RestClient(f"http://127.0.0.1:{srv.rest_port}", model="vae")
        np.testing.assert_allclose(rest.decode(z), want, rtol=0, atol=1e-5)
        with GrpcClient(f"127.0.0.1:{srv.grpc_port}", model="vae") as grpc_client:
            np.testing.assert_allclose(grpc_client.decode(z), want, rtol=0, atol=1e-5)
            images = grpc_client.sample(5, seed=3)
        assert images.shape == (5, *IMAGE_SHAPE)
        assert {"decode", "sample", "encode", "serving_default"} <= set(rest.signatures())


def test_export_folder_without_a_savedmodel_is_refused_clearly(tmp_path):
    shutil.copytree(COMPAT_EXPORT, tmp_path / "out", ignore=shutil.ignore_patterns("savedmodel"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    del manifest["artefacts"]["savedmodel"]
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(errors.ServingError) as err:
        ModelServer(model_base_path=tmp_path / "out")
    assert err.value.code == "NOT_FOUND" and "savedmodel" in err.value.message


# ------------------------------------------------------------------------ TF Serving files


def test_models_config_versions_and_labels(exported_vae, tmp_path):
    shipped = read_model_config(TF_SERVING / "models.config")
    assert [m["name"] for m in shipped] == ["vae"]
    assert shipped[0]["base_path"] == "/models/vae"
    assert shipped[0]["labels"] == {"stable": 1, "canary": 2}
    # the same config, pointed at a base path with two versions, served by the dev server
    base = tmp_path / "vae"
    shutil.copytree(exported_vae / "savedmodel" / "vae" / "1", base / "1")
    shutil.copytree(exported_vae / "savedmodel" / "vae" / "1", base / "2")
    text = (TF_SERVING / "models.config").read_text().replace('"/models/vae"', f'"{base}"')
    (tmp_path / "models.config").write_text(text)
    with ModelServer(model_config_file=tmp_path / "models.config") as srv:
        versions = [s["version"] for s in RestClient(
            f"http://127.0.0.1:{srv.rest_port}").status()]
        assert versions == ["2", "1"]
        one = RestClient(f"http://127.0.0.1:{srv.rest_port}", version=2).status()
        assert [s["version"] for s in one] == ["2"] and one[0]["state"] == "AVAILABLE"
        assert GrpcClient(f"127.0.0.1:{srv.grpc_port}", label="stable").status()[0][
            "version"] == "1"
        z = latents(4, 2)
        results = [RestClient(f"http://127.0.0.1:{srv.rest_port}", **kw).decode(z)
                   for kw in ({"label": "stable"}, {"label": "canary"}, {"version": 1}, {})]
        for r in results[1:]:
            np.testing.assert_allclose(r, results[0], rtol=0, atol=1e-6)
        g = GrpcClient(f"127.0.0.1:{srv.grpc_port}", label="canary")
        np.testing.assert_allclose(g.decode(z), results[0], rtol=0, atol=1e-6)
        g.close()


def test_batching_parameters_file():
    fields = {}
    for line in (TF_SERVING / "batching_parameters.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"(\w+)\s*\{\s*value:\s*(\d+)\s*\}", line) or \
            re.fullmatch(r"(\w+):\s*(\w+)", line)
        assert m, f"not a BatchingParameters text-proto line: {line!r}"
        fields.setdefault(m[1], []).append(m[2])
    known = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
             "num_batch_threads", "pad_variable_length_inputs", "allowed_batch_sizes",
             "thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"}
    assert set(fields) <= known, set(fields) - known
    sizes = [int(v) for v in fields["allowed_batch_sizes"]]
    assert sizes == sorted(sizes) and sizes[-1] == int(fields["max_batch_size"][0])


def test_compose_file_and_docker_run_agree():
    compose = yaml.safe_load((TF_SERVING / "docker-compose.yml").read_text())
    service = compose["services"]["vae"]
    image, tag = service["image"].split(":")
    assert image == "tensorflow/serving"
    assert tuple(int(p) for p in tag.split(".")[:2]) >= (2, 21), tag
    assert {"8500:8500", "8501:8501"} <= set(service["ports"])
    args = service["command"]
    for flag in ("--model_config_file=/models/models.config", "--enable_batching=true",
                 "--batching_parameters_file=/models/batching_parameters.txt"):
        assert flag in args
    run = (TF_SERVING / "docker-run.sh").read_text()
    assert service["image"] in run
    for flag in args:
        assert flag in run, flag


# ------------------------------------------------------------------------ command line


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a non-interactive shell's '&' does


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_command_line_serves_and_stops(exported_vae, tmp_path, stop):
    # SIGINT: started with SIGINT ignored (a background job of a script, as CI once ran
    # it: the server then never stopped); SIGTERM: what `docker stop` and init systems send.
    cmd = [sys.executable, "-m", "keras_vae.serving", "serve", str(exported_vae),
           "--rest_api_port", "0", "--port", "-1", "--max_num_samples", "8"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    stderr = open(tmp_path / "stderr.txt", "w+")  # a file: a full pipe would block the child
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                            preexec_fn=_ignore_sigint if stop == "SIGINT" else None)
    try:
        lines = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "REST http://" in line:
                break
        url = re.search(r"http://[\d.]+:\d+", "".join(lines))
        assert url, f"no URL printed: {lines} {(tmp_path / 'stderr.txt').read_text()[-3000:]}"
        assert "production is TF Serving" in "".join(lines)
        c = RestClient(url[0])
        assert c.sample(8, seed=1).shape == (8, *IMAGE_SHAPE)
        with pytest.raises(ServingError) as err:
            c.sample(9)
        assert err.value.status == 400
    finally:
        proc.send_signal(getattr(signal, stop))
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    stderr.close()
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()[-6000:]


# ------------------------------------------------------------------------ TF Serving's rules


def test_batching_refuses_rank_0_inputs_like_tf_serving(exported_vae):
    """Behind our shipped batching config, an export with scalar sample inputs (before
    contract 2) is refused with TF Serving's own message; decode still batches."""
    manifest = json.loads((exported_vae / "manifest.json").read_text())
    base = exported_vae / manifest["artefacts"]["savedmodel"]["path"]
    import tensorflow as tf

    fn = tf.saved_model.load(str(base)).signatures["sample"]
    scalar = any(spec.shape.rank == 0 for spec in fn.structured_input_signature[1].values())
    with ModelServer(model_base_path=base.parent,
                     batching_parameters_file=TF_SERVING / "batching_parameters.txt") as srv:
        rest = RestClient(f"http://127.0.0.1:{srv.rest_port}")
        assert rest.decode(latents(5, 3)).shape == (3, *IMAGE_SHAPE)
        if scalar:
            for c in (rest, GrpcClient(f"127.0.0.1:{srv.grpc_port}")):
                with pytest.raises(ServingError) as err:
                    c.sample(3, seed=1)
                assert err.value.message == ("Batching Run() input tensors must have at least "
                                             "one dimension")
        with pytest.raises(ServingError) as err:      # above the batcher's max_batch_size
            rest.decode(latents(6, 257))
        assert "Task size 257 is larger than maximum input batch size 256" in err.value.message


def test_batching_merges_concurrent_row_requests(tmp_path):
    """Contract-2 shapes (per-row seed and temperature): concurrent requests are merged
    into fewer runs, and each row's answer equals the unbatched one."""
    from serving_support import write_row_savedmodel

    write_row_savedmodel(tmp_path / "vae", delay_s=0.02)
    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 20000 }\n"
                      "num_batch_threads { value: 2 }\nallowed_batch_sizes: 16\n"
                      "allowed_batch_sizes: 64\n")
    with ModelServer(model_base_path=tmp_path / "vae") as plain:
        want = RestClient(f"http://127.0.0.1:{plain.rest_port}").predict(
            {"seed": np.arange(8), "temperature": np.full(8, 0.5)}, signature_name="sample")
    with ModelServer(model_base_path=tmp_path / "vae", batching_parameters_file=params) as srv:
        rest = RestClient(f"http://127.0.0.1:{srv.rest_port}")

        def one(i):
            return rest.predict({"seed": [i], "temperature": [0.5]}, signature_name="sample")

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(one, range(8)))
        for i, result in enumerate(got):
            np.testing.assert_allclose(result["z"], want["z"][i:i + 1], rtol=0, atol=1e-6)
            np.testing.assert_allclose(result["images"], want["images"][i:i + 1], atol=1e-6)
        assert srv.batcher.batches_run() < 8


def test_size_depth_and_framing_limits(exported_vae):
    from keras_vae.serving.devserver.limits import Limits

    limits = Limits(max_num_samples=512, max_response_bytes=4 << 20, max_request_bytes=1 << 20,
                    request_timeout_s=1.0)
    with ModelServer(model_base_path=exported_vae, limits=limits) as srv:
        rest = RestClient(f"http://127.0.0.1:{srv.rest_port}")
        with pytest.raises(errors.PayloadTooLargeError) as err:      # 512 rows x 3 outputs
            rest.decode(latents(7, 512))
        assert err.value.status == 413 and "response too large" in err.value.message
        with pytest.raises(ServingError) as err:                     # 4,096 rows: 400, fast
            rest.decode(latents(7, 4096))
        assert err.value.status == 400 and "[1, 512]" in err.value.message
        with pytest.raises(errors.PayloadTooLargeError):
            rest.predict_json(b'{"instances": [' + b"0," * (1 << 20) + b"0]}")
        with GrpcClient(f"127.0.0.1:{srv.grpc_port}") as g:
            with pytest.raises(errors.PayloadTooLargeError) as err:
                g.decode(latents(7, 512))
            assert err.value.code == "RESOURCE_EXHAUSTED"
        with pytest.raises(ServingError) as err:
            rest.predict_json(("[" * 5000 + "]" * 5000).encode())
        assert err.value.status == 400 and "nested" in err.value.message
        for length, status in (("١٢", 400), ("-1", 400), ("9" * 30, 400), ("99999999", 413)):
            code, body = _raw_http(srv.rest_port, (
                f"POST /v1/models/vae:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}"
                "\r\n\r\n{}").encode())
            assert code == status and body["error"], (length, code, body)
        start = time.perf_counter()              # a body that never comes: 408, no hang
        code, body = _raw_http(srv.rest_port, b"POST /v1/models/vae:predict HTTP/1.1\r\n"
                               b"Host: x\r\nContent-Length: 100\r\n\r\n{")
        assert code == 408 and time.perf_counter() - start < 5
        assert rest.decode(latents(8, 2)).shape == (2, *IMAGE_SHAPE)


def test_no_request_desync(server):
    """A body on GET/PUT/DELETE is read and dropped: never answered as a second request."""
    smuggled = b"GET /v1/models/vae/metadata HTTP/1.1\r\nHost: x\r\n\r\n"
    for method in ("GET", "PUT", "DELETE"):
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as sock:
            sock.sendall(f"{method} /v1/models/vae HTTP/1.1\r\nHost: x\r\nContent-Length: "
                         f"{len(smuggled)}\r\n\r\n".encode() + smuggled +
                         b"GET /v1/models/vae HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.count(b"HTTP/1.1 ") == 2 and b"signature_def" not in data, (method, data)


def test_grpc_refuses_bad_protobufs_and_false_shapes_before_building(server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    with pytest.raises(grpc.RpcError) as err:
        predict(b"\xff\xff\xff\xff", timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "vae", "decode"
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.float32(1.0)))
    del request.inputs["z"].tensor_shape.dim[:]
    for size in (16777216, 16):
        request.inputs["z"].tensor_shape.dim.add(size=size)
    assert len(request.SerializeToString()) < 64
    with pytest.raises(grpc.RpcError) as err:
        predict(request.SerializeToString(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "16777216" in err.value.details()
    channel.close()


def test_connection_cap_and_host(exported_vae):
    from keras_vae.serving.devserver import build_parser
    from keras_vae.serving.devserver.limits import Limits

    assert build_parser().parse_args([]).host == "127.0.0.1"
    with ModelServer(model_base_path=exported_vae,
                     limits=Limits(rest_api_num_threads=2)) as srv:
        srv._http.slot_wait_s = 0.2
        idle = [socket.create_connection(("127.0.0.1", srv.rest_port)) for _ in range(2)]
        time.sleep(0.3)
        code, body = _raw_http(srv.rest_port, b"GET /v1/models/vae HTTP/1.1\r\n\r\n")
        assert code == 503 and "busy" in body["error"]
        for sock in idle:
            sock.close()
        time.sleep(0.3)
        assert RestClient(f"http://127.0.0.1:{srv.rest_port}").status()[0]["version"] == "1"


def test_web_page_answers_400_for_a_nul_byte(exported_vae, tmp_path, caplog):
    from keras_vae.serving import webapp

    ort = tmp_path / "ort"
    ort.mkdir()
    for name in webapp.ORT_FILES:
        (ort / name).write_bytes(b"")
    server = webapp.serve_web(exported_vae, port=0, ort_path=ort, block=False)
    try:
        port = server.server_address[1]
        for target in (b"/%00", b"/model/%00.json", b"/" + b"a" * 5000):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET " + target + b" HTTP/1.0\r\n\r\n")
                answer = sock.recv(4096)
            assert answer.split()[1] in (b"400", b"404"), answer[:100]
        assert "Traceback" not in caplog.text
    finally:
        server.shutdown()
        server.server_close()
