"""The animatable avatar's rig, ``avatar_rig.npz``: the skeleton and the Gaussians' binding.

Keys (all arrays; written once after a run, or by ``gaussianip animate``, never
overwritten): ``body`` (the body model's name), ``joint_names`` [J], ``joint_parents``
[J] int32, ``joints`` [J, 3] and ``joint_apose_rotations`` [J, 3, 3] float32 (see
``Skeleton``), ``joint_indices`` [N, K] int16 and ``joint_weights`` [N, K] float16 (see
``Binding``), ``version``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gaussianip.errors import AssetError, BodyModelError
from gaussianip.rig.binding import Binding, bind_gaussians
from gaussianip.rig.skeleton import Skeleton

if TYPE_CHECKING:
    from gaussianip.body.base import BodyModel

RIG_FILE = "avatar_rig.npz"
VERSION = 1


@dataclass
class AvatarRig:
    """A body's ``skeleton`` and the ``binding`` of N Gaussians to it."""

    body: str
    skeleton: Skeleton
    binding: Binding

    @property
    def num_gaussians(self) -> int:
        return self.binding.num_gaussians

    def to(self, device: torch.device | str) -> AvatarRig:
        return AvatarRig(self.body, self.skeleton.to(device), self.binding.to(device))


def skeleton_of(body: BodyModel) -> Skeleton:
    """The skeleton of a body model (``BodyModelError`` when the body has none)."""
    if body.joints is None or body.joint_parents is None or body.joint_names is None:
        raise BodyModelError(
            f"The '{body.name}' body has no skeleton; rebuild the default body with "
            "scripts/build_default_body.py (or use SMPL-X)."
        )
    apose = body.joint_apose_rotations
    if apose is None:
        apose = torch.eye(3).repeat(len(body.joint_names), 1, 1)
    return Skeleton(tuple(body.joint_names), body.joint_parents.long().cpu(),
                    body.joints.float().cpu(), apose.float().cpu())  # fmt: skip


def build_rig(means: Tensor, body: BodyModel) -> AvatarRig:
    """Bind Gaussians at ``means`` [N, 3] (canonical A-pose) to ``body``."""
    skeleton = skeleton_of(body)
    binding = bind_gaussians(means, body.vertices, body.faces, body.skin_weights)
    return AvatarRig(body.name, skeleton, binding)


def save_rig(path: str | Path, rig: AvatarRig) -> Path:
    """Write ``rig`` to ``path`` (.npz); never overwrites a file (``AssetError``, also when
    another process wrote ``path`` meanwhile)."""
    from gaussianip.output_files import publish_new, temp_path_for

    path = Path(path)
    if path.exists():
        raise AssetError(f"'{path}' exists; it is left as it is (give another file name).")
    s, b = rig.skeleton, rig.binding
    tmp = temp_path_for(path)
    np.savez_compressed(
        tmp,
        version=np.array(VERSION),
        body=np.array(rig.body),
        joint_names=np.array(s.names),
        joint_parents=s.parents.cpu().numpy().astype(np.int32),
        joints=s.joints.cpu().numpy().astype(np.float32),
        joint_apose_rotations=s.apose_rotations.cpu().numpy().astype(np.float32),
        joint_indices=b.joint_indices.cpu().numpy().astype(np.int16),
        joint_weights=b.joint_weights.cpu().numpy().astype(np.float16),
    )
    try:
        return publish_new(tmp, path)
    except FileExistsError:
        raise AssetError(f"'{path}' exists; it is left as it is (another process wrote it "
                         "first).") from None  # fmt: skip


def write_run_rig(folder: Path, means: Tensor, body: BodyModel) -> Path | None:
    """``folder/avatar_rig.npz`` for a finished run's Gaussians at ``means`` [N, 3] (the
    end of every run), unless one is there; None when the body has no skeleton."""
    file = Path(folder) / RIG_FILE
    if body.joints is None:
        return None
    if not file.exists():
        save_rig(file, build_rig(means.detach().cpu(), body))
    return file


_SHAPES = {
    "joint_names": ("J",),
    "joint_parents": ("J",),
    "joints": ("J", 3),
    "joint_apose_rotations": ("J", 3, 3),
    "joint_indices": ("N", "K"),
    "joint_weights": ("N", "K"),
}


def load_rig(path: str | Path) -> AvatarRig:
    """Read an ``avatar_rig.npz`` (written by a run or by ``gaussianip animate``).

    Returns an ``AvatarRig`` on the CPU. Raises ``AssetError`` naming the file and the key
    when the file is missing, unreadable or malformed.
    """
    path = Path(path)
    fix = "Delete it and run `gaussianip animate` on the run folder to rebuild it."
    if not path.is_file():
        raise AssetError(f"Rig file not found: '{path}'. Run `gaussianip animate RUN_DIR` "
                         "(it writes avatar_rig.npz into the run's save folder).")  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # zipfile, OSError, ValueError: all mean "not a rig file"
        raise AssetError(f"'{path}' is not a readable avatar rig .npz ({err}). {fix}") from None
    sizes: dict[str, int] = {}
    for key, shape in {**_SHAPES, "body": ()}.items():
        if key not in arrays:
            raise AssetError(f"'{path}' lacks the key '{key}'. {fix}")
        actual = arrays[key].shape
        ok = len(actual) == len(shape)
        for want, got in zip(shape, actual, strict=False):
            if isinstance(want, str):
                ok = ok and sizes.setdefault(want, got) == got
            else:
                ok = ok and want == got
        if not ok:
            raise AssetError(f"'{path}': key '{key}' has shape {actual}, expected "
                             f"{shape} (J joints, N Gaussians, K weights each). {fix}")  # fmt: skip
    skeleton = Skeleton(
        tuple(str(n) for n in arrays["joint_names"]),
        torch.from_numpy(arrays["joint_parents"].astype(np.int64)),
        torch.from_numpy(arrays["joints"].astype(np.float32)),
        torch.from_numpy(arrays["joint_apose_rotations"].astype(np.float32)),
    )
    indices = torch.from_numpy(arrays["joint_indices"].astype(np.int64))
    weights = torch.from_numpy(arrays["joint_weights"].astype(np.float32))
    if indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < len(skeleton.names):
        raise AssetError(f"'{path}': key 'joint_indices' points outside the {len(skeleton.names)}"
                         f" joints. {fix}")  # fmt: skip
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)  # float16 rounding
    return AvatarRig(str(arrays["body"]), skeleton, Binding(indices, weights))
