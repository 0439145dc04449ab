"""Server-side batching as TF Serving does it with ``--enable_batching``.

TF Serving wraps every SignatureDef of a model in a batching session
(``--batching_parameters_file``, a BatchingParameters text proto). Concurrent
requests to one signature of one model version are queued and merged along the
leading dimension, the merged batch padded up to the next allowed size, run once,
and the outputs split back:

```none
task           every input has rank >= 1 and the same leading size n_i (else refused with
               TF Serving's messages); n_i <= max_batch_size
batch          tasks in arrival order while sum(n_i) <= max_batch_size; it runs when full
               or batch_timeout_micros after its first task arrived
padding        up to min{s in allowed_batch_sizes : s >= sum(n_i)} rows, copies of row 0
queue          at most max_enqueued_batches batches waiting (else UNAVAILABLE)
threads        num_batch_threads batches run at once per signature
```

A signature can be batched only when row i of every output depends on row i of the
inputs alone (export contract 2: decode, encode, sample with per-row seeds).
"""

import dataclasses
import pathlib
import re
import threading
import time

import numpy as np

from keras_vae.serving.errors import ServingError

__all__ = ["BatchingParameters", "read_batching_parameters", "Batcher", "RANK_0_MESSAGE"]

#: TF Serving's refusal of a rank-0 input (batching/batching_util.h).
RANK_0_MESSAGE = "Batching Run() input tensors must have at least one dimension"
_SCALAR = re.compile(r"(\w+)\s*\{\s*value:\s*([^\s}]+)\s*\}")
_PLAIN = re.compile(r"(\w+)\s*:\s*(\S+)")
_BOOL = {"true": True, "false": False}


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    """TF Serving's BatchingParameters (the fields this server honours).

    Attributes:
      max_batch_size: rows per merged batch (TF Serving's default 1000).
      batch_timeout_micros: how long a batch waits to fill.
      max_enqueued_batches: batches that may wait; more are refused (UNAVAILABLE).
      num_batch_threads: batches run at once.
      allowed_batch_sizes: the sizes batches are padded to (the last = max_batch_size).
      pad_variable_length_inputs: accepted, must be false (no ragged inputs here).
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False

    def __post_init__(self):
        sizes = list(self.allowed_batch_sizes)
        if self.max_batch_size <= 0 or self.num_batch_threads <= 0 or \
                self.max_enqueued_batches <= 0 or self.batch_timeout_micros < 0:
            raise ValueError(f"batching parameters must be positive: {self}")
        if sizes and (sizes != sorted(set(sizes)) or sizes[-1] != self.max_batch_size
                      or sizes[0] <= 0):
            raise ValueError("allowed_batch_sizes must increase and end at max_batch_size "
                             f"({self.max_batch_size}), got {sizes}")
        if self.pad_variable_length_inputs:
            raise ValueError("pad_variable_length_inputs is not supported by this server")

    def padded_size(self, rows):
        """The batch size `rows` rows are padded to."""
        for size in self.allowed_batch_sizes:
            if size >= rows:
                return size
        return rows


def read_batching_parameters(path):
    """Reads a BatchingParameters text proto (``batching_parameters.txt``).

    Raises:
      ValueError: an unknown field or a value of the wrong kind, naming the line.
    """
    fields, sizes = {}, []
    known = {f.name for f in dataclasses.fields(BatchingParameters)}
    ignored = {"thread_pool_name", "enable_large_batch_splitting", "max_execution_batch_size"}
    for number, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _SCALAR.fullmatch(line) or _PLAIN.fullmatch(line)
        if not match or match[1] not in known | ignored:
            raise ValueError(f"{path}:{number}: not a BatchingParameters field: {line!r}")
        name, value = match[1], match[2].strip('"')
        if name in ignored:
            continue
        try:
            parsed = _BOOL[value] if name == "pad_variable_length_inputs" else int(value)
        except (KeyError, ValueError):
            raise ValueError(f"{path}:{number}: {name} takes "
                             f"{'true/false' if name.startswith('pad') else 'an integer'}, "
                             f"got {value!r}") from None
        if name == "allowed_batch_sizes":
            sizes.append(parsed)
        else:
            fields[name] = parsed
    return BatchingParameters(allowed_batch_sizes=tuple(sizes), **fields)


def task_size(inputs):
    """The leading size shared by every input, or TF Serving's refusal."""
    sizes = set()
    for array in inputs.values():
        if np.ndim(array) == 0:
            raise ServingError(RANK_0_MESSAGE, "INVALID_ARGUMENT")
        sizes.add(np.shape(array)[0])
    if len(sizes) != 1:
        raise ServingError("Batching Run() input tensors must have equal 0th-dimension size",
                           "INVALID_ARGUMENT")
    return sizes.pop()


