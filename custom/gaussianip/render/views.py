"""Render a ``GaussianModel`` for a camera batch (the dict of ``gaussianip.data``)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from gaussianip.gaussians.model import GaussianModel
from gaussianip.render import rasterize


def render_views(
    model: GaussianModel,
    batch: dict[str, Any],
    background: tuple[float, float, float] | Tensor = (0.0, 0.0, 0.0),
    backend: Literal["auto", "gsplat", "torch"] = "auto",
    near_plane: float = 0.01,
) -> dict[str, Any]:
    """Render every view of ``batch``.

    Returns ``comp_rgb`` [B, H, W, 3], ``opacity`` [B, H, W, 1], ``depth`` [B, H, W, 1]
    (expected depth) and ``info`` (the rasterizer's, as gsplat's strategies need it).
    """
    device = model.means.device
    viewmats = batch["viewmats"].to(device)
    n_views = viewmats.shape[0]
    bg = torch.as_tensor(background, dtype=torch.float32, device=device).expand(n_views, 3)
    colors, alphas, info = rasterize(
        means=model.means,
        quats=model.quats,
        scales=model.scales,
        opacities=model.opacities,
        colors=model.sh_coeffs,
        viewmats=viewmats,
        Ks=batch["intrinsics"].to(device),
        width=int(batch["width"]),
        height=int(batch["height"]),
        sh_degree=model.sh_degree,
        backgrounds=bg,
        near_plane=near_plane,
        render_mode="RGB+ED",
        backend=backend,
    )
    return {
        "comp_rgb": colors[..., :3],
        "depth": colors[..., 3:4],
        "opacity": alphas,
        "info": info,
    }
