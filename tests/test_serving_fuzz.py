"""A seeded fuzz of the development server (`keras-vae serve`), REST and gRPC, on 127.0.0.1.

What must show (issue 15): >= 1,000 REST and >= 200 gRPC hostile requests, made by
mutating good ones (bodies, headers, methods, paths, JSON depth, dtypes, shapes,
Content-Length, protobuf bytes), give 0 crashes, 0 5xx, 0 hangs; each answer is a 4xx
(JSON {"error": message}) or a gRPC error status with a message (a mutation that leaves
the request valid may answer 200 / OK); a good request is answered after each bad one;
a body sent with a method that takes none is never parsed as a second request; the
server's peak RSS stays under PEAK_RSS_BOUND_MB.

The server runs as its own process (``python -m keras_vae.serving serve``) with small
limits, so the amplification cases are cheap: 512 rows and 4 MiB per answer, 1 MiB per
request, 1.5 s for a body to arrive.
"""

import json
import os
import random
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from serving_support import LATENT_DIM

SEED = 20261201
N_REST = 1000
N_GRPC = 220
MAX_ROWS = 512
MAX_RESPONSE = 4 * 1024 * 1024
MAX_REQUEST = 1024 * 1024
BODY_TIMEOUT_MS = 1500
#: The server's peak resident memory over the whole fuzz (measured ~0.8 GB on TF 2.21).
PEAK_RSS_BOUND_MB = 1500
#: Seconds any one answer may take (a hang is anything longer).
ANSWER_TIMEOUT_S = 10
TIME_BUDGET_S = 300   # ~120 s measured at load average 13 on 2 cores; ~25 s idle


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fuzz_server(request, tmp_path_factory):
    # $KERAS_VAE_FUZZ_EXPORT: an export folder to fuzz instead of the session's own
    exported_vae = os.environ.get("KERAS_VAE_FUZZ_EXPORT") or \
        request.getfixturevalue("exported_vae")
    rest_port, grpc_port = _free_port(), _free_port()
    cmd = [sys.executable, "-m", "keras_vae.serving", "serve", str(exported_vae),
           "--host", "127.0.0.1", "--rest_api_port", str(rest_port), "--port", str(grpc_port),
           "--max_num_samples", str(MAX_ROWS), "--max_response_bytes", str(MAX_RESPONSE),
           "--max_request_bytes", str(MAX_REQUEST),
           "--rest_api_timeout_in_ms", str(BODY_TIMEOUT_MS), "--rest_api_num_threads", "16"]
    log = open(tmp_path_factory.mktemp("fuzz") / "server.log", "w+")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    line = proc.stdout.readline()
    if "REST http://" not in line:
        proc.kill()
        log.seek(0)
        pytest.fail(f"the server did not start: {line!r} {log.read()[-3000:]}")
    yield proc, rest_port, grpc_port, log
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


# ------------------------------------------------------------------------ raw HTTP


def _read_answers(sock):
    """Every HTTP answer on `sock` until the server closes it: [(status, body bytes)]."""
    data = b""
    sock.settimeout(ANSWER_TIMEOUT_S)
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    answers = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"a truncated answer: {data[:300]!r}"
        status = int(head.split(b" ", 2)[1])
        if 100 <= status < 200:        # an interim answer (100 Continue)
            data = rest
            continue
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head)[1])
        answers.append((status, rest[:length]))
        data = rest[length:]
    return answers


def _raw(port, data, send_all=True):
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S) as sock:
        try:
            sock.sendall(data) if send_all else sock.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_answers(sock)


def _http(method, path, body=b"", headers=None, length=None):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    elif body:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


# ------------------------------------------------------------------------ REST cases


