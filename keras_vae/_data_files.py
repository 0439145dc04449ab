r"""Readers of user data files for `keras_vae.data.load`: .npy, .npz and folders of images.

```none
file.npy      one array [N, H, W] or [N, H, W, C] (no labels)
file.npz      x_train (+ y_train, x_test, y_test), or x (+ y), or a single array
folder/       images (png, jpg, ...), or class sub-folders of images: the label of an
              image is its sub-folder's index among the sorted sub-folder names
```

Every array then goes through `validation.check_images` (dtype, shape, range for the
likelihood) and `validation.check_labels`. A missing path raises FileNotFoundError;
a corrupt file, an unknown format or bad contents a ValueError naming the file.
"""

import zipfile

import numpy as np

from keras_vae import names, validation

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def load_user_data(path, likelihood, test_fraction):
    """Reads `path` (a pathlib.Path) as checked float32 images with labels.

    Args:
      path: a .npy or .npz file, or a folder of images.
      likelihood: the likelihood the data are for (its support bounds the values).
      test_fraction: with no test part in the file, the fraction of the examples
        (the last ones) kept as the test set.

    Returns:
      (x_train, y_train, x_test, y_test); labels may be None.

    Raises:
      FileNotFoundError: no such file or folder.
      ValueError: an unknown format, a corrupt file, or contents that do not fit.
    """
    x, y, x_test, y_test = _read(path)
    x = validation.check_images(x, f"{path.name}", likelihood)
    y = validation.check_labels(y, len(x), f"{path.name} labels")
    if x_test is None:
        n_test = int(round(len(x) * float(test_fraction)))
        x, x_test = x[: len(x) - n_test], x[len(x) - n_test:]
        if y is not None:
            y, y_test = y[: len(y) - n_test], y[len(y) - n_test:]
        return x, y, x_test, y_test
    x_test = validation.check_images(x_test, f"{path.name} x_test", likelihood)
    if x_test.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"{path.name}: x_test examples have shape {x_test.shape[1:]}, but the "
            f"training examples {x.shape[1:]}."
        )
    y_test = validation.check_labels(y_test, len(x_test), f"{path.name} y_test")
    return x, y, x_test, y_test


def _read(path):
    """(x, y, x_test, y_test) as stored, by the kind of `path`."""
    if not path.exists():
        known = ", ".join(names.DATASETS.names())
        hint = "" if path.suffix else f" (data set names: {known})"
        raise FileNotFoundError(f"No such data file or folder: {str(path)!r}{hint}.")
    if path.is_dir():
        return read_image_folder(path) + (None, None)
    if path.suffix.lower() == ".npy":
        return read_npy(path), None, None, None
    if path.suffix.lower() == ".npz":
        return read_npz(path)
    raise ValueError(
        f"{str(path)!r}: unknown data format {path.suffix!r}; use a .npy or .npz "
        "array or a folder of images."
    )


def read_npy(path):
    """The one array of a .npy file; ValueError if it cannot be read."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(
            f"{str(path)!r} is not a readable .npy array (corrupt?): {error}"
        ) from error


def read_npz(path):
    """(x, y, x_test, y_test) of a .npz archive (missing parts None)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{str(path)!r} is not a readable .npz archive (corrupt?): {error}"
        ) from error
    if "x_train" in arrays:
        return (arrays["x_train"], arrays.get("y_train"), arrays.get("x_test"),
                arrays.get("y_test"))
    if "x" in arrays:
        return arrays["x"], arrays.get("y"), None, None
    if len(arrays) == 1:
        return next(iter(arrays.values())), None, None, None
    raise ValueError(
        f"{str(path)!r} holds arrays {sorted(arrays)}; expected 'x_train' (with optional "
        "'y_train', 'x_test', 'y_test'), or 'x' (with optional 'y'), or a single array."
    )


def _image_entries(path):
    """[(file, label or None)] of a folder: its images, or its class sub-folders' images."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    labelled = []
    for label, cls in enumerate(classes):
        labelled += [(p, label) for p in sorted((path / cls).iterdir())
                     if p.suffix.lower() in IMAGE_SUFFIXES]
    if files and labelled:
        raise ValueError(
            f"{str(path)!r} mixes images and class sub-folders; use one or the other."
        )
    entries = [(p, None) for p in files] + labelled
    if not entries:
        raise ValueError(
            f"{str(path)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}), directly or in "
            "class sub-folders."
        )
    return entries


def _read_image(file):
    """One image file as a uint8 array: greyscale [H, W] unless it has colour."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.load()
            mode = "L" if image.mode in ("1", "L", "P", "I", "I;16", "F", "LA") else "RGB"
            return np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{str(file)!r} is not a readable image (corrupt?): {error}") from error


def read_image_folder(path):
    """(x, y) of a folder of images of one size; y is None unless in class sub-folders."""
    entries = _image_entries(path)
    images = [_read_image(file) for file, _ in entries]
    first_file, first = entries[0][0], images[0].shape
    for (file, _), image in zip(entries, images):
        if image.shape != first:
            raise ValueError(
                f"{str(path)!r}: the images differ in shape: {first_file.name} is {first}, "
                f"{file.name} is {image.shape}. Resize them to one size first."
            )
    x = np.stack(images)
    labelled = entries[0][1] is not None
    y = np.array([label for _, label in entries], "int64") if labelled else None
    return x, y


__all__ = ["IMAGE_SUFFIXES", "load_user_data", "read_npy", "read_npz", "read_image_folder"]
