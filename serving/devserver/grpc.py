"""The development server's gRPC front end: TF Serving's PredictionService and ModelService.

```none
tensorflow.serving.PredictionService   Predict, GetModelMetadata (Classify, Regress: UNIMPLEMENTED)
tensorflow.serving.ModelService        GetModelStatus (HandleReloadConfigRequest: UNIMPLEMENTED)
```
"""

import concurrent.futures
import logging

from keras_vae.serving.devserver.core import DEFAULT_SIGNATURE
from keras_vae.serving.errors import ServingError

__all__ = ["start"]

log = logging.getLogger("keras_vae.serving")


def start(model_server, host, port, workers):
    """Starts the gRPC front end of `model_server`; returns (grpc.Server, bound port)."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    grpc_server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                              thread_name_prefix="kvae-grpc"),
        options=[("grpc.max_receive_message_length", model_server.max_body_bytes),
                 ("grpc.max_send_message_length", 256 * 1024 * 1024),
                 ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _PredictionService(model_server), grpc_server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        _ModelService(model_server), grpc_server)
    bound = grpc_server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind gRPC to {host}:{port}")
    grpc_server.start()
    return grpc_server, bound


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
        try:
            return method(self, request, context)
        except ServingError as err:
            _abort(context, err)
        except Exception as err:  # noqa: BLE001 - the server must keep serving
            log.exception("internal error in gRPC %s", method.__name__)
            _abort(context, ServingError(f"{type(err).__name__}: {err}", "INTERNAL"))
    wrapper.__name__ = method.__name__
    return wrapper


class _PredictionService:
    """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

    def __init__(self, model_server):
        self.server = model_server

    @_grpc_guard
    def Predict(self, request, context):  # noqa: N802
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        name, version, label = _spec_args(request.model_spec)
        inputs = {}
        for key, proto in request.inputs.items():
            try:
                inputs[key] = tf.make_ndarray(proto)
            except Exception as err:  # noqa: BLE001
                raise ServingError(f"input \"{key}\" is not a valid TensorProto: {err}",
                                   "INVALID_ARGUMENT") from None
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        mv, outputs = self.server.predict(name, signature_name, inputs, version, label)
        wanted = list(request.output_filter) or list(outputs)
        unknown = sorted(set(wanted) - set(outputs))
        if unknown:
            raise ServingError(f"output_filter names unknown outputs {unknown} "
                               f"(available: {sorted(outputs)})", "INVALID_ARGUMENT")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = mv.name
        response.model_spec.version.value = mv.version
        response.model_spec.signature_name = signature_name
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

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
