"""Staging, then atomic moves into place: how every exporter writes, written once.

```none
with staged({key: target}, overwrite) as stage:    # FileExistsError now if a target exists
    write stage[key] ...; check it ...              # hidden folders beside each target
# on a clean exit: each stage[key] renamed onto its target, in order; the staging removed
# on an exception: the staging removed (and folders created below `root`), targets untouched
```

Staging folders are hidden (`.tmp-NAME-*`) and live in the target's own folder,
so every rename stays on one file system (atomic), and TF Serving, which reads
numbered folders only, never sees a half-written version.
"""

import contextlib
import os
import pathlib
import shutil
import tempfile

__all__ = ["Stage", "staged", "staging_dir", "remove", "move_into_place"]


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


def _exists(path):
    return path.exists() or path.is_symlink()


def move_into_place(source, target, overwrite):
    """Renames `source` (file or folder) to `target` atomically.

    An existing target is an error unless `overwrite`; a replaced folder is first
    renamed aside (a hidden name, never a version number) and removed afterwards,
    so a reader sees the old or the new one, never a mixture.
    """
    source, target = pathlib.Path(source), pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _exists(target):
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


def _missing_dirs(path, root):
    """The folders from `path` up to `root` (exclusive) that do not exist yet."""
    missing = []
    path = pathlib.Path(path)
    while (root is None or path != root) and path != path.parent and not path.exists():
        missing.append(path)
        path = path.parent
    return missing


class Stage(dict):
    """{key: staging path} of a `staged` block; `scratch` is a staging folder never moved."""

    scratch = None


@contextlib.contextmanager
def staged(targets, overwrite=False, root=None):
    """Stages `targets` (a path, or {key: path}) and moves them into place on a clean exit.

    Args:
      targets: the final path, or a dict of them (moved in the dict's order).
      overwrite: replace existing targets; otherwise any existing one is an error
        raised before anything is written.
      root: on failure, also remove the folders this block created below `root`
        (None: keep them).

    Yields:
      The staging path (for a single target), or a `Stage` {key: staging path};
      the caller writes each there. Staging paths keep the target's name.

    Raises:
      FileExistsError: a target exists and overwrite is False.
    """
    single = not isinstance(targets, dict)
    targets = {None: targets} if single else dict(targets)
    targets = {key: pathlib.Path(path) for key, path in targets.items()}
    existing = [str(p) for p in targets.values() if _exists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f"Export targets exist: {existing}; pass overwrite=True to replace them.")
    created, folders, committed = [], {}, False
    root = None if root is None else pathlib.Path(root)
    try:
        stage = Stage()
        for key, target in targets.items():
            if target.parent not in folders:
                created.extend(_missing_dirs(target.parent, root))
                folders[target.parent] = staging_dir(target.parent, f".tmp-{target.name}-")
            stage[key] = folders[target.parent] / target.name
        stage.scratch = next(iter(folders.values())) / ".scratch"
        yield stage[None] if single else stage
        for key, target in targets.items():
            move_into_place(stage[key], target, overwrite)
        committed = True
    finally:
        for folder in folders.values():
            remove(folder)
        if not committed and root is not None:
            for folder in sorted(set(created), key=lambda p: len(p.parts), reverse=True):
                try:
                    folder.rmdir()
                except OSError:
                    pass
