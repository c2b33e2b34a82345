"""gsplat's CUDA rasterizer, with the same arguments as ``rasterize_torch``."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,
    render_mode: str = "RGB",
    **unused: Any,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``gsplat.rasterization`` in classic, unpacked mode (see ``rasterize_torch``)."""
    import gsplat  # imported here: it compiles its CUDA code at first use

    return gsplat.rasterization(
        means=means,
        quats=quats,
        scales=scales,
        opacities=opacities,
        colors=colors,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        sh_degree=sh_degree,
        tile_size=tile_size,
        backgrounds=backgrounds,
        render_mode=render_mode,
        packed=False,
        rasterize_mode="classic",
    )
