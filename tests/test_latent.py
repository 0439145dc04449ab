"""latent: lerp, slerp and the interpolation path."""

import numpy as np
import pytest

from keras_vae import latent, model


def test_lerp_and_slerp_end_points_and_norm():
    a, b = np.array([[3.0, 0.0]], "float32"), np.array([[0.0, 3.0]], "float32")
    p = latent.path(a, b, 5, "slerp").numpy()
    assert p.shape == (1, 5, 2)
    np.testing.assert_allclose(p[0, 0], a[0], atol=1e-5)
    np.testing.assert_allclose(p[0, -1], b[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(p[0], axis=-1), 3.0, rtol=1e-5)
    mid = latent.path(a, b, 3, "linear").numpy()[0, 1]
    np.testing.assert_allclose(mid, [1.5, 1.5])
    # Parallel vectors: slerp falls back to lerp.
    same = latent.slerp(a, 2 * a, 0.5).numpy()
    np.testing.assert_allclose(same, 1.5 * a, rtol=1e-6)
    assert model.lerp is latent.lerp and model.slerp is latent.slerp


def test_check_path():
    with pytest.raises(ValueError, match="steps"):
        latent.check_path(1)
    with pytest.raises(ValueError, match="method"):
        latent.check_path(4, "cubic")
