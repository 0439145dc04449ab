"""Throughput of the development server's batching (TF Serving's --enable_batching rules).

`python bench/serving_batching.py EXPORT_DIR [--clients 32] [--seconds 8]`: concurrent
gRPC and REST clients each send one-row `decode` requests for a fixed time, against the
server without batching and with serving/tf_serving/batching_parameters.txt; prints
requests per second and the mean rows per merged batch.
"""

import argparse
import concurrent.futures
import pathlib
import time

import numpy as np

from keras_vae.serving.client import GrpcClient, RestClient
from keras_vae.serving.server import ModelServer

PARAMS = pathlib.Path(__file__).resolve().parents[1] / "serving/tf_serving/batching_parameters.txt"


def _load(client_factory, clients, seconds, z):
    def worker(_):
        client, done, end = client_factory(), 0, time.monotonic() + seconds
        while time.monotonic() < end:
            client.decode(z)
            done += 1
        return done

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(worker, range(clients)))
    return total / (time.monotonic() - start), total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("export_dir")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    z = np.zeros((1, 4), np.float32)
    for batching in (None, PARAMS):
        with ModelServer(model_base_path=args.export_dir,
                         batching_parameters_file=batching) as srv:
            z = np.zeros((1, srv.models["vae"].get().specs["decode"]["z"][0][1]), np.float32)
            for name, factory in (
                    ("gRPC", lambda: GrpcClient(f"127.0.0.1:{srv.grpc_port}")),
                    ("REST", lambda: RestClient(f"http://127.0.0.1:{srv.rest_port}"))):
                before = srv.batcher.batches_run() if srv.batcher else 0
                rate, total = _load(factory, args.clients, args.seconds, z)
                batches = (srv.batcher.batches_run() - before) if srv.batcher else total
                print(f"{name} batching={'on' if batching else 'off'}: {rate:.0f} req/s, "
                      f"{total / max(batches, 1):.1f} requests per run", flush=True)


if __name__ == "__main__":
    main()
