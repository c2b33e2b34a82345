"""Reading files that may be hostile or broken: any input path, checkpoints, YAML, npz.

Every file a command reads came from someone: a run folder copied from another machine,
a download, a disk that filled up mid-write. The readers here load data only (tensors,
numbers, plain YAML, plain arrays: nothing in a file can run code) and turn every failure
into one ``AssetError`` that names the file and what is wrong with it; they never
suggest loading a file in a way that trusts it.

- ``regular_file(path, what)``: the path of an existing regular file; a folder, a FIFO,
  a socket or a device is refused before it is opened (opening a FIFO blocks forever).
- ``load_checkpoint(path)``: ``torch.load(weights_only=True)`` with its errors named.
- ``load_yaml(path, what)``: a YAML mapping through a safe loader (a ``!!python`` tag is
  an error, not an object).
- ``load_npz(path, what)``: every array of an ``.npz`` with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from gaussianip.errors import AssetError

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def regular_file(path: str | Path, what: str = "file") -> Path:
    """``path`` when it names a regular file (links followed); ``AssetError`` naming what it
    is otherwise. Nothing is opened, so a FIFO or a device cannot block the caller."""
    path = Path(path).expanduser()
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise AssetError(f"The {what} '{path}' does not exist. Check the path.") from None
    except OSError as err:
        raise AssetError(f"The {what} '{path}' cannot be read ({err.strerror}).") from None
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise AssetError(
            f"The {what} '{path}' is {kind}, not a regular file; only regular files are "
            "read. Give the file itself."
        )
    return path


def _first_line(err: BaseException) -> str:
    """The first sentence of ``err``'s message (libraries append advice we do not pass on)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0].split(". ")[0].rstrip(".")[:200] if lines else type(err).__name__


def load_torch_weights(path: str | Path, what: str = "checkpoint") -> Any:
    """What ``torch.save`` wrote to ``path``, loaded with ``weights_only=True`` (tensors,
    numbers, strings, lists and dicts only). ``AssetError`` naming the file when it is
    missing, empty, truncated, damaged, or holds anything else."""
    import pickle
    import zipfile

    import torch

    path = regular_file(path, what)
    if path.stat().st_size == 0:
        raise AssetError(f"The {what} '{path}' is empty (0 bytes): it was never written.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False: never pass that on.
        raise AssetError(
            f"The {what} '{path}' holds objects other than tensors, numbers and lists; "
            "such files are not loaded (they could run code)."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise AssetError(
            f"The {what} '{path}' is truncated or damaged ({_first_line(err)})."
        ) from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A run's checkpoint (``load_torch_weights``), checked to be one of ours."""
    state = load_torch_weights(path, "checkpoint")
    if not isinstance(state, dict) or "step" not in state or "params" not in state:
        raise AssetError(f"The checkpoint '{path}' is not a gaussianip checkpoint "
                         "(no 'step' and 'params').")  # fmt: skip
    return state


def load_yaml(path: str | Path, what: str = "config file") -> Any:
    """The YAML mapping in ``path`` as an OmegaConf ``DictConfig`` (OmegaConf's loader is
    a ``yaml.SafeLoader``: tags such as ``!!python/object`` are refused)."""
    import yaml
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    path = regular_file(path, what)
    try:
        config = OmegaConf.load(path)
    except yaml.constructor.ConstructorError as err:
        tag = f" ({err.problem})" if err.problem else ""
        raise AssetError(
            f"The {what} '{path}' holds a YAML tag that plain settings never need{tag}; "
            "it is not loaded. Remove the tagged value, or start a new run."
        ) from None
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError, ValueError) as err:
        raise AssetError(f"The {what} '{path}' is not valid YAML: {_first_line(err)}.") from None
    if not isinstance(config, DictConfig):
        raise AssetError(f"The {what} '{path}' must hold a mapping of settings, "
                         f"got {type(config).__name__}.")  # fmt: skip
    return config


# What an .npz may unpack to: a compressed file of zeros can claim terabytes.
MAX_NPZ_BYTES = 4 * 2**30


def npz_sizes(path: Path) -> dict[str, tuple[tuple[int, ...], int]]:
    """{key: (shape, bytes)} of each array in the ``.npz`` at ``path``, read from the
    arrays' headers (nothing is decompressed beyond them)."""
    import zipfile

    import numpy as np

    sizes = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)  # fmt: skip
                shape, _, dtype = read(member)
            sizes[info.filename.removesuffix(".npy")] = (
                shape, int(np.prod(shape, dtype=np.float64)) * dtype.itemsize)  # fmt: skip
    return sizes


def load_npz(
    path: str | Path, what: str = "file", max_bytes: int = MAX_NPZ_BYTES
) -> dict[str, Any]:
    """Every array of the ``.npz`` at ``path`` (``allow_pickle=False``: an object array is
    an error), after checking from the headers that they hold at most ``max_bytes``.
    ``AssetError`` naming the file otherwise."""
    import zipfile

    import numpy as np

    from gaussianip.disk_space import human_bytes

    path = regular_file(path, what)
    if not zipfile.is_zipfile(path):
        raise AssetError(f"The {what} '{path}' is not an .npz archive.")
    try:
        sizes = npz_sizes(path)
    except Exception as err:  # a damaged archive or array header
        raise AssetError(f"The {what} '{path}' cannot be read ({_first_line(err)}).") from None
    total = sum(nbytes for _, nbytes in sizes.values())
    if total > max_bytes:
        key, (shape, nbytes) = max(sizes.items(), key=lambda item: item[1][1])
        raise AssetError(
            f"The {what} '{path}' unpacks to {human_bytes(total)} (its array '{key}' has "
            f"shape {shape}, {human_bytes(nbytes)}); at most {human_bytes(max_bytes)} are "
            "read. Cut it into smaller files."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise AssetError(f"The {what} '{path}' holds pickled (object) arrays, which are "
                             "not loaded; save plain numeric arrays.") from None  # fmt: skip
        raise AssetError(f"The {what} '{path}' cannot be read ({_first_line(err)}).") from None
    except Exception as err:  # zipfile, zlib, format errors: all mean "damaged"
        raise AssetError(f"The {what} '{path}' cannot be read ({_first_line(err)}).") from None


__all__ = [
    "load_checkpoint",
    "load_npz",
    "load_torch_weights",
    "load_yaml",
    "npz_sizes",
    "regular_file",
]
