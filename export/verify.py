r"""Parity checks run by every export: exact decoding and sampling that agrees in distribution.

```none
decode:   max |f_exported(z) - f_keras(z)| / max(1, |f_keras(z)|) <= DECODE_ATOL   (float32)
          i.e. an absolute 1e-5 on images and probabilities (in [0, 1]), and 1e-5
          relative on unbounded parameters beyond 1 (logits, locations): float32
          kernels (XNNPack in TFLite, oneDNN in TF) round differently, ~1e-7 relative
          max |f_int8(z) - f_keras(z)|     <= INT8_MAX_ERROR * range(f_keras)  (recorded)
sample:   over n draws of each, for every pixel i
          |mean_e[i] - mean_k[i]| <= SIGMAS * sqrt((var_e[i] + var_k[i]) / n) + FLOOR
          |var_e[i]  - var_k[i]|  <= SIGMAS * sqrt(se_e[i]^2 + se_k[i]^2)      + FLOOR
          with se[i]^2 = (m4[i] - var[i]^2) / n, the variance estimate's own variance
```

A failed check raises `ExportCheckError`, whose message names the artefact, the
output, the largest difference, where it is and both values. The figures of a
passed check are returned as plain dicts, which the manifest records.

`verify_export_dir` checks an export folder after the fact (`keras-vae verify`):
every artefact reloaded with its own runtime decodes the same z as the Keras
model, under the same decode rule; the samplers give images of the right shape
inside the likelihood's support.
"""

import pathlib

import numpy as np

from keras_vae.export import contract

#: float32 artefacts: largest allowed |exported - Keras| / max(1, |Keras|) on any output.
DECODE_ATOL = 1e-5
#: int8 artefacts: largest allowed error as a fraction of the reference's range.
INT8_MAX_ERROR = 0.1
#: Drawn pixels (a likelihood's `draw_pixels`): the largest fraction of values that may
#: differ beyond DECODE_ATOL between runtimes (a uniform within float rounding of a threshold).
PIXEL_FLIP_FRACTION = 1e-3
#: Sampling statistics: allowed deviation in standard errors, plus an absolute floor.
DISTRIBUTION_SIGMAS = 6.0
DISTRIBUTION_FLOOR = 1e-4
#: Draws per sampler for the distribution check (and of the Keras model's own sampler).
DISTRIBUTION_DRAWS = 2000
#: The temperature at which sampling is compared.
DISTRIBUTION_TEMPERATURE = 1.0
#: Draws and seed of the reproducibility checks (the same seed twice, then SAMPLE_SEED + 1).
SAMPLE_ROWS = 5
SAMPLE_SEED = 1234
#: The seed of the DISTRIBUTION_DRAWS draws of a seeded sampler.
DRAWS_SEED = SAMPLE_SEED + 7


class ExportCheckError(RuntimeError):
    """An exported artefact disagrees with the Keras model or fails to load; nothing was written."""


def tolerances():
    """The tolerances in force, for the manifest."""
    return {
        "decode_atol": DECODE_ATOL,
        "decode_rule": "|exported - keras| <= decode_atol * max(1, |keras|) elementwise",
        "int8_max_error_fraction_of_range": INT8_MAX_ERROR,
        "distribution_sigmas": DISTRIBUTION_SIGMAS,
        "distribution_floor": DISTRIBUTION_FLOOR,
        "distribution_draws": DISTRIBUTION_DRAWS,
        "distribution_temperature": DISTRIBUTION_TEMPERATURE,
        "pixel_flip_fraction": PIXEL_FLIP_FRACTION,
    }


def _location(diff):
    index = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    return tuple(int(i) for i in index)


def max_abs_diff(what, got, want):
    """max |got - want| as a float; raises ExportCheckError on a shape mismatch or NaN."""
    got = np.asarray(got, "float64")
    want = np.asarray(want, "float64")
    if got.shape != want.shape:
        raise ExportCheckError(
            f"{what}: shape {got.shape}, but the Keras model gives {want.shape}.")
    if not np.all(np.isfinite(got)):
        raise ExportCheckError(
            f"{what}: {int((~np.isfinite(got)).sum())} non-finite values (NaN or Inf) in the "
            "exported output."
        )
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got - want)))


