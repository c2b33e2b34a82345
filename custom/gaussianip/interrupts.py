"""Ctrl-C and SIGTERM during a run: stop at a safe point instead of wherever Python is.

A ``KeyboardInterrupt`` raised in the middle of a training step can leave the Gaussians,
their optimiser moments and the densification state out of step with one another, so
while a run's loop is active (``StopRequests``) the first SIGINT or SIGTERM only records
the request; the loop checks ``requested`` between steps, writes its checkpoint and raises
``RunInterrupted``, whose message is the one line a user sees (with the exact command
that continues the run). A second signal stops at once (``KeyboardInterrupt``): the last
checkpoint written stays valid.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType


class RunInterrupted(KeyboardInterrupt):
    """A run stopped on request; ``str(err)`` is the line to print, ``exit_status`` the
    process's exit status (128 + the signal number: 130 for Ctrl-C)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.exit_status = 128 + int(signum)


def resume_command(run_dir: str | Path, device: str = "cpu") -> str:
    """The exact command line that continues the run in ``run_dir``."""
    python = Path(sys.executable).name or "python"
    command = f"{python} -m gaussianip run --resume {shlex.quote(str(run_dir))}"
    return command + ("" if device == "cpu" else f" --device {shlex.quote(device)}")


class StopRequests:
    """Context manager: SIGINT and SIGTERM set ``signum`` (checked by the caller at a safe
    point) instead of raising; a second one raises ``KeyboardInterrupt`` at once. Outside
    the main thread (where Python cannot install handlers) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGINT) -> None:
        """Ask for a stop from code (a host's other thread, e.g. a batch worker told to
        stop): the same as a first signal."""
        if self.signum is None:
            self.signum = signum

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # asked twice: stop now
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._restore()
