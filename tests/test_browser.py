"""The browser sampler page (serving/web) in Debian's headless Chromium, driven through
the DevTools protocol with a small stdlib WebSocket client (no extra Python package).

Checks: the page loads onnxruntime-web and the ONNX sampler from localhost only,
draws a non-blank grid of samples, reacts to the temperature slider, and logs no
console errors or exceptions. Needs /usr/bin/chromium (apt-get install -y chromium)
and `npm ci --prefix serving/node`; a missing tool FAILS, it never skips.
"""

import base64
import io
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from serving_support import NODE_DIR, require_node_modules, require_tool

from keras_vae.serving import webapp

# The checkout's onnxruntime-web (works whether keras_vae is installed editable or not).
ORT_DIR = NODE_DIR / "node_modules" / "onnxruntime-web" / "dist"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio",
    "--window-size=900,900", "--remote-debugging-port=0",
]


class DevTools:
    """The DevTools protocol over a WebSocket (RFC 6455 client frames, text only)."""

    def __init__(self, ws_url, timeout=30):
        assert ws_url.startswith("ws://")
        hostport, _, path = ws_url[5:].partition("/")
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the WebSocket handshake")
            head += chunk
        head, self._buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"WebSocket handshake refused: {head[:200]!r}")
        self._id = 0
        self.events = []

    def _read(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _message(self):
        data = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:                       # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            data += payload
            if b0 & 0x80:
                return json.loads(data)

    def call(self, method, **params):
        self._id += 1
        self._send_frame(0x1, json.dumps({"id": self._id, "method": method,
                                          "params": params}).encode())
        while True:
            msg = self._message()
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def problems(self):
        """Console errors, uncaught exceptions and error log entries seen so far."""
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                               "assert"):
                out.append("console.error: " + " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                out.append("exception: " + details.get("exception", {}).get(
                    "description", details.get("text", "")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                out.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
        return out

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


@pytest.fixture(scope="module")
def page_url(exported_vae):
    require_node_modules()
    out = exported_vae
    server = webapp.serve_web(out, host="127.0.0.1", port=0, ort_path=ORT_DIR, block=False)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = require_tool("/usr/bin/chromium", "apt-get install -y chromium")
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "about:blank"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"Chromium did not start: {proc.stderr.read()[-2000:]!r}",
                            pytrace=False)
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page"):
            tools.call(f"{domain}.enable")
        yield tools
        tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(tools, expression, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = tools.evaluate(expression)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {expression}; state "
                         f"{tools.evaluate('JSON.stringify(window.kvae)')}; "
                         f"problems {tools.problems()}")


CANVAS_STATS = """(() => {
  const c = document.getElementById('grid');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const values = new Set(); let sum = 0, sq = 0;
  for (let i = 0; i < d.length; i += 4) { values.add(d[i]); sum += d[i]; sq += d[i] * d[i]; }
  const n = d.length / 4, mean = sum / n;
  return {width: c.width, height: c.height, distinct: values.size,
          std: Math.sqrt(sq / n - mean * mean)};
})()"""


def test_page_draws_a_non_blank_grid_without_console_errors(browser, page_url, tmp_path):
    browser.call("Page.navigate", url=page_url)
    state = wait_for(browser, "window.kvae && window.kvae.state !== 'loading' && "
                              "window.kvae.state")
    assert state == "ready", browser.evaluate("JSON.stringify(window.kvae)")
    kvae = browser.evaluate("window.kvae")
    assert kvae["draws"] == 1 and kvae["stats"]["n"] == 64
    assert (kvae["width"], kvae["height"]) == (8 * 29 + 1, 8 * 29 + 1)
    canvas = browser.evaluate(CANVAS_STATS)
    assert canvas["distinct"] > 20 and canvas["std"] > 10, canvas
    images = kvae["stats"]["images"]
    assert images["finite"] == images["count"] and 0 <= images["min"] <= images["max"] <= 1

    # what a person sees: a screenshot of the page, read back
    shot = browser.call("Page.captureScreenshot", format="png")
    picture = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("L")
    picture.save(tmp_path / "page.png")
    pixels = np.asarray(picture, dtype=np.float32)
    assert pixels.std() > 10, "the screenshot is blank"
    assert browser.problems() == []


def test_temperature_slider_redraws(browser, page_url):
    if browser.evaluate("!(window.kvae && window.kvae.state === 'ready')"):
        browser.call("Page.navigate", url=page_url)
        wait_for(browser, "window.kvae && window.kvae.state === 'ready'")
    draws = browser.evaluate("window.kvae.draws")
    std_at_one = browser.evaluate("window.kvae.stats.z.std")
    browser.evaluate("""(() => { const s = document.getElementById('temperature');
        s.value = '0.3'; s.dispatchEvent(new Event('input'));
        s.dispatchEvent(new Event('change')); })()""")
    wait_for(browser, f"window.kvae.draws > {draws}")
    kvae = browser.evaluate("window.kvae")
    assert kvae["state"] == "ready" and kvae["stats"]["temperature"] == pytest.approx(0.3)
    assert browser.evaluate("document.getElementById('temperature-value').textContent") == "0.30"
    # z ~ N(0, T^2): 64 x d values; the spread follows the slider
    assert 0.2 < kvae["stats"]["z"]["std"] < 0.4, kvae["stats"]["z"]
    assert std_at_one > 0.7
    assert browser.evaluate(CANVAS_STATS)["distinct"] > 10
    assert browser.problems() == []


