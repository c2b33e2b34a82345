"""The body-model interface every body source fills in.

A ``BodyModel`` is a human in canonical A-pose in our frame: metres, z up, facing +x, the
person's left at +y, the bounding-box centre at the origin.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from gaussianip.errors import BodyModelError

# OpenPose's 18 body keypoints (COCO-18 order, as the openpose ControlNet expects).
OPENPOSE_BODY_NAMES = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip


@dataclass
class BodyModel:
    """A body mesh with the keypoints the method needs.

    Attributes:
        vertices: [V, 3] float32. faces: [F, 3] long.
        body_keypoints: [18, 3], OpenPose order (``OPENPOSE_BODY_NAMES``).
        face_keypoints: [Fk, 3], the 68 iBUG face landmarks where the source has them,
            else [0, 3].
        head_center: [3]. hand_centers: [2, 3] (right, left).
        skin_weights: [V, J] linear-blend-skinning weights, or None.
        joints: [J, 3] joint positions in the A-pose, or None (no skeleton).
        joint_parents: [J] long, -1 for the root. joint_names: J names.
        joint_apose_rotations: [J, 3, 3] local rotations from the zero pose (T-pose) to
            the A-pose (see ``gaussianip.rig.skeleton``).
    """

    name: str
    vertices: Tensor
    faces: Tensor
    body_keypoints: Tensor
    face_keypoints: Tensor
    head_center: Tensor
    hand_centers: Tensor
    skin_weights: Tensor | None = None
    joints: Tensor | None = None
    joint_parents: Tensor | None = None
    joint_names: tuple[str, ...] | None = None
    joint_apose_rotations: Tensor | None = None

    @property
    def height(self) -> float:
        return float(self.vertices[:, 2].max() - self.vertices[:, 2].min())

    def to(self, device: torch.device | str) -> BodyModel:
        moved = {
            f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), Tensor)
                     else getattr(self, f.name))
            for f in fields(self)
        }  # fmt: skip
        return BodyModel(**moved)

    def face_areas(self) -> Tensor:
        """Triangle areas [F]."""
        a, b, c = (self.vertices[self.faces[:, i]] for i in range(3))
        return 0.5 * torch.linalg.cross(b - a, c - a).norm(dim=-1)

    def sample_surface(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``n`` points uniformly distributed by area on the surface, and their triangles'
        unit normals: points [n, 3], normals [n, 3]."""
        if n < 1:
            raise BodyModelError(
                f"The number of surface samples must be >= 1, got {n}. "
                "Set the number of initial Gaussians (e.g. geometry.gaussians.init_num_points)"
                " to a positive value."
            )
        areas = self.face_areas()
        tri = torch.multinomial(areas, n, replacement=True, generator=generator)
        # Uniform barycentric coordinates: (1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v).
        u, v = torch.rand(2, n, 1, generator=generator, dtype=self.vertices.dtype)
        su = u.sqrt()
        a, b, c = (self.vertices[self.faces[tri, i]] for i in range(3))
        points = (1 - su) * a + su * (1 - v) * b + su * v * c
        normals = torch.nn.functional.normalize(torch.linalg.cross(b - a, c - a), dim=-1)
        return points, normals