def check_close(what, got, want, atol=None):
    """Checks |got - want| <= atol * max(1, |want|) everywhere; returns max |got - want|.

    `atol` defaults to DECODE_ATOL: absolute on values in [-1, 1] (images,
    probabilities), relative beyond (logits, locations).
    """
    atol = DECODE_ATOL if atol is None else atol
    diff = max_abs_diff(what, got, want)
    got = np.asarray(got, "float64")
    want = np.asarray(want, "float64")
    scaled = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    if scaled.size and not scaled.max() <= atol:
        where = _location(scaled)
        raise ExportCheckError(
            f"{what} differs from the Keras model: max abs diff {diff:.3g} (scaled by "
            f"max(1, |value|): {scaled.max():.3g}) > tolerance {atol:.3g}, at index {where}: "
            f"exported {got[where]!r}, Keras {want[where]!r}."
        )
    return diff


def check_images(what, got, want, drawn=False):
    """`check_close` for mean images; for drawn pixels (`drawn`), at most
    PIXEL_FLIP_FRACTION of the values may differ beyond DECODE_ATOL. Returns max |got - want|.
    """
    if not drawn:
        return check_close(what, got, want)
    diff = max_abs_diff(what, got, want)
    got, want = np.asarray(got, "float64"), np.asarray(want, "float64")
    off = np.abs(got - want) > DECODE_ATOL * np.maximum(1.0, np.abs(want))
    if off.size and off.mean() > PIXEL_FLIP_FRACTION:
        raise ExportCheckError(
            f"{what} differs from the Keras model's draw_pixels on the same z and uniforms: "
            f"{int(off.sum())} of {off.size} values (more than {PIXEL_FLIP_FRACTION:g}), "
            f"max abs diff {diff:.3g}.")
    return diff


def check_outputs(artefact, got, want, atol=None):
    """Checks every output of `want` (a dict) against `got`; returns {name: max abs diff}."""
    missing = sorted(set(want) - set(got))
    if missing:
        raise ExportCheckError(
            f"{artefact}: outputs {missing} are missing (it returned {sorted(got)})."
        )
    return {key: check_close(f"{artefact} output '{key}'", got[key], want[key], atol)
            for key in sorted(want)}


def check_int8(artefact, got, want, drawn=False):
    """Measures the int8 error; fails only beyond INT8_MAX_ERROR of the reference's range.

    For drawn pixels (`drawn`) the mean error is bounded (a shifted probability
    flips single pixels by the whole range), for mean images the largest.
    """
    diff = max_abs_diff(f"{artefact} images", got, want)
    want = np.asarray(want, "float64")
    span = float(want.max() - want.min()) if want.size else 0.0
    bound = INT8_MAX_ERROR * max(span, 1e-6)
    mean_diff = float(np.mean(np.abs(np.asarray(got, "float64") - want)))
    if not (mean_diff if drawn else diff) <= bound:
        raise ExportCheckError(
            f"{artefact}: the quantised decoder differs from the Keras model by up to {diff:.3g} "
            f"(mean {mean_diff:.3g}), more than {INT8_MAX_ERROR:g} of the output range "
            f"{span:.3g}: quantisation broke the model."
        )
    return {"max_abs_error": diff, "mean_abs_error": mean_diff}


def _moments(images):
    x = np.asarray(images, "float64").reshape(len(images), -1)
    mean = x.mean(0)
    centred = x - mean
    var = (centred ** 2).mean(0)
    m4 = (centred ** 4).mean(0)
    return len(x), mean, var, m4


