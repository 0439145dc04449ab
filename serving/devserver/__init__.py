"""A development server that speaks TF Serving's REST and gRPC protocols.

**Production is TF Serving** (the official `tensorflow/serving` image, see
`keras_vae/serving/tf_serving/`). This server exists so that the exported
SavedModel, the clients and their tests can run where no `tensorflow_model_server`
binary is available (it is in no pip/npm/apt registry). It loads the SavedModel
with plain `tf.saved_model.load` (the graph needs neither Keras nor TensorFlow
Probability) and mirrors TF Serving's contract:

REST (default port 8501)::

    GET  /v1/models/NAME                         model status
    GET  /v1/models/NAME/versions/N              status of one version
    GET  /v1/models/NAME[/versions/N|/labels/L]/metadata     signatures
    POST /v1/models/NAME[/versions/N|/labels/L]:predict
         {"signature_name": "decode", "instances": [{"z": [...]}, ...]}   row format
         {"signature_name": "sample", "inputs": {"num_samples": 4, ...}}  column format
    -> {"predictions": [...]} / {"outputs": {...}}; errors: 4xx/5xx {"error": "..."}

gRPC (default port 8500): `tensorflow.serving.PredictionService` (Predict,
GetModelMetadata) and `tensorflow.serving.ModelService` (GetModelStatus).

Limits (`limits.py`, each a flag): rows per request for any signature, the batch of
an input, request and response bytes (the answer's size is estimated before the model
runs), JSON depth, the values of a gRPC TensorProto (checked against its claimed shape
before the tensor is built), the time a body may take, REST connections and gRPC workers.
Content-Length is validated, a body on a method that takes none is dropped (no request
desync), undecodable protobufs are INVALID_ARGUMENT. With ``--enable_batching`` every
signature is batched as TF Serving does (`batching.py`). Every malformed request gets a
4xx with a message and the server keeps serving; it binds to 127.0.0.1 unless told.

The modules: `repository` (base paths, versions, labels, models.config), `core`
(`ModelServer`: lookups, input checks, predict), `limits`, `batching`, `tensors` (gRPC
TensorProtos), `metrics` (``--monitoring``), `rest` and `grpc` (the front ends);
the wire format is `keras_vae.serving.wire`, the errors `keras_vae.serving.errors`.

Run it::

    python -m keras_vae.serving serve --model_base_path out/savedmodel/vae --model_name vae
    keras-vae serve ...            # the same, from the package's CLI
"""

import argparse
import logging
import os

from keras_vae.serving.devserver.core import (DEFAULT_GRPC_PORT, DEFAULT_MAX_BATCH_SIZE,
                                              DEFAULT_MAX_NUM_SAMPLES, DEFAULT_REST_PORT,
                                              ModelServer)
from keras_vae.serving.devserver.limits import Limits
from keras_vae.serving.devserver.repository import read_model_config
from keras_vae.serving.errors import ServingError

__all__ = ["ModelServer", "read_model_config", "serve", "main", "build_parser"]


