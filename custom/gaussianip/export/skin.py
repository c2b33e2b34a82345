"""Skinning the exported mesh: per-vertex joint weights and the glTF skeleton's poses.

Vertices are bound to the body as the Gaussians are (``rig.bind_gaussians``: the nearest
body surface point's blended weights), keeping the 4 largest (summing to 1).

The glTF skeleton: one node per joint, in the rest pose (the canonical A-pose) with
identity rotations, at the joint's position (children relative to their parents); its
inverse bind matrices are then pure translations. A pose of our rig, the canonical ->
posed rigid transforms ``T_j = [R_j | t_j]`` of ``Skeleton.joint_transforms``, becomes the
node transforms: joint j's global rotation is ``R_j`` and its global position the posed
joint ``R_j p_j + t_j``, so ``global_j @ inverse_bind_j = T_j`` and glTF's skinning equals
ours vertex for vertex.

Frames: ``GLTF_FROM_OURS`` turns our axes (x front, y left, z up) into glTF's (+z front,
+x left, +y up): (x, y, z) -> (y, z, x), a proper rotation; then the avatar is lifted so
that its lowest point stands on glTF's ground (y = 0). ``to_gltf`` does both, once,
for every position and rotation written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gaussianip.rig.binding import Binding, bind_gaussians
from gaussianip.rig.rotations import matrix_to_quat
from gaussianip.rig.skeleton import Skeleton

# Rows: glTF's x, y, z in our axes (the same rotation as the glTF splat export's).
GLTF_FROM_OURS = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


@dataclass
class GltfFrame:
    """Our frame -> glTF's: ``p' = GLTF_FROM_OURS p + (0, lift, 0)``."""

    lift: float

    def extras(self) -> dict:
        """The mapping, as the GLB's scene ``extras`` record it (for readers that want
        our frame back: ``p = GLTF_FROM_OURS^T (p' - (0, lift, 0))``)."""
        return {"gaussianip_frame": {"gltf_from_ours": GLTF_FROM_OURS.tolist(),
                                     "lift": self.lift}}  # fmt: skip

    def to_ours(self, p: Tensor) -> Tensor:
        """[..., 3] glTF positions -> ours (the inverse of ``points``)."""
        q = p.double().clone()
        q[..., 1] -= self.lift
        return q @ GLTF_FROM_OURS.double()

    def points(self, p: Tensor) -> Tensor:
        """[..., 3] positions in our frame -> glTF's."""
        out = p.double() @ GLTF_FROM_OURS.double().T
        out[..., 1] += self.lift
        return out

    def directions(self, d: Tensor) -> Tensor:
        """[..., 3] directions (normals) -> glTF's (no lift)."""
        return d.double() @ GLTF_FROM_OURS.double().T

    def rotations(self, r: Tensor) -> Tensor:
        """[..., 3, 3] rotations -> glTF's: ``M R M^T``."""
        m = GLTF_FROM_OURS.double()
        return m @ r.double() @ m.T


def skin_vertices(vertices: Tensor, body_vertices: Tensor, body_faces: Tensor,
                  skin_weights: Tensor) -> Binding:  # fmt: skip
    """Top-4 joint indices / weights [V, 4] (summing to 1) for mesh ``vertices`` [V, 3]
    from the body (``body_vertices`` [Vb, 3], ``body_faces`` [Fb, 3], ``skin_weights``
    [Vb, J]): glTF's ``JOINTS_0`` / ``WEIGHTS_0`` hold 4 a vertex, which every engine
    reads (the Gaussians keep 8)."""
    return bind_gaussians(vertices, body_vertices, body_faces, skin_weights, top_k=4)


@dataclass
class NodePoses:
    """Joint node transforms in glTF's frame for T poses: ``translation`` [T, J, 3] and
    ``rotation`` [T, J, 4] (xyzw, glTF's order), local to the parent node."""

    translation: np.ndarray
    rotation: np.ndarray


def rest_translations(skeleton: Skeleton, frame: GltfFrame) -> np.ndarray:
    """[J, 3] rest-pose node translations (the root's absolute, others from the parent)."""
    joints = frame.points(skeleton.joints)
    parents = skeleton.parents.tolist()
    local = joints.clone()
    for j, p in enumerate(parents):
        if p >= 0:
            local[j] = joints[j] - joints[p]
    return local.float().numpy()


def inverse_bind_matrices(skeleton: Skeleton, frame: GltfFrame) -> np.ndarray:
    """[J, 4, 4] inverses of the joints' global rest transforms (translations)."""
    joints = frame.points(skeleton.joints)
    out = np.tile(np.eye(4), (skeleton.num_joints, 1, 1))
    out[:, :3, 3] = -joints.numpy()
    return out.astype(np.float32)


def node_poses(skeleton: Skeleton, transforms: Tensor, frame: GltfFrame) -> NodePoses:
    """Local node transforms for canonical -> posed joint transforms ``transforms``
    [T, J, 4, 4] (our frame; ``Skeleton.joint_transforms`` / ``motion_joint_transforms``)."""
    t = transforms.double()
    rot = frame.rotations(t[..., :3, :3])  # [T, J, 3, 3] global rotations in glTF's frame
    posed = (t[..., :3, :3] @ skeleton.joints.double()[:, :, None])[..., 0] + t[..., :3, 3]
    pos = frame.points(posed)  # [T, J, 3] global positions
    local_rot = rot.clone()
    local_pos = pos.clone()
    for j, p in enumerate(skeleton.parents.tolist()):
        if p >= 0:
            parent_t = rot[:, p].transpose(-1, -2)
            local_rot[:, j] = parent_t @ rot[:, j]
            local_pos[:, j] = (parent_t @ (pos[:, j] - pos[:, p])[..., None])[..., 0]
    wxyz = matrix_to_quat(local_rot)
    return NodePoses(local_pos.float().numpy(), wxyz[..., [1, 2, 3, 0]].float().numpy())
