"""plotting writes its PNGs atomically; the CLI's --npy arrays too (keras_vae._util)."""

import numpy as np
import pytest
from PIL import Image

from keras_vae import _util, plotting


def test_a_picture_replaces_the_old_one_whole(tmp_path):
    path = tmp_path / "grid.png"
    plotting.image_grid(np.zeros((4, 5, 5, 1), "float32"), ncols=2, path=path)
    old = path.read_bytes()
    plotting.image_grid(np.ones((4, 5, 5, 1), "float32"), ncols=2, path=path)
    assert path.read_bytes() != old
    assert np.asarray(Image.open(path)).max() == 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_a_failed_write_leaves_the_old_picture(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    plotting.image_grid(np.zeros((4, 5, 5, 1), "float32"), ncols=2, path=path)
    old = path.read_bytes()

    monkeypatch.setattr(_util.os, "fdopen", lambda fd, mode: _Failing(fd))
    with pytest.raises(OSError, match="No space"):
        plotting.image_grid(np.ones((4, 5, 5, 1), "float32"), ncols=2, path=path)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


class _Failing:
    """A file object whose write fails as on a full disk (closes its descriptor)."""

    def __init__(self, fd):
        import os
        os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(28, "No space left on device")


def test_atomic_write_npy_round_trips(tmp_path):
    array = np.arange(12, dtype="float32").reshape(3, 4)
    _util.atomic_write_npy(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
