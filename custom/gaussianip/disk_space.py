"""Free disk space: how much there is, a check before work starts, and the message a
full disk gives (the folder, the space free and the space needed), so that "No space
left on device" never reaches a user as a serializer's traceback."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from gaussianip.errors import DiskFullError

# errnos that mean "no room": the disk is full, or the user's quota is used up.
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'`` (powers of 1024, as ``df -h``)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def existing_folder(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (where a file about to be made would go)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path if path.is_dir() else path.parent


def free_bytes(path: Path) -> int:
    """Bytes free to this user on the file system holding ``path`` (or its ancestor)."""
    return shutil.disk_usage(existing_folder(path)).free


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an error it wraps) says the disk or quota is full. torch's
    serializer reports a full disk as ``RuntimeError: ... file write failed``."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in FULL_DISK_ERRNOS:
            return True
        if isinstance(err, RuntimeError) and "write failed" in str(err):
            return True
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return False


def disk_full_error(path: Path, needed: int | None = None) -> DiskFullError:
    """The message for a write of ``path`` that found the disk full."""
    folder = existing_folder(Path(path).parent)
    need = f"; this file needs about {human_bytes(needed)}" if needed else ""
    return DiskFullError(
        f"No space left to write '{path}': {human_bytes(free_bytes(folder))} free in "
        f"'{folder}'{need}. Nothing half-written was kept. Free some space there (or write "
        "to another disk), then run the command again (`gaussianip run --resume RUN_DIR` "
        "continues a run from its last checkpoint)."
    )


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """``DiskFullError`` before any work when ``folder`` has less than ``needed`` bytes free."""
    free = free_bytes(folder)
    if free < needed:
        raise DiskFullError(
            f"{what} needs about {human_bytes(needed)} in '{existing_folder(folder)}', but "
            f"only {human_bytes(free)} is free there. Free some space, or choose another "
            "folder (--out)."
        )


__all__ = ["check_free_space", "disk_full_error", "free_bytes", "human_bytes", "is_disk_full"]