def _good_bodies(signatures, rng):
    """Good predict bodies for every signature, made from its metadata."""
    bodies = []
    for name, sig in signatures.items():
        inputs = {}
        rows = rng.randint(1, 4)
        for key, info in sig["inputs"].items():
            shape = [rows if d == -1 else d for d in info["shape"]]
            if info["dtype"] in ("DT_INT32", "DT_INT64"):
                value = np.full(shape, 2 if key == "num_samples" else rng.randint(0, 9))
            else:
                value = np.full(shape, 0.5)
            inputs[key] = value.tolist()
        bodies.append({"signature_name": name, "inputs": inputs})
    return bodies


def _nest(depth, leaf="0.5"):
    return "[" * depth + leaf + "]" * depth


def _mutate_body(rng, good):
    raw = json.dumps(good).encode()
    kind = rng.randrange(14)
    if kind == 0:
        return raw[:rng.randrange(len(raw))]
    if kind == 1:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    if kind == 3:
        return f'{{"instances": {_nest(rng.choice([40, 200, 1000, 5000, 100000]))}}}'.encode()
    if kind == 4:
        return ('{"inputs": ' * rng.randint(33, 3000) + "1" + "}" * 3000).encode()
    if kind == 5:   # amplification: many rows of latents (4,096 rows: a 336 KB body)
        rows = rng.choice([MAX_ROWS + 1, 4096])
        return json.dumps({"signature_name": "decode",
                           "instances": [[0.123456789] * LATENT_DIM] * rows}).encode()
    if kind == 6:   # within the row limit, above the response limit
        return json.dumps({"signature_name": "decode",
                           "instances": [[0.1] * LATENT_DIM] * MAX_ROWS}).encode()
    if kind == 7:   # values of another kind
        value = rng.choice([None, True, "x", {}, [], 2 ** 70, -2 ** 63 - 1, 1e308, "NaN"])
        body = json.loads(raw)
        key = rng.choice(list(body["inputs"]))
        body["inputs"][key] = value
        return json.dumps(body).encode()
    if kind == 8:   # shapes: an extra dimension, ragged, empty
        body = json.loads(raw)
        key = rng.choice(list(body["inputs"]))
        body["inputs"][key] = rng.choice([[body["inputs"][key]], [[1, 2], [3]], [], [[]]])
        return json.dumps(body).encode()
    if kind == 9:
        return raw.replace(b"0.5", rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))
    if kind == 10:
        body = json.loads(raw)
        body[rng.choice(["extra", "instances", "signature_name"])] = rng.choice([1, "nope", []])
        return json.dumps(body).encode()
    if kind == 11:
        return raw.decode().encode("utf-16")
    if kind == 12:
        return b'{"inputs": "' + b"\\u" * rng.randint(1, 50) + b'"}'
    return json.dumps({"signature_name": "\x00" * rng.randint(1, 5), "inputs": {}}).encode()


def _rest_case(rng, good, port):
    """One hostile REST exchange: (description, bytes to send, expectation)."""
    body = json.dumps(good).encode()
    path = "/v1/models/vae:predict"
    kind = rng.randrange(10)
    if kind <= 3:
        return "body", _http("POST", path, _mutate_body(rng, good)), "answer"
    if kind == 4:
        length = rng.choice(["١٢", "-5", "99999999999999999999", "12abc", " ", "0x10",
                             "1e3", "+7", "²", "9" * 40, "10, 20"])
        return f"length {length!r}", _http("POST", path, body, length=length), "answer"
    if kind == 5:
        headers = rng.choice([{"Transfer-Encoding": "chunked"},
                              {"Content-Length": "3"}, {"Expect": "100-continue"},
                              {"Content-Type": "text/\x7f"}, {"X-" + "a" * 70000: "b"}])
        return f"headers {str(headers)[:40]}", _http("POST", path, body, headers=headers), \
            "answer"
    if kind == 6:   # a body on a method that takes none, then a smuggled request
        method = rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
        smuggled = b"GET /v1/models/vae/metadata HTTP/1.1\r\nHost: x\r\n\r\n"
        return f"desync {method}", _http(method, "/v1/models/vae", smuggled), "one answer"
    if kind == 7:
        method = rng.choice(["BREW", "HEAD", "GET", "POST", "TRACE", "G\x00T", "CONNECT"])
        target = rng.choice(["/v1/models/vae", "/v1/models/vae/versions/١", "/%00", "/\x00",
                             "/v1/models/" + "a" * 70000, "/v1/models/vae/labels/%ff:predict",
                             "*", "/v1/models/vae/versions/99999999999999999999999",
                             "/v1/models/vae:classify", "/../../etc/passwd"])
        return f"path {method} {target[:40]!r}", _http(method, target, b""), \
            "no body" if method == "HEAD" else "answer"
    if kind == 8:
        garbage = rng.choice([b"\r\n\r\n", b"GET\r\n\r\n", bytes(rng.randrange(256)
                                                             for _ in range(200)) + b"\r\n\r\n",
                              b"POST / HTTP/9.9\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"a: b\r\n" *
                              200 + b"\r\n"])
        return "garbage", garbage, "answer"
    # a huge body announced: the server answers from the headers (a 60 MB claim)
    return "huge", _http("POST", path, b"{" + b" " * 65536, length=60_000_000), "answer"