def check_distribution(artefact, exported, reference):
    """Compares the mean image and per-pixel variance of two sets of draws [n, ...].

    Returns {'draws', 'mean_max_abs_diff', 'variance_max_abs_diff', 'mean_max_sigmas',
    'variance_max_sigmas'}; raises ExportCheckError beyond the stated tolerance.
    """
    if not np.all(np.isfinite(exported)):
        raise ExportCheckError(f"{artefact}: non-finite values among the sampled images.")
    n_e, mean_e, var_e, m4_e = _moments(exported)
    n_k, mean_k, var_k, m4_k = _moments(reference)
    if mean_e.shape != mean_k.shape:
        raise ExportCheckError(
            f"{artefact}: sampled images have {mean_e.size} values each, the Keras model's "
            f"{mean_k.size}."
        )
    se_mean = np.sqrt(var_e / n_e + var_k / n_k)
    se_var = np.sqrt(np.maximum(m4_e - var_e ** 2, 0) / n_e
                     + np.maximum(m4_k - var_k ** 2, 0) / n_k)
    figures = {"draws": int(n_e)}
    for name, got, want, se in (("mean", mean_e, mean_k, se_mean),
                                ("variance", var_e, var_k, se_var)):
        diff = np.abs(got - want)
        bound = DISTRIBUTION_SIGMAS * se + DISTRIBUTION_FLOOR
        sigmas = diff / np.maximum(se, 1e-12)
        figures[f"{name}_max_abs_diff"] = float(diff.max())
        figures[f"{name}_max_sigmas"] = float(
            np.max(np.where(diff > DISTRIBUTION_FLOOR, sigmas, 0)))
        if np.any(diff > bound):
            i = int(np.argmax(diff - bound))
            raise ExportCheckError(
                f"{artefact}: sampling disagrees with the Keras model's own samples: the "
                f"per-pixel {name} over {n_e} draws differs by {diff[i]:.3g} at pixel {i} "
                f"(exported {got[i]:.4g}, Keras {want[i]:.4g}), more than "
                f"{DISTRIBUTION_SIGMAS:g} standard errors ({se[i]:.3g}) + {DISTRIBUTION_FLOOR:g}."
            )
    return figures


#: Rows and seed of the z that `verify_export_dir` decodes with every artefact.
VERIFY_ROWS = 8
VERIFY_SEED = 0


def _decode_with(key, path, feeds):
    """The 'mean' output of artefact `key` (a decoder) on `feeds`, or None if `key` is no decoder."""
    from keras_vae.export import runtimes

    mean = contract.OUTPUTS[contract.DECODE][0]
    if key == contract.ARTEFACT_SAVEDMODEL:
        from keras_vae._backend import tf

        decode = runtimes.savedmodel(path).signatures[contract.DECODE]
        return decode(**{k: tf.constant(v) for k, v in feeds.items()})[mean].numpy()
    if key == contract.onnx_artefact(contract.ONNX_DECODER):
        return runtimes.run_onnx(runtimes.onnx_session(path), feeds)[mean]
    if key == contract.ARTEFACT_TFLITE:
        interp = runtimes.tflite_interpreter(path)
        return runtimes.run_signature(interp, contract.DECODE, **feeds)[mean]
    return None


def _check_sampler(key, path, shape, support, extra):
    """The sampler's images have `shape` and lie in the likelihood's support (low, high).

    Contract 1 samplers take (num_samples, temperature), contract 2 ones per-row
    (seed, temperature[, label]); `extra` holds the condition input, if any.
    """
    from keras_vae.export import runtimes

    session = runtimes.onnx_session(path)
    names = {i.name for i in session.get_inputs()}
    n = shape[0]
    if contract.NUM_SAMPLES in names:
        feeds = {contract.NUM_SAMPLES: np.asarray(n, "int64"),
                 contract.TEMPERATURE: np.asarray(1.0, "float32")}
    else:
        feeds = {contract.SEED: VERIFY_SEED + np.arange(n, dtype="int64"),
                 contract.TEMPERATURE: np.ones(n, "float32"), **extra}
    images = runtimes.run_onnx(session, feeds)[contract.ONNX_SAMPLER_OUTPUTS[0]]
    low, high = support
    inside = np.isfinite(images)
    if low is not None:
        inside &= images >= low
    if high is not None:
        inside &= images <= high
    if images.shape != shape or not np.all(inside):
        raise ExportCheckError(f"{key} gives images of shape {images.shape} (expected {shape}) "
                               f"or values outside the likelihood's support [{low}, {high}].")
    return "samples ok"


