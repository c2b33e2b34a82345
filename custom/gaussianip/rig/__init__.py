"""Rigging the Gaussian avatar to its body: skeleton, binding, posing, ``avatar_rig.npz``."""

from __future__ import annotations

from gaussianip.rig.avatar import (
    RIG_FILE,
    AvatarRig,
    build_rig,
    load_rig,
    save_rig,
    skeleton_of,
    write_run_rig,
)
from gaussianip.rig.binding import Binding, bind_gaussians
from gaussianip.rig.posing import pose_gaussians
from gaussianip.rig.skeleton import Skeleton

__all__ = [
    "RIG_FILE",
    "AvatarRig",
    "Binding",
    "Skeleton",
    "bind_gaussians",
    "build_rig",
    "load_rig",
    "pose_gaussians",
    "save_rig",
    "skeleton_of",
    "write_run_rig",
]
