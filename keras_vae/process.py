r"""Which process trains a run: an identity that a reused pid (a container restart) cannot fake.

```none
identity = {pid, host, boot_id, started}     started: the start time of the process, in clock
                                             ticks since boot (/proc/PID/stat, field 22)
alive(identity) = pid runs on this host, not a zombie, same boot, same start time
```

After a container restart the pid recorded in a run's state.json (often 1) can
belong to a new, unrelated process; its start time differs, so the run is not
taken for "in use". A state written before this module (pid and host only) is
judged by the process's command line: it is the trainer only if it mentions
keras-vae.

Example:

```python
state = process.identity()          # saved in state.json while training
process.alive(state)                # False once that process is gone, even if its pid is reused
```
"""

import os
import pathlib
import socket


def _proc_start(pid):
    """The start time of process `pid` in clock ticks since boot (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[-1].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _boot_id():
    try:
        return pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def identity():
    """{pid, host, boot_id, started}: this process, told apart from a later one with its pid."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(),
            "started": _proc_start(pid)}


def alive(state):
    """True if `state` names a live process on this host other than this one.

    A state with the process's boot id and start time (`identity`) names it
    exactly; an older one (pid and host only) counts a live pid as the trainer only
    if that process's command line mentions keras-vae.
    """
    pid = state.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or state.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # a zombie (killed, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except OSError:
        return True
    if state.get("boot_id") and _boot_id() and state["boot_id"] != _boot_id():
        return False
    if state.get("started") is not None:
        return _proc_start(pid) == state["started"]
    try:
        command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True
    return b"keras_vae" in command or b"keras-vae" in command


__all__ = ["identity", "alive"]