def _support(model):
    """The support of the model's likelihood; unbounded when it declares none."""
    from keras_vae import validation

    try:
        return validation.likelihood_support(model.likelihood)
    except (AttributeError, ValueError):
        return (None, None)


def verify_export_dir(model, export_dir, manifest=None):
    """Reloads every artefact of an export folder with its own runtime and checks it.

    The SavedModel ('decode' signature), the ONNX decoder and the TFLite file
    decode the same z [VERIFY_ROWS, d] as `model`, within the decode rule of
    `check_close` (DECODE_ATOL); the ONNX samplers give [VERIFY_ROWS, *event]
    finite images inside the likelihood's support (`Likelihood.support`).

    Args:
      model: the Keras VAE the folder was exported from.
      export_dir: the export folder.
      manifest: its manifest (a dict); read from the folder when None.

    Returns:
      {artefact key: max |exported - Keras| (float) or a note (str)}, in the
      manifest's order.

    Raises:
      ExportCheckError: no readable manifest, an artefact that does not load or
        run, or one that disagrees with the model.
    """
    from keras_vae.export import manifest as manifest_lib

    export_dir = pathlib.Path(export_dir)
    if manifest is None:
        try:
            manifest = manifest_lib.load(export_dir)
        except (OSError, ValueError) as error:
            raise ExportCheckError(f"no readable manifest in {export_dir}: {error}") from error
    from keras_vae.export import reference as reference_lib
    from keras_vae.export import spec as spec_lib

    spec = spec_lib.ExportSpec(model)
    z = np.random.default_rng(VERIFY_SEED).standard_normal(
        (VERIFY_ROWS, model.latent_dim)).astype("float32")
    extra, vector = {}, None
    name = contract.condition_input(spec.num_classes, spec.condition_dim)
    if name:
        labels = reference_lib.reference_labels(spec, VERIFY_ROWS)
        extra = {name: labels}
        vector = (np.eye(spec.num_classes, dtype="float32")[labels] if spec.num_classes
                  else labels.reshape(VERIFY_ROWS, -1))
    mean = contract.OUTPUTS[contract.DECODE][0]
    want = np.asarray(spec.decoder_parameters(model, z, vector)[mean], "float32")
    results = {}
    for key in manifest.get("artefacts") or {}:
        path = manifest_lib.artefact_path(manifest, key, export_dir)
        try:
            got = _decode_with(key, path, {contract.Z: z, **extra})
            if got is not None:
                results[key] = check_close(f"{key} decode", got, want)
            elif key.startswith(contract.onnx_artefact(contract.ONNX_SAMPLER)):
                results[key] = _check_sampler(key, path, want.shape, _support(model), extra)
        except ExportCheckError:
            raise
        except Exception as error:  # noqa: BLE001 - any runtime failure is a failed check
            raise ExportCheckError(f"cannot run {path}: {error}") from error
    return results


def result_lines(results):
    """The lines `keras-vae verify` prints: one per artefact of `verify_export_dir`'s results."""
    return [f"  {key:<18} " + (f"max |diff| {value:.1e} vs Keras" if isinstance(value, float)
                                else str(value)) for key, value in results.items()]


__all__ = [
    "DECODE_ATOL", "INT8_MAX_ERROR", "DISTRIBUTION_SIGMAS", "DISTRIBUTION_FLOOR",
    "DISTRIBUTION_DRAWS", "DISTRIBUTION_TEMPERATURE", "SAMPLE_ROWS", "SAMPLE_SEED", "DRAWS_SEED",
    "VERIFY_ROWS", "VERIFY_SEED",
    "PIXEL_FLIP_FRACTION", "ExportCheckError", "tolerances", "max_abs_diff", "check_close",
    "check_images", "check_outputs",
    "check_int8", "check_distribution", "verify_export_dir", "result_lines",
]
