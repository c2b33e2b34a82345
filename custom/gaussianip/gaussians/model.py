"""The Gaussian human: parameters, activations, initialisation and optimisers.

Parameters are stored pre-activation, as in 3D Gaussian splatting and gsplat's examples,
under the names gsplat's densification strategies expect:

====================  ===============  ==================================
name                  shape            activation
====================  ===============  ==================================
``means``             [N, 3]           none (world metres)
``scales``            [N, 3]           ``exp``
``quats``             [N, 4]           normalised by the rasterizer (wxyz)
``opacities``         [N]              ``sigmoid``
``sh0``               [N, 1, 3]        SH DC coefficient; colour = sh0 * C0 + 0.5
``shN``               [N, K - 1, 3]    higher SH bands, K = (sh_degree + 1) ** 2
====================  ===============  ==================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.spatial import cKDTree
from torch import Tensor, nn

from gaussianip.errors import ConfigError

SH_C0 = 0.28209479177387814  # zeroth spherical-harmonics basis constant


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Inverse of the degree-0 SH colour: rgb [..., 3] in [0, 1] -> DC coefficient."""
    return (rgb - 0.5) / SH_C0


def knn_rms_distance(points: Tensor, k: int = 3) -> Tensor:
    """Root-mean-square distance [N] from each point [N, 3] to its ``k`` nearest other
    points: the initial Gaussian scale of 3DGS (``sqrt(distCUDA2)``) and gsplat."""
    cloud = points.detach().cpu().double().numpy()
    dist, _ = cKDTree(cloud).query(cloud, k=k + 1)  # the first hit is the point itself
    return torch.from_numpy((dist[:, 1:] ** 2).mean(axis=1) ** 0.5).to(points)


@dataclass
class GaussianConfig:
    sh_degree: int = 0
    init_num_points: int = 100_000
    init_color: float = 0.5  # grey, as in the paper
    init_opacity: float = 0.1  # 3DGS default
    init_knn: int = 3  # initial scale = RMS distance to this many neighbours (3DGS)
    # Learning rates of 3D Gaussian splatting (means_lr is scaled by scene_scale).
    means_lr: float = 1.6e-4
    scales_lr: float = 5e-3
    quats_lr: float = 1e-3
    opacities_lr: float = 5e-2
    sh0_lr: float = 2.5e-3
    shN_lr: float = 2.5e-3 / 20
    scene_scale: float = 1.0  # the body is about 1.8 m tall; 3DGS "extent"

    def __post_init__(self) -> None:
        key = "system.geometry.gaussians"
        if not 0 <= self.sh_degree <= 3:
            raise ConfigError(f"{key}.sh_degree must be 0..3, got {self.sh_degree}.")
        if self.init_knn < 1:
            raise ConfigError(f"{key}.init_knn must be >= 1, got {self.init_knn}.")
        if self.init_num_points < self.init_knn + 1:
            raise ConfigError(
                f"{key}.init_num_points must be >= {self.init_knn + 1} (init_knn + 1), got "
                f"{self.init_num_points}; the method starts from 100000."
            )
        if not 0.0 <= self.init_color <= 1.0:
            raise ConfigError(f"{key}.init_color is a grey level in [0, 1], got {self.init_color}.")
        if not 0.0 < self.init_opacity < 1.0:
            raise ConfigError(f"{key}.init_opacity must be in (0, 1), got {self.init_opacity}.")
        for name in ("means_lr", "scales_lr", "quats_lr", "opacities_lr", "sh0_lr", "shN_lr"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"{key}.{name} is a learning rate >= 0, got {value}.")
        if not self.scene_scale > 0:
            raise ConfigError(f"{key}.scene_scale must be > 0, got {self.scene_scale}.")


class GaussianModel(nn.Module):
    """A set of 3D Gaussians, ``params`` holding the pre-activation tensors above."""

    def __init__(self, params: dict[str, Tensor], cfg: GaussianConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or GaussianConfig()
        self.params = nn.ParameterDict({k: nn.Parameter(v) for k, v in params.items()})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_points(
        cls, points: Tensor, cfg: GaussianConfig | None = None, colors: Tensor | None = None
    ) -> GaussianModel:
        """Initialise from surface samples ``points`` [N, 3] (optional ``colors`` [N, 3]),
        with 3DGS's usual isotropic scales and constant opacity."""
        cfg = cfg or GaussianConfig()  # its values are checked when it is made
        n = points.shape[0]
        if n < cfg.init_knn + 1:
            raise ConfigError(f"Need at least {cfg.init_knn + 1} points to initialise, got {n}.")
        if colors is None:
            colors = torch.full((n, 3), cfg.init_color, dtype=points.dtype, device=points.device)
        dist = knn_rms_distance(points, cfg.init_knn).clamp(min=1e-7)
        num_sh = (cfg.sh_degree + 1) ** 2
        params = {
            "means": points.clone().float(),
            "scales": torch.log(dist)[:, None].repeat(1, 3).float(),
            "quats": torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1).to(points),
            "opacities": torch.full((n,), math.log(cfg.init_opacity / (1 - cfg.init_opacity))).to(
                points
            ),
            "sh0": rgb_to_sh0(colors)[:, None, :].float(),
            "shN": torch.zeros(n, num_sh - 1, 3).to(points),
        }
        return cls(params, cfg)

    # ------------------------------------------------------------------ activated views
    @property
    def num_gaussians(self) -> int:
        return self.params["means"].shape[0]

    @property
    def sh_degree(self) -> int:
        return round(math.sqrt(1 + self.params["shN"].shape[1])) - 1

    @property
    def means(self) -> Tensor:
        return self.params["means"]

    @property
    def quats(self) -> Tensor:
        return self.params["quats"]

    @property
    def scales(self) -> Tensor:
        return torch.exp(self.params["scales"])

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.params["opacities"])

    @property
    def sh_coeffs(self) -> Tensor:
        """All SH coefficients [N, K, 3]."""
        return torch.cat([self.params["sh0"], self.params["shN"]], dim=1)

    # ------------------------------------------------------------------ optimisation
    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One Adam per parameter (betas 0.9/0.99, eps 1e-15, as the method specifies),
        the layout gsplat's strategies need to grow and prune optimiser state."""
        lrs = {
            "means": self.cfg.means_lr * self.cfg.scene_scale,
            "scales": self.cfg.scales_lr,
            "quats": self.cfg.quats_lr,
            "opacities": self.cfg.opacities_lr,
            "sh0": self.cfg.sh0_lr,
            "shN": self.cfg.shN_lr,
        }
        return {
            name: torch.optim.Adam(
                [{"params": self.params[name], "lr": lr, "name": name}],
                betas=(0.9, 0.99),
                eps=1e-15,
            )
            for name, lr in lrs.items()
        }
