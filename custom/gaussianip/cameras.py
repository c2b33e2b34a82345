"""Camera math shared by the data module, the renderers and the pose images.

Conventions (used everywhere in the package):

* World: metres, **z up**, the body centred at the origin and **facing +x**, so that
  threestudio's azimuth 0 is the front view, azimuth 90 looks at the person's left side
  (+y) and azimuth 180 at the back.
* ``c2w`` [B, 4, 4]: camera-to-world in the OpenGL / threestudio convention (the camera
  looks down its -z axis, +y is up in the image).
* ``viewmat`` [B, 4, 4]: world-to-camera in the OpenCV / gsplat convention (the camera
  looks down +z, +y is down in the image).
* ``K`` [B, 3, 3]: pinhole intrinsics in pixels; pixel centres sit at integer + 0.5.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# Flips the camera's y and z axes: OpenGL camera frame <-> OpenCV camera frame.
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


def spherical_to_position(elevation_deg: Tensor, azimuth_deg: Tensor, distance: Tensor) -> Tensor:
    """Camera position [B, 3] on a sphere around the origin (threestudio's formula)."""
    elev = torch.deg2rad(elevation_deg)
    azim = torch.deg2rad(azimuth_deg)
    return torch.stack(
        [
            distance * torch.cos(elev) * torch.cos(azim),
            distance * torch.cos(elev) * torch.sin(azim),
            distance * torch.sin(elev),
        ],
        dim=-1,
    )


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """OpenGL camera-to-world matrices [B, 4, 4] for cameras at ``eye`` [B, 3] looking at
    ``target`` [B, 3], with ``up`` [3] (default +z) as the image's up direction."""
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    right = torch.nn.functional.normalize(
        torch.cross(forward, up.expand_as(forward), dim=-1), dim=-1
    )
    true_up = torch.cross(right, forward, dim=-1)
    c2w = torch.eye(4, dtype=eye.dtype, device=eye.device).repeat(eye.shape[0], 1, 1)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = true_up
    c2w[:, :3, 2] = -forward
    c2w[:, :3, 3] = eye
    return c2w


def intrinsics(fovy: Tensor, width: int, height: int) -> Tensor:
    """Pinhole intrinsics [B, 3, 3] from the vertical field of view ``fovy`` [B] (radians);
    square pixels, principal point at the image centre."""
    focal = 0.5 * height / torch.tan(0.5 * fovy)
    K = torch.zeros(fovy.shape[0], 3, 3, dtype=fovy.dtype, device=fovy.device)
    K[:, 0, 0] = focal
    K[:, 1, 1] = focal
    K[:, 0, 2] = 0.5 * width
    K[:, 1, 2] = 0.5 * height
    K[:, 2, 2] = 1.0
    return K


def c2w_to_viewmat(c2w: Tensor) -> Tensor:
    """OpenGL camera-to-world [B, 4, 4] -> OpenCV world-to-camera [B, 4, 4] (gsplat's)."""
    return _GL_TO_CV.to(c2w) @ torch.linalg.inv(c2w)


def projection_matrix(
    fovy: Tensor, aspect: float, near: float = 0.01, far: float = 100.0
) -> Tensor:
    """OpenGL perspective projection [B, 4, 4] (threestudio's ``get_projection_matrix``)."""
    proj = torch.zeros(fovy.shape[0], 4, 4, dtype=fovy.dtype, device=fovy.device)
    tan_half = torch.tan(0.5 * fovy)
    proj[:, 0, 0] = 1.0 / (tan_half * aspect)
    proj[:, 1, 1] = -1.0 / tan_half  # threestudio flips y for its image convention
    proj[:, 2, 2] = -(far + near) / (far - near)
    proj[:, 2, 3] = -2.0 * far * near / (far - near)
    proj[:, 3, 2] = -1.0
    return proj


def mvp_matrix(c2w: Tensor, proj: Tensor) -> Tensor:
    """Model-view-projection [B, 4, 4] as threestudio builds it: proj @ inverse(c2w)."""
    return proj @ torch.linalg.inv(c2w)


def project_points(points: Tensor, viewmat: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points [N, 3] (or [B, N, 3]) into B cameras.

    Returns pixel coordinates [B, N, 2] (x right, y down, pixel centres at +0.5) and
    camera-space depth [B, N] (positive in front of the camera).
    """
    if points.dim() == 2:
        points = points.expand(viewmat.shape[0], -1, -1)
    cam = points @ viewmat[:, :3, :3].transpose(1, 2) + viewmat[:, None, :3, 3]
    depth = cam[..., 2]
    uv = cam @ K.transpose(1, 2)
    uv = uv[..., :2] / depth.clamp(min=1e-8)[..., None]
    return uv, depth


def fov_to_focal(fov: float, size: int) -> float:
    """Focal length in pixels for a field of view in radians over ``size`` pixels."""
    return 0.5 * size / math.tan(0.5 * fov)
