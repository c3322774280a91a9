"""Whether a process still runs: how temp files and records of killed runs are told apart.

A file whose name holds the pid of a process that has ended belongs to a run that was
killed, and can be removed at once; one whose process still runs is left alone.
"""

from __future__ import annotations

import os

__all__ = ["alive"]


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine); True when that cannot be known."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: not ours to judge
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended but not yet been reaped (it writes nothing any more)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return False
    return text[text.rfind(b")") + 2 :][:1] == b"Z"
