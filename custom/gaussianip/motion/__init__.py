"""Motions for the avatar: AMASS-layout loading and checks, retargeting, per-frame poses."""

from __future__ import annotations

from gaussianip.motion.amass import MOTIONS_DIR, Motion, list_shipped_motions, load_motion
from gaussianip.motion.drive import animate_params, motion_joint_transforms
from gaussianip.motion.retarget import DEFAULT_BODY_JOINT_MAP, SMPLX_JOINT_NAMES, local_rotations

__all__ = [
    "DEFAULT_BODY_JOINT_MAP",
    "MOTIONS_DIR",
    "SMPLX_JOINT_NAMES",
    "Motion",
    "animate_params",
    "list_shipped_motions",
    "load_motion",
    "local_rotations",
    "motion_joint_transforms",
]
