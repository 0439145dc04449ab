"""A `keras-vae` process whose renames into a watched folder can be recorded or made fatal.

Run as a script: `python tests/support/faults.py COMMAND ARGS...` runs `keras-vae` with
`os.replace` and `os.rename` wrapped. Every file keras-vae writes into a run or export
folder arrives by such a rename (temp file, fsync, rename), so the renames are the
points where a kill can leave the folder in a new state. With

- FAULT_WATCH=DIR: only renames whose target lies inside DIR count;
- FAULT_KILL_AT=N: the process SIGKILLs itself just before the Nth counted rename;
- FAULT_KILL_AFTER=N: ... just after the Nth counted rename;
- FAULT_SNAPSHOTS=DIR: before each counted rename, DIR/NNN becomes a copy of the watched
  folder: what a SIGKILL at that instant would leave on disk (a killed process loses
  nothing that it had written; only its next steps never happen).
"""

import os
import shutil
import signal
import sys

_count = 0


def _counted(target):
    watch = os.path.abspath(os.environ["FAULT_WATCH"])
    target = os.path.abspath(os.fspath(target))
    return target == watch or target.startswith(watch + os.sep)


def _before_rename(target):
    global _count
    if not _counted(target):
        return
    _count += 1
    if int(os.environ.get("FAULT_KILL_AT", "0")) == _count:
        os.kill(os.getpid(), signal.SIGKILL)
    snapshots = os.environ.get("FAULT_SNAPSHOTS")
    if snapshots:
        shutil.copytree(os.environ["FAULT_WATCH"], os.path.join(snapshots, f"{_count:03d}"),
                        symlinks=True)


def _wrap(real):
    def wrapped(src, dst, *args, **kwargs):
        _before_rename(dst)
        result = real(src, dst, *args, **kwargs)
        if _counted(dst) and int(os.environ.get("FAULT_KILL_AFTER", "0")) == _count:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return wrapped


def install():
    """Wraps os.replace and os.rename (the module's functions, seen by every caller)."""
    os.replace, os.rename = _wrap(os.replace), _wrap(os.rename)


if __name__ == "__main__":
    install()
    from keras_vae import cli

    sys.exit(cli.main(sys.argv[1:]))
