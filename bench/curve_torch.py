"""The PyTorch side of bench/learning_curve.py, in its own process (JSON lines on stdin/stdout).

    {"cmd": "setup", "train": X.npy (grey, float32 [N, 784]), "test": T.npy (0/1 [M, 784]),
     "k": 5, "batch": 20, "lr": 1e-3, "epsilon": 1e-4, "seed": 0}      -> {"ok": true}
    {"cmd": "train", "seconds": S}  -> {"steps", "wall_s", "cpu_s"}   (dynamic binarisation)
    {"cmd": "nll", "k": 1000}       -> {"nll"}                         (mean over the test images)
    {"cmd": "quit"}

Threads: each slice runs with 1 thread and with all cores for its first second, then keeps
the faster (the per-slice thread choice of the fair bench). Never imports TensorFlow.
"""

import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import torch_reference as tr  # noqa: E402


class Curve:
    def __init__(self, train, test, k, batch, lr, epsilon, seed, clock="wall"):
        torch.manual_seed(seed)
        self.clock = time.process_time if clock == "cpu" else time.perf_counter
        self.threads = (1,) if clock == "cpu" else sorted({1, os.cpu_count() or 1})
        self.x = torch.from_numpy(np.load(train).astype(np.float32))
        self.test = torch.from_numpy(np.load(test).astype(np.float32))
        self.model = tr.TorchVAE((200, 200), 50, "tanh")
        self.model.initialize_output_bias(self.x.numpy())
        self.opt = tr.make_optimizer(self.model, lr=lr, eps=epsilon)
        self.k, self.batch = k, batch
        self.perm, self.pos = torch.randperm(len(self.x)), 0

    def _step(self):
        if self.pos + self.batch > len(self.x):
            self.perm, self.pos = torch.randperm(len(self.x)), 0
        xb = torch.bernoulli(self.x[self.perm[self.pos:self.pos + self.batch]])
        self.pos += self.batch
        loss = -self.model.objective(xb, self.k, "iwae").mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def _run(self, seconds):
        steps, start = 0, self.clock()
        while self.clock() - start < seconds:
            self._step()
            steps += 1
        return steps, self.clock() - start

    def train(self, seconds):
        self.model.train()
        cpu, start, begin = time.process_time(), time.perf_counter(), self.clock()
        rates, steps = {}, 0
        for n in self.threads:  # probe: ~0.5 s each, counted as training
            torch.set_num_threads(n)
            s, w = self._run(min(0.5, seconds / 4))
            rates[n], steps = s / w, steps + s
        best = max(rates, key=rates.get)
        torch.set_num_threads(best)
        s, _ = self._run(max(0.0, seconds - (self.clock() - begin)))
        return {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                "clock_s": self.clock() - begin,
                "threads": best, "steps": steps + s}

    def nll(self, k):
        ll = tr.log_likelihood(self.model, self.test, k=k, chunk=k, batch_size=10)
        return {"nll": float(-ll.mean()), "standard_error": float(ll.std() / np.sqrt(len(ll)))}


def main():
    curve = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        if cmd == "quit":
            print(json.dumps({"ok": True}), flush=True)
            return 0
        if cmd == "setup":
            curve = Curve(**msg)
            reply = {"ok": True}
        elif cmd == "train":
            reply = curve.train(float(msg["seconds"]))
        else:
            reply = curve.nll(int(msg["k"]))
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
