"""One writer per run folder: ``run.lock``, held with ``fcntl.flock`` while a run works.

The kernel drops a ``flock`` when its process ends, however it ends (Ctrl-C, SIGKILL, a
crash), so a killed run never leaves a lock that blocks its ``--resume``. The file holds
the holder's pid, host and start time, for the message a second writer gets; a file
still holding them when the lock is free was left by a process that did not end cleanly,
and is taken over with a note. Needs a POSIX system; on network file systems without
``flock`` support two hosts are not kept apart.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from gaussianip.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_FILE = "run.lock"


class RunFolderBusy(ConfigError):
    """Another process is writing the run folder."""


def _holder(text: str) -> dict:
    try:
        info = json.loads(text)
        return info if isinstance(info, dict) else {}
    except ValueError:
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    started = info.get("started", "?")
    return f"process {info.get('pid', '?')} on {info.get('host', '?')} (started {started})"


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/run.lock``; ``RunFolderBusy`` naming the
    holder when another process has it."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
                os.close(fd)
                raise RunFolderBusy(
                    f"The run folder '{self.path.parent}' is in use by {_describe(info)}: one "
                    "run writes a folder at a time. Wait for it to finish, or stop it (Ctrl-C "
                    "saves a checkpoint) and resume then."
                ) from None
            # A holder that finished removed the file after we opened it: lock the new one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = _holder(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if stale and stale.get("pid") != os.getpid():
            log.warning("Took over the lock of '%s' left by %s, which ended without releasing "
                        "it (killed?).", self.path.parent, _describe(stale))  # fmt: skip
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking: see acquire's inode check
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
