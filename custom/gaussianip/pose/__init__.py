"""OpenPose condition images with view-dependent face cropping."""

from gaussianip.pose.openpose import (
    BODY_KEYPOINT_NAMES,
    COLORS,
    FACE_BODY_INDICES,
    LIMB_COLORS,
    LIMBS,
    draw_openpose,
    keypoint_visibility,
)

__all__ = [
    "BODY_KEYPOINT_NAMES",
    "COLORS",
    "FACE_BODY_INDICES",
    "LIMBS",
    "LIMB_COLORS",
    "draw_openpose",
    "keypoint_visibility",
]