def _check_rest_answers(what, answers, expectation):
    assert answers, f"{what}: no answer (the connection closed without one)"
    if expectation == "one answer":
        assert len(answers) == 1, f"{what}: {len(answers)} answers (request desync)"
    for status, body in answers:
        assert status < 500, f"{what}: HTTP {status} {body[:300]!r}"
        if status >= 400 and expectation != "no body":     # HEAD: headers only
            assert json.loads(body)["error"], f"{what}: no message"


def _vm_hwm_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_fuzz_rest(fuzz_server):
    from keras_vae.serving.client import RestClient

    proc, port, _, log = fuzz_server
    rng = random.Random(SEED)
    client = RestClient(f"http://127.0.0.1:{port}", timeout=ANSWER_TIMEOUT_S, retries=0)
    goods = _good_bodies(client.signatures(), rng)
    z = np.full((2, LATENT_DIM), 0.25, np.float32)
    want = client.decode(z)
    start, statuses, slow = time.monotonic(), {}, 0
    for i in range(N_REST):
        what, data, expectation = _rest_case(rng, rng.choice(goods), port)
        t0 = time.monotonic()
        answers = _raw(port, data)
        slow = max(slow, time.monotonic() - t0)
        _check_rest_answers(f"case {i} ({what})", answers, expectation)
        for status, _ in answers:
            statuses[status] = statuses.get(status, 0) + 1
        np.testing.assert_array_equal(client.decode(z), want)      # still serving
    # a body that never finishes arrives: 408 after the deadline, not a hang
    t0 = time.monotonic()
    ((status, _),) = _raw(port, _http("POST", "/v1/models/vae:predict", b"{", length=1000))
    assert status == 408 and time.monotonic() - t0 < BODY_TIMEOUT_MS / 1000 + 3
    elapsed = time.monotonic() - start
    rss = _vm_hwm_mb(proc.pid)
    print(f"REST fuzz: {N_REST} cases in {elapsed:.1f} s, answers {sorted(statuses.items())}, "
          f"slowest {slow:.2f} s, server peak RSS {rss:.0f} MB")
    assert proc.poll() is None, "the server died"
    assert 413 in statuses and 400 in statuses and statuses.get(200, 0) < N_REST // 4
    assert rss < PEAK_RSS_BOUND_MB, f"peak RSS {rss:.0f} MB"
    assert elapsed < TIME_BUDGET_S
    log.seek(0)
    assert "Traceback" not in log.read(), "the server logged a traceback"


# ------------------------------------------------------------------------ gRPC cases


