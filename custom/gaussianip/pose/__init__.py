"""OpenPose condition images with view-dependent face cropping."""

from gaussianip.pose.openpose import COLORS, LIMBS, draw_openpose, keypoint_visibility

__all__ = ["COLORS", "LIMBS", "draw_openpose", "keypoint_visibility"]