def test_int8_sampler_and_grid_size(browser, page_url):
    options = browser.evaluate("[...document.getElementById('sampler').options].map(o => o.value)")
    assert options == ["sampler.onnx", "sampler_int8.onnx"], options
    draws = browser.evaluate("window.kvae.draws")
    browser.evaluate("""(() => {
        document.getElementById('grid-size').value = '4';
        const s = document.getElementById('sampler'); s.value = 'sampler_int8.onnx';
        s.dispatchEvent(new Event('change')); })()""")
    wait_for(browser, f"window.kvae.draws > {draws} && "
                      "window.kvae.stats.file === 'sampler_int8.onnx'")
    kvae = browser.evaluate("window.kvae")
    assert kvae["state"] == "ready" and kvae["stats"]["n"] == 16
    assert (kvae["width"], kvae["height"]) == (4 * 29 + 1, 4 * 29 + 1)
    assert browser.evaluate(CANVAS_STATS)["distinct"] > 10
    assert browser.problems() == []


def test_page_reaches_nothing_but_its_own_origin(browser, page_url):
    """Every resource the page loaded came from the local server (no CDN)."""
    urls = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert urls, "no resources recorded"
    outside = [u for u in urls if not u.startswith(page_url)]
    assert outside == []
    assert any(u.endswith(".wasm") for u in urls)
    assert any(u.endswith("sampler.onnx") for u in urls)


def test_build_site_is_self_contained(exported_vae, tmp_path):
    require_node_modules()
    out = exported_vae
    site = webapp.build_site(out, tmp_path / "site", ort_path=ORT_DIR)
    for rel in ("index.html", "app.js", "grid.mjs", "ort/ort.wasm.min.mjs",
                "ort/ort-wasm-simd-threaded.wasm", "model/manifest.json",
                "model/onnx/sampler.onnx"):
        assert (site / rel).is_file(), rel
    html = (site / "index.html").read_text() + (site / "app.js").read_text()
    assert "https://" not in html and "http://" not in html


def test_page_reports_a_missing_model_clearly(browser, page_url):
    browser.events.clear()
    browser.call("Page.navigate", url=page_url + "?model=./model-missing/")
    state = wait_for(browser, "window.kvae && window.kvae.state !== 'loading' && "
                              "window.kvae.state")
    assert state == "error"
    message = browser.evaluate("document.getElementById('status').textContent")
    assert "manifest.json" in message and "404" in message, message
    assert browser.problems(), "the failure should be logged as a console error"


def test_page_server_serves_only_its_three_roots(page_url):
    import urllib.error

    for path in ("model/../../../../etc/passwd", "ort/../package.json", "model/",
                 "nothing.js", "%2e%2e/%2e%2e/etc/passwd"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(page_url + path, timeout=10)
        assert err.value.code == 404, path
    with urllib.request.urlopen(page_url + "ort/ort-wasm-simd-threaded.wasm", timeout=10) as r:
        assert r.headers["Content-Type"] == "application/wasm"


@pytest.fixture(scope="module")
def conditional_url(exported_conditional):
    require_node_modules()
    server = webapp.serve_web(exported_conditional[0], host="127.0.0.1", port=0,
                              ort_path=ORT_DIR, block=False)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_conditional_page_picks_a_class_and_decodes_like_keras(browser, conditional_url,
                                                               exported_conditional):
    from serving_support import conditional_reference

    _, model, _ = exported_conditional
    browser.events.clear()
    browser.call("Page.navigate", url=conditional_url + "?label=3&seed=11")
    wait_for(browser, "window.kvae && window.kvae.state === 'ready'")
    assert browser.evaluate("[...document.getElementById('label').options].length") == 10
    assert browser.evaluate("document.getElementById('label-control').hidden") is False
    kvae = browser.evaluate("window.kvae")
    assert kvae["label"] == 3 and kvae["seed"] == 11
    z, labels, want = conditional_reference(model)
    decoded = browser.evaluate(f"window.kvae.decode({json.dumps(z.tolist())}, "
                               f"{json.dumps(labels.tolist())})")
    got = np.asarray(decoded["mean"]["data"], "float32").reshape(decoded["mean"]["dims"])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    cold = browser.evaluate("window.kvae.sample({n: 2, temperature: 0, seed: 5, label: 7})")
    loc, _ = model.prior.class_components()  # temperature 0: p(z|y=7)'s mean
    np.testing.assert_allclose(np.reshape(cold["z"]["data"], (2, -1)), loc[[7, 7]], atol=1e-6)
    error = browser.evaluate("window.kvae.sample({n: 2, temperature: 1, seed: 5, label: 10})"
                             ".then(() => 'accepted', (e) => e.message)")
    assert "label must be an integer class in [0, 9]" in error, error
    assert browser.problems() == []
    browser.call("Page.navigate", url=conditional_url + "?label=12")
    state = wait_for(browser, "window.kvae && window.kvae.state !== 'loading' && "
                              "window.kvae.state")
    assert state == "error"
    message = browser.evaluate("document.getElementById('status').textContent")
    assert "label must be an integer class in [0, 9]" in message, message
