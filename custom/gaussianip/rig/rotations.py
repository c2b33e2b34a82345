"""Batched rotation helpers in pure PyTorch (quaternions are wxyz, like the Gaussians)."""

from __future__ import annotations

import torch
from torch import Tensor


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula: axis-angle vectors [..., 3] (radians) -> rotations [..., 3, 3]."""
    angle = axis_angle.norm(dim=-1, keepdim=True)[..., None]  # [..., 1, 1]
    # For tiny angles sin(a)/a -> 1 and (1 - cos a)/a^2 -> 1/2 (Taylor), avoiding 0/0.
    small = angle < 1e-6
    safe = torch.where(small, torch.ones_like(angle), angle)
    a = torch.where(small, 1 - angle**2 / 6, torch.sin(safe) / safe)
    b = torch.where(small, 0.5 - angle**2 / 24, (1 - torch.cos(safe)) / safe**2)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(
        *axis_angle.shape[:-1], 3, 3
    )
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def matrix_to_quat(rot: Tensor) -> Tensor:
    """Rotations [..., 3, 3] -> unit quaternions [..., 4] (wxyz, w >= 0).

    Shepperd's method: of the four ways to read the quaternion from the matrix, take the
    one dividing by the largest component, so no branch loses precision.
    """
    m = rot
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
        dim=-1,
    )
    r = torch.sqrt(sq.clamp(min=0))  # 2 * |w|, 2 * |x|, 2 * |y|, 2 * |z|
    d21, d02, d10 = (
        m[..., 2, 1] - m[..., 1, 2],
        m[..., 0, 2] - m[..., 2, 0],
        m[..., 1, 0] - m[..., 0, 1],
    )
    s21, s02, s10 = (
        m[..., 2, 1] + m[..., 1, 2],
        m[..., 0, 2] + m[..., 2, 0],
        m[..., 1, 0] + m[..., 0, 1],
    )
    candidates = torch.stack(
        [
            torch.stack([r[..., 0] ** 2, d21, d02, d10], -1),
            torch.stack([d21, r[..., 1] ** 2, s10, s02], -1),
            torch.stack([d02, s10, r[..., 2] ** 2, s21], -1),
            torch.stack([d10, s02, s21, r[..., 3] ** 2], -1),
        ],
        dim=-2,
    ) / (2 * r.clamp(min=0.1)[..., None])  # row i = candidate read through component i
    best = sq.argmax(dim=-1)
    quat = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    quat = torch.nn.functional.normalize(quat, dim=-1)
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quat_to_matrix(quat: Tensor) -> Tensor:
    """Quaternions [..., 4] (wxyz, any norm) -> rotations [..., 3, 3]."""
    w, x, y, z = torch.nn.functional.normalize(quat, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quat.shape[:-1], 3, 3)  # fmt: skip


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product ``a * b`` of quaternions [..., 4] (wxyz): rotate by b, then by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def polar_rotation(mat: Tensor, iterations: int = 8) -> Tensor:
    """The rotation factor R of the polar decomposition ``mat = R P`` for [..., 3, 3]
    matrices of positive determinant (blends of rotations): the nearest rotation.

    Scaled Newton iteration ``X <- (g X + (g X)^-T) / 2``, ``g = |det X|^(-1/3)``, with the
    inverse-transpose in closed form (cofactors / determinant): a few batched
    multiply-adds, exact for a matrix that already is a rotation.
    """
    x = mat
    for _ in range(iterations):
        a, b, c = x[..., :, 0], x[..., :, 1], x[..., :, 2]
        cof = torch.stack(
            [torch.linalg.cross(b, c), torch.linalg.cross(c, a), torch.linalg.cross(a, b)], -1
        )
        det = (a * cof[..., :, 0]).sum(-1)[..., None, None]
        det = torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
        g = det.abs() ** (-1.0 / 3.0)
        x = 0.5 * (g * x + cof / (g * det))
    return x
