r"""Staging, then one journaled swap into place: how every exporter writes, written once.

```none
with staged({key: target}, overwrite, journal=OUT/.export-transaction.json) as stage:
    write stage[key] ...; check it ...     # hidden folders beside each target; targets untouched
# clean exit, the swap:  journal written (atomic) -> every old target renamed aside, the last
#   (the manifest) first -> every new one renamed in, the last (the manifest) last -> asides,
#   staging and journal removed
# exception:  the staging removed (and the folders created below `root`), targets untouched
# a kill (SIGKILL) during the swap:  the next `recover(journal)` (export_all calls it first)
#   completes the swap if the new manifest is in place, else puts every old target back
```

So the old export stays whole until the new one is written and checked; while the
swap runs there is no manifest (never one that disagrees with the files), and
after a kill the journal names every moved file, so nothing old is lost.
Staging (`.tmp-PID-NAME-*`) and aside (`.old-PID-NAME-*`) folders are hidden and
live in the target's own folder, so every rename stays on one file system
(atomic), and TF Serving, which reads numbered folders only, never sees a
half-written version. `remove_leftovers` deletes the staging folders of dead
processes, so a killed export never blocks the next one.
"""

import contextlib
import json
import os
import pathlib
import shutil
import tempfile

from keras_vae import _util

__all__ = ["Stage", "staged", "staging_dir", "remove", "move_into_place", "recover",
           "remove_leftovers", "JOURNAL"]

#: The journal's file name in the export folder (hidden).
JOURNAL = ".export-transaction.json"


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
def staged(targets, overwrite=False, root=None, journal=None):
    """Stages `targets` (a path, or {key: path}) and moves them into place on a clean exit.

    Args:
      targets: the final path, or a dict of them (moved in the dict's order).
      overwrite: replace existing targets; otherwise any existing one is an error
        raised before anything is written.
      root: on failure, also remove the folders this block created below `root`
        (None: keep them).
      journal: the journal file of a swap that a kill cannot tear (`recover` reads
        it); None: the targets are moved one by one (`move_into_place`).

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
                folders[target.parent] = staging_dir(target.parent,
                                                     f".tmp-{os.getpid()}-{target.name}-")
            stage[key] = folders[target.parent] / target.name
        stage.scratch = next(iter(folders.values())) / ".scratch"
        yield stage[None] if single else stage
        if journal is None:
            for key, target in targets.items():
                move_into_place(stage[key], target, overwrite)
        else:
            _swap([(t, stage[k]) for k, t in targets.items()], overwrite, pathlib.Path(journal))
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


# ------------------------------------------------------------ the journaled swap


def _rel(path, base):
    return os.path.relpath(path, base)


def _swap(moves, overwrite, journal):
    """Moves each (target, staged) into place; the last move is the commit (the manifest).

    The journal, written before the first rename, lists (target, staged, aside) so
    that `recover` can finish or undo a swap that a kill interrupted.
    """
    base = journal.parent
    entries = []
    for target, source in moves:
        aside = None
        if _exists(target):
            if not overwrite:
                raise FileExistsError(f"{str(target)!r} exists; pass overwrite=True to replace it.")
            aside = staging_dir(target.parent, f".old-{os.getpid()}-{target.name}-") / target.name
        entries.append((target, source, aside))
    _util.atomic_write_json(journal, {"format": 1, "pid": os.getpid(), "moves": [
        [_rel(t, base), _rel(s, base), None if a is None else _rel(a, base)]
        for t, s, a in entries]})
    try:
        for target, _, aside in reversed(entries):  # the manifest goes first
            if aside is not None:
                os.rename(target, aside)
        for target, source, _ in entries:  # ... and comes back last: the commit
            os.rename(source, target)
    except BaseException:
        recover(journal)  # e.g. a full disk: every old target goes back
        raise
    _finish(entries, journal)


def _finish(entries, journal):
    """After the commit (or a rollback): removes the asides, the staging, the journal."""
    for target, source, aside in entries:
        if aside is not None:
            remove(aside.parent)
        remove(source.parent)
        _util.fsync_path(target.parent)
    journal.unlink(missing_ok=True)
    _util.fsync_path(journal.parent)


def _read_journal(journal):
    try:
        data = json.loads(journal.read_text())
        base = journal.parent
        return [(base / t, base / s, None if a is None else base / a)
                for t, s, a in data["moves"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def recover(journal):
    """Finishes or undoes the swap of a killed export; returns 'committed', 'rolled back' or None.

    The swap committed if the new manifest (the last move) is in place: the asides
    are then removed. Otherwise every old target is renamed back from its aside
    and every new one that had been moved in is removed. An unreadable journal
    (a kill while writing it: no rename had happened yet) is removed.
    """
    journal = pathlib.Path(journal)
    if not journal.exists():
        return None
    entries = _read_journal(journal)
    if not entries:
        journal.unlink(missing_ok=True)
        return None
    last_target, last_source, _ = entries[-1]
    if _exists(last_target) and not _exists(last_source):
        _finish(entries, journal)
        return "committed"
    for target, source, aside in reversed(entries):
        if aside is not None and _exists(aside):
            if _exists(target):
                remove(target)  # the new one, moved in before the kill
            os.rename(aside, target)
        elif aside is None and _exists(target) and not _exists(source):
            remove(target)  # new, where there was none
    _finish(entries, journal)
    return "rolled back"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folders):
    """Removes the staging folders (`.tmp-PID-*`) of processes that no longer run.

    Folders of a live process (another export now) are left alone; `.old-*` asides
    are the journal's (`recover`): only an empty one (made just before a kill that
    came before the journal) is removed; a journal's temporary file is removed
    where no journal is.
    """
    for folder in folders:
        folder = pathlib.Path(folder)
        if not folder.is_dir():
            continue
        if not (folder / JOURNAL).exists():  # a journal torn while written: nothing moved
            for path in folder.glob(f".{JOURNAL}.*.tmp"):  # _util.atomic_write_*
                remove(path)
        for path in folder.glob(".tmp-*"):
            if not _live_owner(path):
                remove(path)
        for path in folder.glob(".old-*"):  # made before the journal: empty, else untouched
            if not _live_owner(path) and path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _live_owner(path):
    """True if the `.tmp-PID-*` / `.old-PID-*` folder belongs to another live process."""
    pid = path.name.split("-")[1]
    return pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid))
