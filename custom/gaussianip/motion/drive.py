"""Driving a rigged avatar with a motion: per-frame joint transforms and posed Gaussians."""

from __future__ import annotations

import torch
from torch import Tensor

from gaussianip.errors import AssetError
from gaussianip.motion.amass import Motion
from gaussianip.motion.retarget import local_rotations
from gaussianip.rig.avatar import AvatarRig
from gaussianip.rig.posing import pose_gaussians
from gaussianip.rig.skeleton import Skeleton


def motion_joint_transforms(
    skeleton: Skeleton, motion: Motion, device: torch.device | str = "cpu"
) -> Tensor:
    """[T, J, 4, 4] canonical -> posed joint transforms for every frame, on ``device``
    (computed once per skeleton and kept on the motion, so a frame costs no copy)."""
    key = (skeleton.names, skeleton.joints.cpu().numpy().tobytes())
    if key not in motion._cache:
        local, offset = local_rotations(motion, skeleton.to("cpu"))
        motion._cache.clear()
        motion._cache[key] = {"cpu": skeleton.to("cpu").joint_transforms(local, offset)}
    per_device = motion._cache[key]
    name = str(torch.device(device))
    if name not in per_device:
        per_device[name] = per_device["cpu"].to(device)
    return per_device[name]


def animate_params(
    params: dict[str, Tensor], rig: AvatarRig, motion: Motion, frame: int
) -> dict[str, Tensor]:
    """The avatar posed at ``frame`` (0 <= frame < ``motion.num_frames``) of ``motion``.

    Args:
        params: canonical Gaussians, gsplat names (``means`` [N, 3], ``quats`` [N, 4],
            ``scales`` [N, 3], ``opacities`` [N], ``sh0`` [N, 1, 3], ``shN`` [N, K, 3]),
            pre-activation as in ``gaussians.ply``; any device.
        rig: ``load_rig(avatar_rig.npz)`` of the same N Gaussians.
        motion: ``load_motion(path)``.

    Returns:
        The same keys on the same device: ``means`` and ``quats`` posed by
        ``pose_gaussians``, the others unchanged.
    """
    n = params["means"].shape[0]
    if rig.num_gaussians != n:
        raise AssetError(f"The rig binds {rig.num_gaussians} Gaussians but the avatar has {n}; "
                         "use the avatar_rig.npz written for this avatar.")  # fmt: skip
    if not 0 <= frame < motion.num_frames:
        raise IndexError(f"frame {frame} outside 0..{motion.num_frames - 1} of '{motion.path}'")
    device = params["means"].device
    transforms = motion_joint_transforms(rig.skeleton, motion, device)[frame]
    binding = rig.binding
    if binding.joint_indices.device != device:
        binding = binding.to(device)
    with torch.no_grad():
        return pose_gaussians(params, binding, transforms)
