"""The development server's gRPC front end: TF Serving's PredictionService and ModelService.

```none
tensorflow.serving.PredictionService   Predict, GetModelMetadata (Classify, Regress: UNIMPLEMENTED)
tensorflow.serving.ModelService        GetModelStatus (HandleReloadConfigRequest: UNIMPLEMENTED)
```
"""

import concurrent.futures
import logging

from keras_vae.serving.devserver.core import DEFAULT_SIGNATURE
from keras_vae.serving.devserver.tensors import proto_to_array
from keras_vae.serving.errors import ServingError

__all__ = ["start", "SERVICES"]

log = logging.getLogger("keras_vae.serving")

#: service -> {method: (request message, implementation attribute)}; requests arrive as
#: bytes and are parsed here, so an undecodable one is INVALID_ARGUMENT, not INTERNAL.
SERVICES = {
    "tensorflow.serving.PredictionService": {
        "Predict": "predict_pb2.PredictRequest",
        "GetModelMetadata": "get_model_metadata_pb2.GetModelMetadataRequest",
        "Classify": "classification_pb2.ClassificationRequest",
        "Regress": "regression_pb2.RegressionRequest",
        "MultiInference": "inference_pb2.MultiInferenceRequest",
    },
    "tensorflow.serving.ModelService": {
        "GetModelStatus": "get_model_status_pb2.GetModelStatusRequest",
        "HandleReloadConfigRequest": "model_management_pb2.ReloadConfigRequest",
    },
}


def _message_class(dotted):
    import importlib

    module, name = dotted.split(".")
    return getattr(importlib.import_module(f"tensorflow_serving.apis.{module}"), name)


def start(model_server, host, port, workers):
    """Starts the gRPC front end of `model_server`; returns (grpc.Server, bound port).

    At most `workers` RPCs run at once and 4 x `workers` are admitted (then
    RESOURCE_EXHAUSTED); messages are limited to the server's request / response limits.
    """
    import grpc

    limits = model_server.limits
    grpc_server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                              thread_name_prefix="kvae-grpc"),
        maximum_concurrent_rpcs=4 * workers,
        options=[("grpc.max_receive_message_length", limits.max_request_bytes),
                 ("grpc.max_send_message_length", limits.max_response_bytes + (1 << 20)),
                 ("grpc.so_reuseport", 0)],
    )
    services = {"tensorflow.serving.PredictionService": _PredictionService(model_server),
                "tensorflow.serving.ModelService": _ModelService(model_server)}
    handlers = []
    for service, methods in SERVICES.items():
        table = {}
        for method, message in methods.items():
            table[method] = grpc.unary_unary_rpc_method_handler(
                _raw(getattr(services[service], method), _message_class(message), method),
                request_deserializer=None,
                response_serializer=lambda response: response.SerializeToString())
        handlers.append(grpc.method_handlers_generic_handler(service, table))
    grpc_server.add_generic_rpc_handlers(handlers)
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind gRPC to {host}:{port}")
    grpc_server.start()
    return grpc_server, bound


def _raw(method, message_class, name):
    """Parses the request bytes, then calls `method`; a bad message is INVALID_ARGUMENT."""
    from google.protobuf.message import DecodeError

    def handler(raw, context):
        try:
            request = message_class.FromString(raw)
        except (DecodeError, RecursionError, ValueError, UnicodeDecodeError) as err:
            _abort(context, ServingError(f"could not parse the {name} request "
                                         f"({message_class.__name__}): {str(err)[:200]}",
                                         "INVALID_ARGUMENT"))
        return method(request, context)

    return handler


def _spec_args(spec):
    version = spec.version.value if spec.HasField("version") else None
    label = spec.version_label or None
    return spec.name, version, label


def _abort(context, err):
    import grpc

    context.abort(getattr(grpc.StatusCode, err.code or "UNKNOWN", grpc.StatusCode.UNKNOWN),
                  err.message)


def _grpc_guard(method):
    def wrapper(self, request, context):
        metrics = self.server.metrics
        try:
            response = method(self, request, context)
        except ServingError as err:
            if metrics is not None:
                metrics.count_grpc(err.code)
            _abort(context, err)
        except Exception as err:  # noqa: BLE001 - the server must keep serving
            log.exception("internal error in gRPC %s", method.__name__)
            _abort(context, ServingError(f"{type(err).__name__}: {err}", "INTERNAL"))
        if metrics is not None:
            metrics.count_grpc("OK")
        return response
    wrapper.__name__ = method.__name__
    return wrapper


def _predict_response(mv, signature_name, outputs, wanted):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.model_spec.name = mv.name
    response.model_spec.version.value = mv.version
    response.model_spec.signature_name = signature_name
    for key in wanted or list(outputs):
        response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
    return response


class _PredictionService:
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

    def __init__(self, model_server):
        self.server = model_server

    @_grpc_guard
    def Predict(self, request, context):  # noqa: N802
        name, version, label = _spec_args(request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        mv = self.server.model(name, version, label)
        mv.signature(signature_name)          # an unknown signature first
        inputs = {key: proto_to_array(proto, f"input \"{key[:100]}\"", self.server.limits)
                  for key, proto in request.inputs.items()}
        filtered = list(request.output_filter) or None
        unknown = sorted(set(filtered or ()) - set(mv.output_specs.get(signature_name, {})))
        if unknown:
            raise ServingError(f"output_filter names unknown outputs {unknown[:10]} "
                               f"(available: {sorted(mv.output_specs[signature_name])})",
                               "INVALID_ARGUMENT")
        with self.server.answer_slot():
            _, outputs = self.server.run(mv, signature_name, inputs, outputs=filtered)
            return _predict_response(mv, signature_name, outputs, filtered)

    @_grpc_guard
    def GetModelMetadata(self, request, context):  # noqa: N802
        from tensorflow_serving.apis import get_model_metadata_pb2

        fields = list(request.metadata_field)
        if not fields:
            raise ServingError("GetModelMetadataRequest must specify at least one "
                               "metadata_field", "INVALID_ARGUMENT")
        for field in fields:
            if field != "signature_def":
                raise ServingError(f"Metadata field {field} is not supported",
                                   "INVALID_ARGUMENT")
        mv = self.server.model(*_spec_args(request.model_spec))
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = mv.name
        response.model_spec.version.value = mv.version
        response.metadata["signature_def"].Pack(mv.signature_defs)
        return response

    @_grpc_guard
    def Classify(self, request, context):  # noqa: N802
        raise ServingError("Classify is not served by this model (use Predict)", "UNIMPLEMENTED")

    Regress = Classify
    MultiInference = Classify


class _ModelService:
    """tensorflow.serving.ModelService: GetModelStatus."""

    def __init__(self, model_server):
        self.server = model_server

    @_grpc_guard
    def GetModelStatus(self, request, context):  # noqa: N802
        from tensorflow_serving.apis import get_model_status_pb2

        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in self.server.status(*_spec_args(request.model_spec)):
            status = response.model_version_status.add()
            status.version = int(entry["version"])
            status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            status.status.error_code = 0
        return response

    @_grpc_guard
    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        raise ServingError("the development server does not reload its config; restart it",
                           "UNIMPLEMENTED")