def _good_predict(signatures, rng):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    name = rng.choice(sorted(signatures))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "vae"
    request.model_spec.signature_name = name
    for key, info in signatures[name]["inputs"].items():
        shape = [2 if d == -1 else d for d in info["shape"]]
        dtype = {"DT_INT32": np.int32, "DT_INT64": np.int64}.get(info["dtype"], np.float32)
        value = np.full(shape, 2 if key == "num_samples" else 1, dtype)
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def _mutate_proto(rng, request):
    """Bytes of a mutated PredictRequest (structured or byte-level)."""
    kind = rng.randrange(9)
    request = type(request).FromString(request.SerializeToString())
    key = rng.choice(list(request.inputs))
    tensor = request.inputs[key]
    if kind == 0:   # a claimed shape far beyond the values (the 43-byte request)
        del tensor.tensor_shape.dim[:]
        for size in rng.choice([[16777216, 16], [2 ** 40], [3, 2 ** 31], [1] * 9]):
            tensor.tensor_shape.dim.add(size=size)
    elif kind == 1:
        tensor.tensor_shape.dim.add(size=-rng.randint(1, 9))
    elif kind == 2:
        tensor.tensor_content = tensor.tensor_content[:rng.randrange(1, 9)] + b"\x00"
    elif kind == 3:
        tensor.dtype = rng.choice([0, 7, 8, 14, 18, 21, 100, 999])
    elif kind == 4:
        request.model_spec.signature_name = rng.choice(["nope", "\u00e9" * 3, "__init__"])
    elif kind == 5:
        request.output_filter.append(rng.choice(["nope", "", "z" * 500]))
    elif kind == 6:
        tensor.tensor_shape.unknown_rank = True
    data = bytearray(request.SerializeToString())
    if kind == 7:
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 8:
        data = data[:rng.randrange(len(data))] + bytes(rng.randrange(256)
                                                       for _ in range(rng.randrange(20)))
    return bytes(data)


def test_fuzz_grpc(fuzz_server):
    import grpc

    from keras_vae.serving.client import GrpcClient

    proc, _, port, _ = fuzz_server
    rng = random.Random(SEED + 1)
    client = GrpcClient(f"127.0.0.1:{port}", timeout=ANSWER_TIMEOUT_S, retries=0)
    signatures = client.signatures()
    z = np.full((2, LATENT_DIM), 0.25, np.float32)
    want = client.decode(z)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    methods = {m: channel.unary_unary(f"/tensorflow.serving.{m}")
               for m in ("PredictionService/Predict", "PredictionService/GetModelMetadata",
                         "ModelService/GetModelStatus", "PredictionService/Classify")}
    allowed = {"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
               "UNIMPLEMENTED", "OUT_OF_RANGE"}
    codes, start = {}, time.monotonic()
    for i in range(N_GRPC):
        if i % 5 == 4:
            method = rng.choice(sorted(methods))
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:
            method = "PredictionService/Predict"
            data = _mutate_proto(rng, _good_predict(signatures, rng))
        try:
            methods[method](data, timeout=ANSWER_TIMEOUT_S)
            code = "OK"
        except grpc.RpcError as err:
            code = err.code().name
            assert code in allowed, f"case {i} ({method}): {code} {err.details()}"
            assert err.details(), f"case {i}: no message"
        codes[code] = codes.get(code, 0) + 1
        np.testing.assert_array_equal(client.decode(z), want)      # still serving
    elapsed = time.monotonic() - start
    channel.close()
    client.close()
    rss = _vm_hwm_mb(proc.pid)
    print(f"gRPC fuzz: {N_GRPC} cases in {elapsed:.1f} s, codes {sorted(codes.items())}, "
          f"server peak RSS {rss:.0f} MB")
    assert proc.poll() is None and codes.get("INVALID_ARGUMENT", 0) > N_GRPC // 2
    assert codes.get("OK", 0) < N_GRPC // 4
    assert rss < PEAK_RSS_BOUND_MB, f"peak RSS {rss:.0f} MB"
    assert elapsed < TIME_BUDGET_S
