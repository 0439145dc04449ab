r"""ONNX (opset 17): the decoder, a self-contained sampler, and the sampler quantised to int8.

| file               | inputs (contract 2)                                  | outputs                            |
|--------------------|------------------------------------------------------|------------------------------------|
| decoder.onnx       | z float32 [N, d] (+ label int64 [N])                 | mean + the likelihood's parameters |
| sampler.onnx       | seed int64 [N], temperature float32 [N] (+ label)    | images [N, *event], z [N, d]       |
| sampler_int8.onnx  | as sampler.onnx                                      | as sampler.onnx (int8 weights)     |

Converted with `tf2onnx.convert.from_function` (`from_keras` fails on Keras 3).
The sampler is the SavedModel's `sample` graph: its noise is the counter
generator of `prng` (integer Add/Mul/Mod, then Log/Cos), no ONNX random op, so
row i is a function of seed_i and the same seed gives the same z and images as
TF Serving, TFLite, Node and the browser. ONNX has no assertion op: a label
outside [0, C) decodes as an all-zero one-hot, so the readers (Node, the page,
the clients) check labels against the manifest's `model.condition`.

Every file is checked before it is moved into place: `onnx.checker` (full
check), an onnxruntime session, decode parity with the Keras model, and the
sampler checks of `rows` (z as numpy's counter generator gives it, images as
the Keras decoder on that z, rows pure in their seeds, the distribution).
"""

import contextlib
import logging
import pathlib

import numpy as np

from keras_vae._backend import tf
from keras_vae.export import _staging
from keras_vae.export import contract
from keras_vae.export import graphs
from keras_vae.export import reference as reference_lib
from keras_vae.export import rows
from keras_vae.export import runtimes
from keras_vae.export import spec as spec_lib
from keras_vae.export import verify

DEFAULT_OPSET = contract.DEFAULT_OPSET
FILES = contract.ONNX_FILES
RANDOM_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
              "Multinomial", "Bernoulli")
SEEDING = (
    "sampler.onnx / sampler_int8.onnx take seed [N] and temperature [N] (and label [N]) like "
    "the SavedModel's sample and draw with the same counter generator (no ONNX random op): "
    "row i is a pure function of its inputs, and the same seed gives the same z and images as "
    "TF Serving and TFLite (within float rounding, ~1e-6). Pass fresh random seeds for fresh "
    "draws. sampler_int8.onnx quantises activations per batch (dynamic quantisation): z is "
    "exact, its images move slightly with the other rows of the batch."
)
DECODER = contract.ONNX_DECODER
SAMPLER = contract.ONNX_SAMPLER
SAMPLER_INT8 = contract.ONNX_SAMPLER_INT8

session = runtimes.onnx_session


@contextlib.contextmanager
def _quiet_tf2onnx():
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def strip_random_seeds(model_proto):
    """Removes the 'seed' attribute of every random op (in place); returns how many."""
    stripped = 0
    for node in model_proto.graph.node:
        if node.op_type in RANDOM_OPS:
            keep = [a for a in node.attribute if a.name != "seed"]
            stripped += len(node.attribute) - len(keep)
            del node.attribute[:]
            node.attribute.extend(keep)
    return stripped


def seeded_random_ops(model_proto):
    """Names of random ops that carry a fixed seed (should be none)."""
    return [n.name for n in model_proto.graph.node
            if n.op_type in RANDOM_OPS and any(a.name == "seed" for a in n.attribute)]


def _name_batch_dims(model_proto, symbol):
    for value in list(model_proto.graph.input) + list(model_proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) >= 1 and not dims[0].HasField("dim_value"):
            dims[0].dim_param = symbol


def _metadata(model_proto, spec, role):
    entries = {"keras_vae.role": role, "keras_vae.latent_dim": str(spec.latent_dim),
               "keras_vae.event_shape": ",".join(map(str, spec.event_shape)),
               "keras_vae.likelihood": spec.likelihood, "keras_vae.prior": spec.prior}
    if role == SAMPLER:
        entries["keras_vae.seeding"] = SEEDING
    for key, value in entries.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = key, value


def _expm1(ctx, node, name, args):
    """tf2onnx handler for Expm1 (no ONNX op; TFP's ContinuousBernoulli mean uses it): Exp(x) - 1.

    TFP calls it only where |x| > ~0.3, so Exp - 1 loses no accuracy that
    matters there (the parity check bounds the result).
    """
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    exp = ctx.make_node("Exp", [node.input[0]], name=utils.make_name(f"{name}_exp"))
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype))
    node.type = "Sub"
    ctx.replace_inputs(node, [exp.output[0], one.output[0]])


def _floormod(ctx, node, name, args):
    """tf2onnx handler for integer FloorMod: one ONNX Mod (fmod=0, the sign of the divisor).

    tf2onnx's own lowering is Div, Mul, Sub (three ops); the counter generator
    of the sampler has 30 of them per draw, so one op each keeps it fast.
    """
    from onnx import TensorProto

    if ctx.get_dtype(node.input[0]) not in (TensorProto.INT32, TensorProto.INT64):
        raise ValueError(f"FloorMod {name}: only integer operands are exported")
    node.type = "Mod"
    node.set_attr("fmod", 0)


#: TF ops tf2onnx 1.17 lacks (or lowers slowly), with their handlers.
CUSTOM_OP_HANDLERS = {"Expm1": (_expm1, []), "FloorMod": (_floormod, [])}


def convert(fn, input_signature, opset):
    """A tf2onnx ModelProto of `fn` (a Python function of tensors)."""
    import tf2onnx

    with _quiet_tf2onnx():
        model_proto, _ = tf2onnx.convert.from_function(
            tf.function(fn), input_signature=input_signature, opset=opset,
            custom_op_handlers=CUSTOM_OP_HANDLERS)
    return model_proto


