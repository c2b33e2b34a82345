"""Writing output files so that two commands at once never lose one, a kill never leaves
half a file, and a full disk is named.

- ``writing(path)``: a context that yields a temporary file of its own (unique, in the
  same folder, same suffix: ffmpeg picks the container by it), renamed onto ``path`` when
  the block ends; on any error the temporary file is removed, and a full disk becomes a
  ``DiskFullError`` naming the folder and the space free.
- ``reserve_free_name(folder, stem, suffix)``: the first free ``stem.suffix``,
  ``stem-2.suffix``, ... claimed atomically (``O_CREAT | O_EXCL``: of two processes asking
  at once, each gets its own name); the caller then writes it with ``writing``.
- ``publish_new(tmp, path)``: move a finished file to ``path`` only if nothing is there
  (``FileExistsError`` otherwise), atomically.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gaussianip.disk_space import disk_full_error, is_disk_full
from gaussianip.errors import AssetError

TEMP_SUFFIX = ".tmp"


def _suffixes(path: Path) -> str:
    """The suffix a temporary twin of ``path`` keeps (``.mp4``; ``.npz``), empty for others."""
    return path.suffix if path.suffix in (".mp4", ".npz") else ""


def temp_path_for(path: str | Path) -> Path:
    """A new, empty, unique file beside ``path`` (``.<name>.<random>.tmp[.mp4]``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                suffix=TEMP_SUFFIX + _suffixes(path))  # fmt: skip
    os.close(fd)
    return Path(name)


@contextmanager
def writing(path: str | Path, needed: int | None = None) -> Iterator[Path]:
    """Yield a unique temporary file to write; it becomes ``path`` (atomically replacing
    it) when the block ends. ``needed``: bytes the file is expected to take, for the
    message of a full disk."""
    path = Path(path)
    try:
        tmp = temp_path_for(path)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full_error(path, needed) from err
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, Exception) and is_disk_full(err):
            raise disk_full_error(path, needed) from err
        raise


def reserve_free_name(folder: str | Path, stem: str, suffix: str,
                      sibling: str | None = None) -> Path:  # fmt: skip
    """Claim the first free name of ``stem{suffix}``, ``stem-2{suffix}``, ... in ``folder``
    by creating it empty with ``O_EXCL`` (atomic: two processes never get the same name).
    ``sibling``: a suffix for a companion folder (``"_ply"``) that must be free too; it is
    created as well. The caller writes the file (``writing``) or removes it on failure."""
    folder = Path(folder)
    for i in range(1, 10_000):
        name = f"{stem}{suffix}" if i == 1 else f"{stem}-{i}{suffix}"
        path = folder / name
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        if sibling is not None:
            companion = folder / (name[: -len(suffix)] + sibling)
            try:
                companion.mkdir()
            except FileExistsError:  # an earlier animation's frames: try the next name
                path.unlink()
                continue
        return path
    raise AssetError(f"No free file name for {stem}{suffix} in '{folder}' (9,999 taken).")


def publish_new(tmp: str | Path, path: str | Path) -> Path:
    """Give the finished file ``tmp`` the name ``path`` if nothing has it yet (hard link,
    then remove ``tmp``); ``FileExistsError`` if something does (``tmp`` is removed)."""
    tmp, path = Path(tmp), Path(path)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename (not atomic)
        if path.exists():
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


__all__ = ["publish_new", "reserve_free_name", "temp_path_for", "writing"]
