"""A small, opaque, coloured Gaussian avatar on the default body's surface, for the mesh
export tests: a few thousand flat Gaussians that tile the skin (the shape a trained avatar
has, without training), coloured by a smooth function of the position so that a texture
baked in the wrong place shows."""

from __future__ import annotations

from pathlib import Path

import torch

from gaussianip.body import BodyModel
from gaussianip.gaussians import save_ply
from gaussianip.gaussians.model import knn_rms_distance, rgb_to_sh0
from gaussianip.rig.rotations import matrix_to_quat


def avatar_colour(points: torch.Tensor) -> torch.Tensor:
    """[N, 3] colours in [0.15, 0.85] of points [N, 3] (metres, our frame): red rises
    with height, green from back to front, blue from right to left."""
    scale = torch.tensor([0.5, 0.3, 0.9])
    return 0.5 + 0.35 * torch.tanh(points[:, [2, 0, 1]] / scale)


def synthetic_avatar(body: BodyModel, n: int = 6000, seed: int = 0) -> dict[str, torch.Tensor]:
    """Pre-activation Gaussian parameters (``gaussians.ply``'s) of ``n`` opaque discs on
    ``body``'s surface, each lying in the surface's tangent plane."""
    g = torch.Generator().manual_seed(seed)
    points, normals = body.sample_surface(n, generator=g)
    radius = knn_rms_distance(points, k=4) * 1.6
    # A frame whose third axis is the normal: the disc is thin along it.
    helper = torch.where(normals[:, :1].abs() < 0.9, torch.tensor([1.0, 0, 0]),
                         torch.tensor([0.0, 1, 0]))  # fmt: skip
    t1 = torch.nn.functional.normalize(torch.linalg.cross(normals, helper), dim=-1)
    t2 = torch.linalg.cross(normals, t1)
    frame = torch.stack([t1, t2, normals], dim=-1)  # columns
    scales = torch.stack([radius, radius, radius * 0.15], dim=-1)
    return {
        "means": points,
        "quats": matrix_to_quat(frame),
        "scales": torch.log(scales),
        "opacities": torch.full((n,), 4.0),
        "sh0": rgb_to_sh0(avatar_colour(points))[:, None, :],
        "shN": torch.zeros(n, 0, 3),
    }


def write_synthetic_run(folder: Path, body: BodyModel, n: int = 6000) -> Path:
    """A finished-run folder ``folder/save/gaussians.ply`` (default body) of the
    synthetic avatar; returns ``folder``."""
    save_ply(folder / "save" / "gaussians.ply", synthetic_avatar(body, n))
    return folder
