r"""The checks of a contract-2 sampler, the same for every runtime: rows pure in their seeds.

`requests(reference)` gives named batches of sampler inputs; a runtime runs
them (in a fresh process for the SavedModel) and `check` compares the answers:

```none
a      seeds s0 + [0..R), temperatures TEMPERATURES, labels cycling
       z     = reference.expected_z (numpy float64 from prng.numpy_row_noise)  <= decode rule
       images = the Keras decoder (or draw_pixels) on that z                   <= decode rule
b      rows (3, 1) of a, alone                -> the same rows as in a (a row is its seed's)
c      seeds of a + 1000                      -> another z
draws  DISTRIBUTION_DRAWS consecutive seeds   -> mean and variance per pixel as Keras's draws
       (int8: the decode error on these rows, bounded by verify.INT8_MAX_ERROR; its
       dynamic quantisation scales activations per batch, so a row's images, not its z,
       move with the batch within that bound)
```
"""

import numpy as np

from keras_vae.export import contract
from keras_vae.export import verify

#: Per-row temperatures of batch 'a' (a 0 gives the prior's mode).
TEMPERATURES = (1.0, 0.5, 1.0, 0.0, 0.8)
#: The rows of 'a' that batch 'b' asks for alone.
SUBSET = (3, 1)
#: The seed offset of batch 'c'.
OTHER_SEEDS = 1000


def _batch(reference, seeds, temperatures, labels):
    seed, temperature = contract.INPUTS[contract.SAMPLE]
    return reference.inputs(**{seed: np.asarray(seeds, "int64"),
                               temperature: np.asarray(temperatures, "float32")}, labels=labels)


def requests(reference):
    """{'a', 'b', 'c', 'draws': {input name: array}} for a sampler of `reference`'s model."""
    rows = len(TEMPERATURES)
    seeds = verify.SAMPLE_SEED + np.arange(rows)
    labels = _labels(reference, rows)
    subset = list(SUBSET)
    n = verify.DISTRIBUTION_DRAWS
    return {
        "a": _batch(reference, seeds, TEMPERATURES, labels),
        "b": _batch(reference, seeds[subset], np.asarray(TEMPERATURES)[subset],
                    None if labels is None else labels[subset]),
        "c": _batch(reference, seeds + OTHER_SEEDS, TEMPERATURES, labels),
        "draws": _batch(reference, verify.DRAWS_SEED + np.arange(n),
                        np.full(n, verify.DISTRIBUTION_TEMPERATURE), reference.draw_labels),
    }


def _labels(reference, rows):
    from keras_vae.export import reference as reference_lib

    return reference_lib.reference_labels(reference.spec, rows)


def _label_of(reference, batch):
    name = contract.condition_input(reference.spec.num_classes, reference.spec.condition_dim)
    return batch.get(name) if name else None


def check(artefact, reference, asked, results, int8=False):
    """Checks a sampler's answers `results` {id: {output: array}} to `asked` (= `requests`).

    Returns the figures for the manifest; raises ExportCheckError.
    """
    spec = reference.spec
    seed_name, t_name = contract.INPUTS[contract.SAMPLE]
    a, draws = results["a"], results["draws"]
    rows = len(asked["a"][seed_name])
    for key, shape in ((contract.IMAGES, (rows,) + spec.event_shape),
                       (contract.Z, (rows, spec.latent_dim))):
        got = a[key].shape if key in a else "missing"
        if got != shape:
            raise verify.ExportCheckError(f"{artefact}: output '{key}' is {got}, expected {shape}.")
    labels = _label_of(reference, asked["a"])
    figures = {"sample_z_max_abs_diff_vs_reference": verify.check_close(
        f"{artefact} sample z (vs numpy's counter generator for the same seeds)", a[contract.Z],
        reference.expected_z(asked["a"][seed_name], asked["a"][t_name], labels))}
    alone = f"{artefact} sample '%s' of rows {list(SUBSET)} asked alone"
    verify.check_close(alone % contract.Z, results["b"][contract.Z], a[contract.Z][list(SUBSET)])
    if int8:  # dynamic quantisation scales activations per batch: images move a little
        verify.check_int8(alone % contract.IMAGES, results["b"][contract.IMAGES],
                          a[contract.IMAGES][list(SUBSET)], drawn=bool(spec.noise_per_pixel))
    else:
        verify.check_images(alone % contract.IMAGES, results["b"][contract.IMAGES],
                            a[contract.IMAGES][list(SUBSET)], drawn=bool(spec.noise_per_pixel))
    if np.array_equal(a[contract.Z], results["c"][contract.Z]):
        raise verify.ExportCheckError(f"{artefact} sample: other seeds gave the same z.")
    drawn = bool(spec.noise_per_pixel)
    if int8:
        want = reference.sampled_images(draws[contract.Z], asked["draws"][seed_name],
                                        _label_of(reference, asked["draws"]))
        figures["decode_error_vs_keras"] = verify.check_int8(
            artefact, draws[contract.IMAGES], want, drawn=drawn)
    else:
        figures["sample_images_vs_keras_decode_max_abs_diff"] = verify.check_images(
            f"{artefact} sample images (vs the Keras decoder on its z)", a[contract.IMAGES],
            reference.sampled_images(a[contract.Z], asked["a"][seed_name], labels), drawn)
    figures["sample_distribution"] = verify.check_distribution(
        f"{artefact} sample", draws[contract.IMAGES], reference.draws)
    figures["sample_seed_check"] = {contract.SEED: asked["a"][seed_name].tolist(),
                                     contract.Z: a[contract.Z].tolist()}
    return figures


__all__ = ["TEMPERATURES", "SUBSET", "OTHER_SEEDS", "requests", "check"]
