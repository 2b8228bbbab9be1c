"""One process per state file: an exclusive ``flock`` on ``<state file>.lock``.

Two daemons on one state file would both fire every stored job (a reminder posted twice) and
both count (counters doubled). SQLite's own locks only serialize single writes, so the process
that opens the file first takes this lock and holds it until it closes the file; the kernel
drops it when the process dies, however it dies, so a crash leaves no stale lock behind. The
holder writes its pid into the lock file for the error the next process shows.

The lock file is never deleted: a process could otherwise lock a file that another has just
unlinked, and two processes would each hold "the" lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from botkit.errors import StateInUseError

__all__ = ["ProcessLock", "lock_path"]

# The holder writes its pid just after taking the lock: a second process that reads the file in
# between finds it empty, so it looks again a few times before saying "pid unknown".
_PID_READS = 5
_PID_READ_PAUSE = 0.02


def lock_path(state_path: Path) -> Path:
    """The lock file beside ``state_path``."""
    return state_path.with_name(state_path.name + ".lock")


class ProcessLock:
    """The exclusive lock of one state file, held from :meth:`acquire` to :meth:`release`.

    Blocking file calls: run on the state file's worker thread, never on the event loop."""

    def __init__(self, state_path: Path) -> None:
        self.state_path = state_path
        self.path = lock_path(state_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise StateInUseError naming the holder's pid (OSError when the
        lock file can't be made)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateInUseError(str(self.state_path), self._holder()) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            os.close(fd)  # closing the descriptor drops the lock
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _holder(self) -> int | None:
        for attempt in range(_PID_READS):
            try:
                text = self.path.read_text(encoding="ascii", errors="replace").strip()
            except OSError:
                return None
            if text.isdigit():
                return int(text)
            if attempt + 1 < _PID_READS:
                time.sleep(_PID_READ_PAUSE)
        return None