class _Task:
    def __init__(self, inputs, size):
        self.inputs, self.size = inputs, size
        self.arrived = time.monotonic()
        self.done = threading.Event()
        self.outputs = self.error = None


class _Queue:
    """The queue and batch threads of one (model version, signature)."""

    def __init__(self, run, params):
        self.run, self.params = run, params
        self.cv = threading.Condition()
        self.pending = []
        self.batches_run = 0
        for i in range(params.num_batch_threads):
            threading.Thread(target=self._loop, name=f"kvae-batch-{i}", daemon=True).start()

    def submit(self, task):
        with self.cv:
            waiting = sum(t.size for t in self.pending)
            if waiting + task.size > self.params.max_batch_size * self.params.max_enqueued_batches:
                raise ServingError("The batch scheduling queue to which this task was "
                                   "submitted is full", "UNAVAILABLE")
            self.pending.append(task)
            self.cv.notify_all()

    def _take(self):
        """Waits for a batch to fill or time out; returns its tasks."""
        timeout = self.params.batch_timeout_micros / 1e6
        with self.cv:
            while True:
                while not self.pending:
                    self.cv.wait()
                rows = sum(t.size for t in self.pending)
                left = self.pending[0].arrived + timeout - time.monotonic()
                if rows >= self.params.max_batch_size or left <= 0:
                    break
                self.cv.wait(left)
            batch, total = [], 0
            while self.pending and total + self.pending[0].size <= self.params.max_batch_size:
                total += self.pending[0].size
                batch.append(self.pending.pop(0))
            self.batches_run += 1
            return batch

    def _loop(self):
        while True:
            batch = self._take()
            try:
                outputs = self._run_batch(batch)
            except Exception as err:  # noqa: BLE001 - every task of the batch gets the error
                for task in batch:
                    task.error = err
                    task.done.set()
                continue
            start = 0
            for task in batch:
                task.outputs = {k: v[start:start + task.size] for k, v in outputs.items()}
                start += task.size
                task.done.set()

    def _run_batch(self, batch):
        rows = sum(t.size for t in batch)
        padded = self.params.padded_size(rows)
        merged = {}
        for key in batch[0].inputs:
            parts = [t.inputs[key] for t in batch]
            if padded > rows:
                first = parts[0][:1]
                parts.append(np.repeat(first, padded - rows, axis=0))
            merged[key] = np.concatenate(parts, axis=0)
        outputs = self.run(merged)
        for key, value in outputs.items():
            if np.ndim(value) == 0 or value.shape[0] != padded:
                raise ServingError(f"Batched output tensor \"{key}\" has shape "
                                   f"{list(np.shape(value))}, not a leading {padded}",
                                   "FAILED_PRECONDITION")
        return outputs


class Batcher:
    """TF Serving's batching for every signature of every model version.

    Args:
      params: `BatchingParameters`.
    """

    def __init__(self, params):
        self.params = params
        self._queues = {}
        self._lock = threading.Lock()

    def batches_run(self):
        """How many merged batches have run, over all signatures."""
        return sum(q.batches_run for q in self._queues.values())

    def run(self, key, run, inputs):
        """Runs `inputs` through the queue of `key`, merged with concurrent requests.

        Args:
          key: identifies the signature (model, version, signature name).
          run: {input: array} -> {output: array}, for a merged batch.
          inputs: this request's {input: numpy array}.

        Returns:
          This request's {output: numpy array}.

        Raises:
          ServingError: TF Serving's refusals (rank 0, unequal sizes, too large, queue
            full), or the error of the batch it ran in.
        """
        size = task_size(inputs)
        if size > self.params.max_batch_size:
            raise ServingError(f"Task size {size} is larger than maximum input batch size "
                               f"{self.params.max_batch_size}", "INVALID_ARGUMENT")
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(run, self.params)
        task = _Task(inputs, size)
        queue.submit(task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs
