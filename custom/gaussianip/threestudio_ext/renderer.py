"""``gaussianip-gaussian-renderer``: rasterizes ``gaussianip-gaussian-geometry``.

gsplat on CUDA, our exact PyTorch rasterizer elsewhere. The background is a solid colour
set here; threestudio's material and background modules are accepted and not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from threestudio.models.renderers.base import Rasterizer

from gaussianip.render.views import render_views
from gaussianip.threestudio_ext.registry import register


@register("gaussianip-gaussian-renderer")
class GaussianRenderer(Rasterizer):
    @dataclass
    class Config(Rasterizer.Config):
        background_color: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
        backend: str = "auto"  # auto | gsplat | torch
        near_plane: float = 0.01

    cfg: Config

    def forward(self, **batch: Any) -> dict[str, Any]:
        """Render ``batch`` (a camera batch); returns ``comp_rgb``, ``opacity``, ``depth``,
        ``info``."""
        return render_views(
            self.geometry.model,
            batch,
            background=tuple(self.cfg.background_color),
            backend=self.cfg.backend,  # type: ignore[arg-type]
            near_plane=self.cfg.near_plane,
        )
