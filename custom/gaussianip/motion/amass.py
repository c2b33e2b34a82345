"""Motions in the AMASS npz layout (also Motion-X's and most video mocap tools' output).

A motion file is an ``.npz`` with SMPL-X (or SMPL-H) parameters per frame:

- either ``poses`` [T, 165] (SMPL-X: 55 joints x axis-angle), [T, 156] (SMPL-H: 22 body
  joints + 30 hand joints) or [T, 66] (the 22 body joints only),
- or ``root_orient`` [T, 3], ``pose_body`` [T, 63] and optionally ``pose_hand`` [T, 90];
- ``trans`` [T, 3] (metres; optional, zeros when missing);
- ``mocap_frame_rate`` (AMASS; ``mocap_framerate`` and ``fps`` are read too) > 0.

Rotations are axis-angle in radians, relative to the SMPL-X zero pose (a T-pose).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gaussianip.errors import AssetError
from gaussianip.paths import REPO_ROOT
from gaussianip.safe_load import load_npz, regular_file

MOTIONS_DIR = "load/motions"
FPS_KEYS = ("mocap_frame_rate", "mocap_framerate", "fps")
# Width of ``poses`` -> where its joints go among SMPL-X's 55 (body 0-21, jaw/eyes 22-24,
# left hand 25-39, right hand 40-54).
POSES_LAYOUTS = {
    165: ("SMPL-X, 55 joints", list(range(55))),
    156: ("SMPL-H, 22 body + 30 hand joints", list(range(22)) + list(range(25, 55))),
    66: ("22 body joints", list(range(22))),
}
_EXPECTED = (
    "'poses' [T, 165] (SMPL-X), [T, 156] (SMPL-H) or [T, 66] (body only), or "
    "'root_orient' [T, 3] + 'pose_body' [T, 63] (+ optional 'pose_hand' [T, 90])"
)


@dataclass
class Motion:
    """A motion: ``axis_angles`` [T, 55, 3] in SMPL-X joint order (missing joints zero),
    ``trans`` [T, 3], ``fps`` frames per second, ``has_hands``."""

    path: Path
    axis_angles: Tensor
    trans: Tensor
    fps: float
    has_hands: bool
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_frames(self) -> int:
        return self.axis_angles.shape[0]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.num_frames / self.fps


def list_shipped_motions() -> list[Path]:
    """The motions shipped in ``load/motions/`` (made by ``scripts/make_motions.py``)."""
    return sorted((REPO_ROOT / MOTIONS_DIR).glob("*.npz"))


def _bad(path: Path, message: str) -> AssetError:
    return AssetError(f"Motion file '{path}': {message}")


def _array(path: Path, data: dict[str, np.ndarray], key: str, width: int, frames: int | None):
    value = data[key]
    if value.dtype.kind not in "fiu" or value.ndim != 2 or value.shape[1] != width:
        raise _bad(path, f"key '{key}' has shape {value.shape} ({value.dtype}), expected "
                         f"[T, {width}] numbers.")  # fmt: skip
    if frames is not None and value.shape[0] != frames:
        raise _bad(path, f"key '{key}' has {value.shape[0]} frames, expected {frames} "
                         "(one row per frame, like the poses).")  # fmt: skip
    if not np.isfinite(value).all():
        row = int(np.nonzero(~np.isfinite(value).all(1))[0][0])
        raise _bad(path, f"key '{key}' holds NaN or Inf (first at frame {row}); expected "
                         f"finite [T, {width}] values.")  # fmt: skip
    return value.astype(np.float32)


def load_motion(path: str | Path) -> Motion:
    """Read and check a motion file (layout in the module docstring).

    Returns a ``Motion`` (``num_frames``, ``fps``, ``axis_angles``, ``trans``). Raises
    ``AssetError`` naming the file, the key and the expected shape for anything else.
    """
    path = Path(path).expanduser()
    if not path.exists() and not path.is_absolute() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path  # load/motions/... from any directory, as configs' assets
    if not path.exists():
        shipped = ", ".join(str(p.relative_to(REPO_ROOT)) for p in list_shipped_motions())
        raise AssetError(f"Motion file not found: '{path}'. Shipped motions: {shipped}.")
    regular_file(path, "motion file")  # a FIFO or device is refused unopened
    if not zipfile.is_zipfile(path):
        raise _bad(path, f"not an .npz archive; expected an AMASS-layout .npz with {_EXPECTED}.")
    try:
        data = load_npz(path, "motion file")  # plain arrays only, size checked first
    except AssetError as err:  # pickled arrays, damaged archives, absurd sizes
        raise AssetError(f"{err} Expected {_EXPECTED}.") from None

    if "poses" in data:
        poses = data["poses"]
        width = poses.shape[1] if poses.ndim == 2 else None
        if width not in POSES_LAYOUTS:
            raise _bad(path, f"key 'poses' has shape {poses.shape}, which fits no layout; "
                             f"expected {_EXPECTED}.")  # fmt: skip
        poses = _array(path, data, "poses", width, None)
        joints = POSES_LAYOUTS[width][1]
        frames = poses.shape[0]
        axis = np.zeros((frames, 55, 3), np.float32)
        axis[:, joints] = poses.reshape(frames, -1, 3)
        has_hands = width != 66
    elif "root_orient" in data and "pose_body" in data:
        root = _array(path, data, "root_orient", 3, None)
        frames = root.shape[0]
        body = _array(path, data, "pose_body", 63, frames)
        axis = np.zeros((frames, 55, 3), np.float32)
        axis[:, 0] = root
        axis[:, 1:22] = body.reshape(frames, 21, 3)
        has_hands = "pose_hand" in data
        if has_hands:
            axis[:, 25:55] = _array(path, data, "pose_hand", 90, frames).reshape(frames, 30, 3)
    else:
        keys = ", ".join(sorted(data)) or "none"
        raise _bad(path, f"has no pose keys (it has: {keys}); expected {_EXPECTED}.")
    if frames < 1:
        raise _bad(path, "has 0 frames; expected at least one row of poses.")

    trans = (_array(path, data, "trans", 3, frames) if "trans" in data
             else np.zeros((frames, 3), np.float32))  # fmt: skip
    fps_key = next((k for k in FPS_KEYS if k in data), None)
    if fps_key is None:
        raise _bad(path, "has no frame rate; expected a scalar 'mocap_frame_rate' > 0 "
                         "(frames per second).")  # fmt: skip
    value = np.asarray(data[fps_key])
    fps = float(value.reshape(-1)[0]) if value.size == 1 and value.dtype.kind in "fiu" else None
    if fps is None or not np.isfinite(fps) or fps <= 0:
        shown = value.tolist() if value.size <= 4 else f"an array of shape {value.shape}"
        raise _bad(path, f"key '{fps_key}' is {shown!r}; expected a scalar frame rate > 0 "
                         "(frames per second, e.g. 30 or 120).")  # fmt: skip
    return Motion(path, torch.from_numpy(axis), torch.from_numpy(trans), fps, has_hands)
