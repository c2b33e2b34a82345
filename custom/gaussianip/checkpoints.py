"""A run's checkpoints: ``ckpts/last.pt`` and the one before it, ``ckpts/prev.pt``.

A checkpoint is written to a temporary file first, then the newest one becomes
``prev.pt`` and the new one ``last.pt``; a kill, a crash or a full disk at any moment
leaves at least one complete checkpoint. Resuming reads ``last.pt`` and, when it is
missing, truncated or damaged, falls back to ``prev.pt`` and says so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from gaussianip.errors import AssetError
from gaussianip.output_files import writing
from gaussianip.safe_load import load_checkpoint

log = logging.getLogger(__name__)

LAST, PREVIOUS = "last.pt", "prev.pt"


def state_bytes(state: Any) -> int:
    """Bytes of the tensors in ``state`` (nested dicts and lists): a checkpoint's size."""
    import torch

    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(state_bytes(v) for v in state)
    return 0


def save_checkpoint(folder: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``folder/last.pt``, keeping the one it replaces as ``prev.pt``.
    A full disk raises ``DiskFullError`` (naming the folder and the space needed) and
    leaves both earlier checkpoints and no temporary file."""
    import torch

    folder = Path(folder)
    last = folder / LAST
    with writing(last, needed=state_bytes(state)) as tmp:
        torch.save(state, tmp)
        if last.exists():
            os.replace(last, folder / PREVIOUS)
    return last


def load_latest_checkpoint(folder: str | Path) -> tuple[dict[str, Any], Path] | None:
    """``(state, file)`` of the newest readable checkpoint in ``folder`` (``last.pt``, else
    ``prev.pt`` with a warning naming what was wrong with ``last.pt``); ``None`` when there
    is none; ``AssetError`` naming both files when neither can be read."""
    folder = Path(folder)
    last, previous = folder / LAST, folder / PREVIOUS
    if not last.exists() and not previous.exists():
        return None
    problem = f"'{last}' is missing"
    if last.exists():
        try:
            return load_checkpoint(last), last
        except AssetError as err:
            problem = str(err)
    if not previous.exists():
        raise AssetError(
            f"{problem} There is no earlier checkpoint ({PREVIOUS}) to continue from. Move "
            f"'{last}' away to start the run again from its first step."
        )
    try:
        state = load_checkpoint(previous)
    except AssetError as err:
        raise AssetError(f"{problem} The earlier one cannot be used either: {err}") from None
    log.warning("%s Continuing from the previous checkpoint '%s' (after step %d).", problem,
                previous, int(state["step"]) + 1)  # fmt: skip
    return state, previous


__all__ = ["LAST", "PREVIOUS", "load_latest_checkpoint", "save_checkpoint", "state_bytes"]