def build_decoder(model, spec, opset=DEFAULT_OPSET):
    """decoder.onnx as a ModelProto: z [N, d] -> mean and the likelihood's parameters."""
    proto = convert(graphs.decode_function(model, spec, checked=False),
                    graphs.onnx_signatures(spec)[DECODER], opset)
    _name_batch_dims(proto, "N")
    _metadata(proto, spec, DECODER)
    return proto


def build_sampler(model, spec, opset=DEFAULT_OPSET):
    """sampler.onnx as a ModelProto: (seed, temperature[, label]) -> images, z."""
    proto = convert(graphs.onnx_sampler_function(model, spec),
                    graphs.onnx_signatures(spec)[SAMPLER], opset)
    strip_random_seeds(proto)
    _name_batch_dims(proto, "N")
    _metadata(proto, spec, SAMPLER)
    return proto


#: The ONNX ops whose weights the int8 sampler quantises.
QUANTIZED_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")


def quantize(source, target):
    """sampler_int8.onnx: `onnxruntime.quantization.quantize_dynamic` (int8 weights)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = pathlib.Path(source), pathlib.Path(target)
    prepared = target.with_name(target.stem + ".pre.onnx")
    try:
        # skip_symbolic_shape: the symbolic pass needs sympy and gains nothing here.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        # The decoder's weights only: the prior's constants (gathered by component or
        # label) stay float, so z is the float sampler's.
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(QUANTIZED_OPS))
    finally:
        _staging.remove(prepared)
    proto = onnx.load(str(target))
    if strip_random_seeds(proto):  # the pre-processing must not have brought one back
        onnx.save(proto, str(target))
    return target


def check_decoder(path, reference):
    """Decode parity on the reference z (16 rows and 1 row: the batch is dynamic)."""
    sess = session(path)
    artefact = f"ONNX {pathlib.Path(path).name}"
    run = runtimes.run_onnx
    feeds = reference.inputs(**{contract.Z: reference.z})
    figures = verify.check_outputs(artefact, run(sess, feeds), reference.decode)
    one = {k: v[:1] for k, v in reference.decode.items()}
    verify.check_outputs(f"{artefact} (batch of 1)",
                         run(sess, {k: v[:1] for k, v in feeds.items()}), one)
    return {"decode_max_abs_diff": figures}


def check_sampler(path, reference, int8=False):
    """The sampler checks of `rows`; for int8 the decode error is measured (bounded loosely)."""
    import onnx

    sess = session(path)
    artefact = f"ONNX {pathlib.Path(path).name}"
    seeded = seeded_random_ops(onnx.load(str(path)))
    if seeded:
        raise verify.ExportCheckError(f"{artefact}: random ops {seeded} carry a fixed seed.")
    asked = rows.requests(reference)
    results = {key: runtimes.run_onnx(sess, feeds) for key, feeds in asked.items()}
    return rows.check(artefact, reference, asked, results, int8=int8)


def build(model, spec, directory, opset=DEFAULT_OPSET, quantized=True):
    """Writes the ONNX files into `directory` (a staging folder); returns {role: path}."""
    import onnx

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {DECODER: directory / FILES[DECODER], SAMPLER: directory / FILES[SAMPLER]}
    onnx.save(build_decoder(model, spec, opset), str(paths[DECODER]))
    onnx.save(build_sampler(model, spec, opset), str(paths[SAMPLER]))
    if quantized:
        paths[SAMPLER_INT8] = quantize(paths[SAMPLER], directory / FILES[SAMPLER_INT8])
    return paths


def check(paths, reference):
    """Checks every written file; returns {role: figures}."""
    figures = {DECODER: check_decoder(paths[DECODER], reference),
               SAMPLER: check_sampler(paths[SAMPLER], reference)}
    if SAMPLER_INT8 in paths:
        figures[SAMPLER_INT8] = check_sampler(paths[SAMPLER_INT8], reference, int8=True)
    return figures


def export_onnx(model, out_dir, opset=DEFAULT_OPSET, quantized=True, overwrite=False):
    """Exports decoder.onnx, sampler.onnx and sampler_int8.onnx into `out_dir`, checked first.

    Args:
      model: a trained `keras_vae.VAE` (or subclass), or the path of a .keras file.
      out_dir: the folder the files go to (`export_all` uses OUT/onnx).
      opset: the ONNX opset (17 is the one tested).
      quantized: also write the int8 sampler.
      overwrite: replace existing files (otherwise an existing one is an error).

    Returns:
      {'decoder': path, 'sampler': path, 'sampler_int8': path} (str paths).

    Raises:
      FileExistsError, ExportCheckError (nothing is left in out_dir).
    """
    out_dir = pathlib.Path(out_dir)
    targets = {role: out_dir / file for role, file in FILES.items()
               if quantized or role != SAMPLER_INT8}
    model, spec = spec_lib.prepare(model)
    with _staging.staged(targets, overwrite) as stage:
        paths = build(model, spec, stage[DECODER].parent, opset, quantized)
        check(paths, reference_lib.Reference(model, spec))
    return {role: str(path) for role, path in targets.items()}


__all__ = [
    "DEFAULT_OPSET", "FILES", "RANDOM_OPS", "QUANTIZED_OPS", "SEEDING", "CUSTOM_OP_HANDLERS", "session",
    "strip_random_seeds", "seeded_random_ops", "convert", "build_decoder", "build_sampler",
    "quantize", "check_decoder", "check_sampler", "build", "check", "export_onnx",
]
