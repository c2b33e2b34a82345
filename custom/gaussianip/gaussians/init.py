"""The initial Gaussian human: area-uniform samples on the body surface, grey."""

from __future__ import annotations

import torch

from gaussianip.body import BodyModel
from gaussianip.errors import ConfigError
from gaussianip.gaussians.model import GaussianConfig, GaussianModel


def gaussians_from_body(
    body: BodyModel, cfg: GaussianConfig, generator: torch.Generator | None = None
) -> GaussianModel:
    """Sample ``cfg.init_num_points`` points on ``body``'s surface and initialise
    Gaussians there (method.md: 100k points, grey 0.5, SH degree 0, 3DGS opacity/scale)."""
    if cfg.init_num_points < 1:
        raise ConfigError(
            f"init_num_points must be >= 1, got {cfg.init_num_points}. "
            "Set geometry.init_num_points to the number of Gaussians to start from (100000)."
        )
    points, _ = body.sample_surface(cfg.init_num_points, generator=generator)
    return GaussianModel.from_points(points, cfg)
