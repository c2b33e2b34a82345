"""``gaussianip-gaussian-geometry``: the Gaussian human as a threestudio geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from threestudio.models.geometry.base import BaseGeometry

from gaussianip.body import build_body_model
from gaussianip.body.config import BodyConfig
from gaussianip.config import construct_config, parse_config
from gaussianip.gaussians import GaussianConfig, GaussianModel, HumanDensifyStrategy, load_ply
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.paths import resolve_asset
from gaussianip.threestudio_ext.registry import register


@register("gaussianip-gaussian-geometry")
class GaussianGeometry(BaseGeometry):
    """Holds a ``GaussianModel`` (``self.model``) and its densification strategy.

    Sub-configs: ``body`` (``BodyConfig``), ``gaussians`` (``GaussianConfig``) and
    ``densify`` (``HumanDensifyStrategy`` fields). ``init_ply`` seeds the run from a
    standard 3DGS PLY instead of the body.
    """

    @dataclass
    class Config(BaseGeometry.Config):
        body: dict = field(default_factory=dict)
        gaussians: dict = field(default_factory=dict)
        densify: dict = field(default_factory=dict)
        init_ply: str | None = None
        seed: int = 0
        # No densification within this distance (m) of the hands; 0 turns it off.
        no_densify_near_hands: float = 0.0

    cfg: Config

    def configure(self) -> None:
        super().configure()
        gaussian_cfg = parse_config(GaussianConfig, self.cfg.gaussians, "geometry.gaussians")
        body_cfg = parse_config(BodyConfig, self.cfg.body, "geometry.body")
        body = build_body_model(**vars(body_cfg))  # also checks the body files up front
        if self.cfg.init_ply:
            params = load_ply(resolve_asset(self.cfg.init_ply, "geometry.init_ply"))
            self.model = GaussianModel(params, gaussian_cfg)
        else:
            generator = torch.Generator().manual_seed(self.cfg.seed)
            self.model = gaussians_from_body(body, gaussian_cfg, generator)
        self.strategy = construct_config(HumanDensifyStrategy, self.cfg.densify, "geometry.densify")
        if self.cfg.no_densify_near_hands > 0:
            self.strategy.no_grow_centers = body.hand_centers.tolist()
            self.strategy.no_grow_radius = self.cfg.no_densify_near_hands

    def export(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"gaussians": {k: v.detach() for k, v in self.model.params.items()}}
