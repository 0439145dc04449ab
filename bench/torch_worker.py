"""The PyTorch side of part 1, in its own process: JSON commands on stdin, replies on stdout.

    {"cmd": "setup", "data": X.npy, "hidden": [200], "latent": 10, "activation": "relu",
     "kind": "elbo", "k": 1, "batch": 128, "seed": 0, "lr": 1e-3,
     "device": "cpu", "precision": "float32"}                       -> {"ok": true}
    {"cmd": "threads", "n": 2}                                       -> {"ok": true}
    {"cmd": "trial", "steps": 300}   -> {"examples_per_s": ..., "cpu_per_example": ...}
    {"cmd": "quit"}

Never imports TensorFlow: the two frameworks' thread pools stay in separate processes.
"""

import contextlib
import json
import pathlib
import sys
import time
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import torch_reference as tr  # noqa: E402


class Runner:
    def __init__(self, x, device, precision, hidden, latent, activation, kind, k, batch,
                 seed=0, lr=1e-3):
        torch.manual_seed(seed)
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        self.model = tr.TorchVAE(tuple(hidden), latent, activation).to(self.device)
        self.model.initialize_output_bias(x)
        self.opt = tr.make_optimizer(self.model, lr=lr)
        self.x = torch.from_numpy(x.reshape(len(x), -1)).to(self.device)
        self.kind, self.k, self.batch = kind, k, batch
        self.autocast = None
        if precision != "float32":
            dtype = torch.float16 if precision == "mixed_float16" else torch.bfloat16
            self.autocast = (self.device.type, dtype)

    def trial(self, steps):
        ctx = (torch.autocast(self.autocast[0], dtype=self.autocast[1]) if self.autocast
               else contextlib.nullcontext())
        with ctx:
            cpu = time.process_time()
            start = time.perf_counter()
            done = 0
            while done < steps:
                s, _ = tr.train_epoch(self.model, self.opt, self.x, self.batch, self.k,
                                      self.kind, max_steps=steps - done)
                done += s
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            cpu_seconds = time.process_time() - cpu
        n = steps * self.batch
        return {"examples_per_s": n / seconds, "cpu_per_example": cpu_seconds / n}


def main():
    runner, cache = None, {}
    for line in sys.stdin:
        try:
            msg = json.loads(line)
            cmd = msg.pop("cmd")
            if cmd == "quit":
                print(json.dumps({"ok": True}), flush=True)
                return 0
            if cmd == "threads":
                torch.set_num_threads(int(msg["n"]))
                reply = {"ok": True}
            elif cmd == "setup":
                path = msg.pop("data")
                if path not in cache:
                    cache[path] = np.load(path).astype(np.float32)
                runner = Runner(cache[path], **msg)
                reply = {"ok": True}
            elif cmd == "trial":
                reply = runner.trial(int(msg["steps"]))
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        except Exception:  # report, keep serving
            reply = {"error": traceback.format_exc()[-2000:]}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
