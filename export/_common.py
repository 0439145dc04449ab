"""Shared pieces of the exporters: loading the model, the Keras reference, atomic moves."""

import os
import pathlib
import shutil
import tempfile

import numpy as np

from keras_vae._backend import keras
from keras_vae.export import _graph
from keras_vae.export import verify

#: Seeds of the reference inputs (z, x) and draws: fixed, so parity figures are reproducible.
REFERENCE_SEED = 20240601
#: Rows of z and x in the decode / encode checks.
REFERENCE_ROWS = 16


def resolve_model(model):
    """Returns a model: `model` itself, or the model saved at a .keras path."""
    if isinstance(model, (str, os.PathLike)):
        path = pathlib.Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"No model file at {str(path)!r} (expected a .keras file).")
        import keras_vae  # noqa: F401  (registers the custom objects)

        return keras.models.load_model(path)
    return model


class Reference:
    """The Keras model's own outputs on fixed inputs: what every artefact must reproduce.

    Attributes:
      z: float32 [R, d] standard normal draws; decode: the model's outputs on them.
      x: float32 [R, *event] uniform in [0, 1]; encode: {'loc', 'scale'} on them.
      draws: images [DRAWS, *event] from `model.sample` at DISTRIBUTION_TEMPERATURE.
    """

    def __init__(self, model, spec):
        self.model = model
        self.spec = spec
        rng = np.random.default_rng(REFERENCE_SEED)
        self.z = rng.standard_normal((REFERENCE_ROWS, spec.latent_dim)).astype("float32")
        self.x = rng.uniform(0.0, 1.0, (REFERENCE_ROWS,) + spec.event_shape).astype("float32")
        self.decode = self.decode_at(self.z)
        loc, scale = model.encoder_parameters(self.x)
        self.encode = {"loc": np.asarray(loc), "scale": np.asarray(scale)}
        self._draws = None

    def decode_at(self, z):
        """The Keras model's decoder outputs (numpy) at z."""
        outputs = self.model.decoder_parameters(np.asarray(z, "float32"))
        return {key: np.asarray(value) for key, value in outputs.items()}

    @property
    def draws(self):
        if self._draws is None:
            self._draws = np.asarray(self.model.sample(
                verify.DISTRIBUTION_DRAWS, verify.DISTRIBUTION_TEMPERATURE, seed=REFERENCE_SEED
            ))
        return self._draws


def prepare(model):
    """(model, spec) from a model or a .keras path."""
    model = resolve_model(model)
    return model, _graph.ExportSpec(model)


def staging_dir(parent, prefix):
    """A new hidden temporary folder inside `parent` (same file system: renames are atomic)."""
    parent = pathlib.Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def remove(path):
    """Removes a file or a folder if it exists."""
    path = pathlib.Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def move_into_place(source, target, overwrite):
    """Renames `source` (file or folder) to `target` atomically.

    An existing target is an error unless `overwrite`; a replaced folder is first
    renamed aside (a hidden name, never a version number) and removed afterwards,
    so a reader sees the old or the new one, never a mixture.
    """
    source, target = pathlib.Path(source), pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.exists() or target.is_symlink()):
        os.rename(source, target)
        return
    if not overwrite:
        raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it.")
    if target.is_dir() and not target.is_symlink():
        aside = pathlib.Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
        os.rename(target, aside / target.name)
        os.rename(source, target)
        remove(aside)
    else:
        os.replace(source, target)
