r"""ONNX (opset 17): the decoder, a self-contained sampler, and the sampler quantised to int8.

| file               | inputs                                       | outputs                                    |
|--------------------|----------------------------------------------|--------------------------------------------|
| decoder.onnx       | z float32 [N, d]                             | mean + the likelihood's parameters [N, *event] |
| sampler.onnx       | num_samples int64 [], temperature float32 [] | images float32 [n, *event], z float32 [n, d] |
| sampler_int8.onnx  | as sampler.onnx                              | as sampler.onnx (int8 weights, dynamic)    |

Converted with `tf2onnx.convert.from_function` (`from_keras` fails on Keras 3).
The sampler draws its noise inside the graph with `RandomNormalLike`; tf2onnx
writes `seed=0` on random ops, which would make every session draw the same z,
so the attribute is removed (`strip_random_seeds`) and onnxruntime's seeding
applies:

* by default each process draws differently (onnxruntime seeds from the clock
  once per process; sessions created in one process start alike);
* `onnxruntime.set_seed(s)` before creating a session makes its draws
  reproducible;
* for draws that are identical on every runtime (CPU, wasm, ...), draw z
  yourself and run `decoder.onnx` (z = temperature * eps for the standard normal
  prior): decoding a given z is exact.

Every file is checked before it is moved into place: `onnx.checker` (full
check), an onnxruntime session, decode parity with the Keras model, sampled
images equal to the Keras decoder on the sampler's own z, and sampling that
agrees in distribution with the Keras model's samples.
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
from keras_vae.export import runtimes
from keras_vae.export import spec as spec_lib
from keras_vae.export import verify

DEFAULT_OPSET = contract.DEFAULT_OPSET
FILES = contract.ONNX_FILES
RANDOM_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
              "Multinomial", "Bernoulli")
SEEDING = (
    "No seed is baked into sampler.onnx / sampler_int8.onnx: their RandomNormalLike op has no "
    "'seed' attribute, so onnxruntime seeds it: from the clock, once per process, by default "
    "(different draws in every process; successive runs of one session differ); call "
    "onnxruntime.set_seed(s) before creating the InferenceSession for reproducible draws. "
    "For draws identical across runtimes, draw z yourself and run decoder.onnx (exact): "
    "z = temperature * eps, eps ~ N(0, I) for the standard normal prior."
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
        if len(dims) >= 2 and not dims[0].HasField("dim_value"):
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


#: TF ops tf2onnx 1.17 lacks, with their handlers.
CUSTOM_OP_HANDLERS = {"Expm1": (_expm1, [])}


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
    proto = convert(graphs.decode_function(model), graphs.onnx_signatures(spec)[DECODER], opset)
    _name_batch_dims(proto, "N")
    _metadata(proto, spec, DECODER)
    return proto


def build_sampler(model, spec, opset=DEFAULT_OPSET):
    """sampler.onnx as a ModelProto, seeds stripped: (num_samples, temperature) -> images, z."""
    proto = convert(graphs.onnx_sampler_function(model, spec),
                    graphs.onnx_signatures(spec)[SAMPLER], opset)
    strip_random_seeds(proto)
    _name_batch_dims(proto, "n")
    _metadata(proto, spec, SAMPLER)
    return proto


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
        quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
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
    figures = verify.check_outputs(artefact, run(sess, {contract.Z: reference.z}),
                                   reference.decode)
    one = {k: v[:1] for k, v in reference.decode.items()}
    verify.check_outputs(f"{artefact} (batch of 1)", run(sess, {contract.Z: reference.z[:1]}), one)
    return {"decode_max_abs_diff": figures}


def _check_draws(artefact, first, second, spec):
    """Two runs of SAMPLE_ROWS: the outputs' shapes, and different z (the noise is not fixed)."""
    for key, shape in ((contract.IMAGES, (verify.SAMPLE_ROWS,) + spec.event_shape),
                       (contract.Z, (verify.SAMPLE_ROWS, spec.latent_dim))):
        if key not in first or first[key].shape != shape:
            got = first[key].shape if key in first else "missing"
            raise verify.ExportCheckError(f"{artefact}: output '{key}' is {got}, expected {shape}.")
    if np.array_equal(first[contract.Z], second[contract.Z]):
        raise verify.ExportCheckError(f"{artefact}: two runs drew the same z: the noise is fixed.")


def check_sampler(path, reference, int8=False):
    """Sampler checks; for int8 the decode error is measured (bounded only loosely)."""
    import onnx

    sess = session(path)
    artefact = f"ONNX {pathlib.Path(path).name}"
    seeded = seeded_random_ops(onnx.load(str(path)))
    if seeded:
        raise verify.ExportCheckError(f"{artefact}: random ops {seeded} carry a fixed seed.")
    num_samples, temperature = contract.ONNX_SAMPLER_INPUTS
    feeds = {num_samples: np.array(verify.SAMPLE_ROWS, np.int64),
             temperature: np.array(verify.DISTRIBUTION_TEMPERATURE, np.float32)}
    _check_draws(artefact, runtimes.run_onnx(sess, feeds), runtimes.run_onnx(sess, feeds),
                 reference.spec)
    feeds[num_samples] = np.array(verify.DISTRIBUTION_DRAWS, np.int64)
    draws = runtimes.run_onnx(sess, feeds)
    images = draws[contract.IMAGES]
    keras_images = reference.decode_at(draws[contract.Z])[contract.MEAN]
    figures = {}
    if reference.spec.noise_per_pixel:
        pass  # drawn pixels: their uniforms stay inside the graph; the distribution is checked
    elif int8:
        figures["decode_error_vs_keras"] = verify.check_int8(artefact, images, keras_images)
    else:
        figures["sample_images_vs_keras_decode_max_abs_diff"] = verify.check_close(
            f"{artefact} images (vs the Keras decoder on its z)", images, keras_images)
    figures["sample_distribution"] = verify.check_distribution(artefact, images, reference.draws)
    return figures


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
    "DEFAULT_OPSET", "FILES", "RANDOM_OPS", "SEEDING", "CUSTOM_OP_HANDLERS", "session",
    "strip_random_seeds", "seeded_random_ops", "convert", "build_decoder", "build_sampler",
    "quantize", "check_decoder", "check_sampler", "build", "check", "export_onnx",
]
