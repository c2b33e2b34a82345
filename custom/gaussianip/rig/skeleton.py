"""A body's skeleton and its forward kinematics.

Conventions: joints live in our canonical frame (metres, z up, facing +x). A pose is one
local rotation per joint, expressed in world axes relative to the *zero pose* (SMPL-X's
convention: all zeros is a T-pose with the upper arms horizontal). The canonical body is
the A-pose, which is itself a pose: ``apose_rotations`` (identity except the upper arms).
Posing maps canonical points with one rigid transform per joint, canonical -> posed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gaussianip.errors import BodyModelError


@dataclass
class Skeleton:
    """Joints in the canonical A-pose.

    Attributes:
        names: J joint names. parents: [J] long, -1 for the root; every parent precedes
            its children. joints: [J, 3] joint positions (rotation centres) in the A-pose.
        apose_rotations: [J, 3, 3] local rotations taking the zero pose to the A-pose.
    """

    names: tuple[str, ...]
    parents: Tensor
    joints: Tensor
    apose_rotations: Tensor

    def __post_init__(self) -> None:
        j = len(self.names)
        if self.parents.shape != (j,) or self.joints.shape != (j, 3):
            raise BodyModelError(
                f"Skeleton of {j} names has parents {tuple(self.parents.shape)} and joints "
                f"{tuple(self.joints.shape)}; expected ({j},) and ({j}, 3)."
            )
        if self.apose_rotations.shape != (j, 3, 3):
            raise BodyModelError(
                f"Skeleton apose_rotations has shape {tuple(self.apose_rotations.shape)}, "
                f"expected ({j}, 3, 3)."
            )
        parents = self.parents.tolist()
        if parents[0] != -1 or any(not 0 <= p < i for i, p in enumerate(parents) if i):
            raise BodyModelError("Skeleton parents must list the root (-1) first and every "
                                 "parent before its children.")  # fmt: skip

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def subtree(self, joint: int) -> list[int]:
        """``joint`` and all its descendants."""
        inside = [False] * self.num_joints
        inside[joint] = True
        for i, p in enumerate(self.parents.tolist()):
            if p >= 0 and inside[p]:
                inside[i] = True
        return [i for i, flag in enumerate(inside) if flag]

    def to(self, device: torch.device | str) -> Skeleton:
        return Skeleton(self.names, self.parents.to(device), self.joints.to(device),
                        self.apose_rotations.to(device))  # fmt: skip

    def zero_pose_joints(self) -> Tensor:
        """[J, 3] joint positions in the zero pose (the A-pose with its rotations undone)."""
        parents = self.parents.tolist()
        glob = [self.apose_rotations[0]]
        zero = [self.joints[0]]
        for i in range(1, self.num_joints):
            p = parents[i]
            # joints_i - joints_p = G_p (zero_i - zero_p), with G the A-pose's global rotation.
            zero.append(zero[p] + glob[p].T @ (self.joints[i] - self.joints[p]))
            glob.append(glob[p] @ self.apose_rotations[i])
        return torch.stack(zero)

    def global_transforms(self, local: Tensor, root_offset: Tensor | None = None) -> Tensor:
        """Forward kinematics: ``local`` [..., J, 3, 3] zero-pose-relative rotations and an
        optional root translation ``root_offset`` [..., 3] -> zero-pose-to-posed rigid
        transforms [..., J, 4, 4] (posed point = T_j @ zero-pose point)."""
        zero = self.zero_pose_joints().to(local)
        parents = self.parents.tolist()
        rot: list[Tensor] = [local[..., 0, :, :]]
        pos: list[Tensor] = [zero[0].expand(*local.shape[:-3], 3)]
        if root_offset is not None:
            pos[0] = pos[0] + root_offset
        for i in range(1, self.num_joints):
            p = parents[i]
            pos.append(pos[p] + rot[p] @ (zero[i] - zero[p]))
            rot.append(rot[p] @ local[..., i, :, :])
        r = torch.stack(rot, dim=-3)  # [..., J, 3, 3]
        t = torch.stack(pos, dim=-2) - (r @ zero[:, :, None])[..., 0]
        out = torch.zeros(*r.shape[:-2], 4, 4, dtype=local.dtype, device=local.device)
        out[..., :3, :3] = r
        out[..., :3, 3] = t
        out[..., 3, 3] = 1
        return out

    def joint_transforms(self, local: Tensor, root_offset: Tensor | None = None) -> Tensor:
        """Canonical (A-pose) -> posed rigid transforms [..., J, 4, 4] for the pose
        ``local`` [..., J, 3, 3] (zero-pose-relative) and ``root_offset`` [..., 3]: what
        ``pose_gaussians`` takes. ``local = apose_rotations`` gives identities."""
        posed = self.global_transforms(local, root_offset)
        rest = self.global_transforms(self.apose_rotations.to(local))
        return posed @ torch.linalg.inv(rest)