def build_parser(parser=None):
    """The `serve` command's flags, named as tensorflow_model_server names them.

    Args:
      parser: an argparse parser to add them to (a new one when None).

    Returns:
      The parser.
    """
    parser = parser or argparse.ArgumentParser(
        prog="keras-vae serve",
        description="Development server speaking TF Serving's REST and gRPC APIs for an "
                    "exported keras-vae SavedModel. Production is TF Serving: see "
                    "keras_vae/serving/tf_serving/.")
    parser.add_argument("path", nargs="?", default=None,
                        help="export folder, TF Serving base path or numbered SavedModel "
                             "(same as --model_base_path)")
    parser.add_argument("--model_base_path", default=None,
                        help="folder of numbered SavedModel versions (e.g. out/savedmodel/vae)")
    parser.add_argument("--model_name", default="vae", help="model name in URLs (default vae)")
    parser.add_argument("--model_config_file", default=None,
                        help="TF Serving models.config (text proto) instead of a base path")
    parser.add_argument("--port", type=int, default=DEFAULT_GRPC_PORT,
                        help="gRPC port (default 8500; -1 turns gRPC off)")
    parser.add_argument("--rest_api_port", type=int, default=DEFAULT_REST_PORT,
                        help="REST port (default 8501; -1 turns REST off)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--max_num_samples", type=int, default=DEFAULT_MAX_NUM_SAMPLES,
                        help="most rows one request may ask for, any signature (the batch of "
                             "its inputs or a scalar num_samples; default 1024)")
    parser.add_argument("--max_batch_size", type=int, default=DEFAULT_MAX_BATCH_SIZE,
                        help="largest leading dimension an input may have (default 4096)")
    parser.add_argument("--max_request_bytes", type=int, default=Limits.max_request_bytes,
                        help="largest REST body / gRPC message (default 16 MiB; 413 above)")
    parser.add_argument("--max_response_bytes", type=int, default=Limits.max_response_bytes,
                        help="largest answer, estimated before running (default 64 MiB)")
    parser.add_argument("--max_json_depth", type=int, default=Limits.max_json_depth,
                        help="deepest JSON nesting of a REST body (default 32)")
    parser.add_argument("--rest_api_num_threads", type=int,
                        default=Limits.rest_api_num_threads,
                        help="REST connections served at once; more get 503 (default 32)")
    parser.add_argument("--grpc_max_threads", type=int, default=Limits.grpc_max_threads,
                        help="gRPC worker threads (default 16)")
    parser.add_argument("--rest_api_timeout_in_ms", type=int,
                        default=int(Limits.request_timeout_s * 1000),
                        help="time a REST body may take to arrive (default 30000; 408)")
    parser.add_argument("--enable_batching", action="store_true",
                        help="batch every signature as TF Serving does (rank-0 inputs are "
                             "refused; concurrent requests are merged)")
    parser.add_argument("--batching_parameters_file", default=None,
                        help="BatchingParameters text proto (e.g. serving/tf_serving/"
                             "batching_parameters.txt); needs --enable_batching")
    parser.add_argument("--monitoring", action="store_true",
                        help="Prometheus metrics at /monitoring/prometheus/metrics (REST)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def serve(model_base_path=None, model_name="vae", *, model_config_file=None,
          rest_port=DEFAULT_REST_PORT, grpc_port=DEFAULT_GRPC_PORT, host="127.0.0.1",
          max_num_samples=None, max_batch_size=None, limits=None,
          batching_parameters_file=None, monitoring=False, block=True):
    """Starts the development server; blocks until Ctrl-C unless block=False.

    Args:
      model_base_path, model_name, model_config_file, max_num_samples, max_batch_size,
        limits, batching_parameters_file, monitoring: as for `ModelServer`.
      rest_port, grpc_port: the ports (0 picks a free one, -1 turns that front end off).
      host: the address to bind (127.0.0.1: this machine only).
      block: wait for Ctrl-C, then stop the server.

    Returns:
      The started `ModelServer` (call `.stop()` when block=False).

    Raises:
      ServingError: the models cannot be found or read.
    """
    server = ModelServer(model_base_path=model_base_path, model_name=model_name,
                         model_config_file=model_config_file, max_num_samples=max_num_samples,
                         max_batch_size=max_batch_size, limits=limits,
                         batching_parameters_file=batching_parameters_file,
                         monitoring=monitoring)
    server.start(rest_port=rest_port, grpc_port=grpc_port, host=host)
    batching = "" if server.batcher is None else \
        f", batching up to {server.batcher.params.max_batch_size} rows"
    print(f"keras-vae development server (production is TF Serving): "
          f"REST http://{host}:{server.rest_port}/v1/models/"
          f"{','.join(server.models)}  gRPC {host}:{server.grpc_port}{batching}", flush=True)
    if block:
        try:
            server.wait()
        finally:
            server.stop()
    return server


def _limits_from(args):
    return Limits(max_num_samples=args.max_num_samples, max_batch_size=args.max_batch_size,
                  max_request_bytes=args.max_request_bytes,
                  max_response_bytes=args.max_response_bytes,
                  max_json_depth=args.max_json_depth,
                  rest_api_num_threads=args.rest_api_num_threads,
                  grpc_max_threads=args.grpc_max_threads,
                  request_timeout_s=args.rest_api_timeout_in_ms / 1000)


def main(argv=None):
    """Entry point of `keras-vae serve` and `python -m keras_vae.serving serve`.

    Args:
      argv: the command's arguments (`build_parser`'s flags); None reads sys.argv.

    Returns:
      0 after Ctrl-C; a refused model exits with its message (SystemExit).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    base = args.model_base_path or args.path
    if base is None and args.model_config_file is None:
        build_parser().error("give an export folder, --model_base_path or --model_config_file")
    if args.batching_parameters_file and not args.enable_batching:
        build_parser().error("--batching_parameters_file needs --enable_batching")
    batching = args.batching_parameters_file
    if args.enable_batching and batching is None:
        batching = os.devnull            # TF Serving's default BatchingParameters
    try:
        limits = _limits_from(args)
    except ValueError as err:
        build_parser().error(str(err))
    try:
        serve(base, args.model_name, model_config_file=args.model_config_file,
              rest_port=args.rest_api_port, grpc_port=args.port, host=args.host,
              limits=limits, batching_parameters_file=batching, monitoring=args.monitoring)
    except (OSError, ValueError) as err:
        raise SystemExit(f"keras-vae serve: {err}") from None
    except ServingError as err:
        raise SystemExit(f"keras-vae serve: {err.message}") from None
    return 0
