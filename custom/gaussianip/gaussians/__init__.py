"""3D Gaussians: the model, PLY files and densification."""

from gaussianip.gaussians.model import SH_C0, GaussianConfig, GaussianModel, rgb_to_sh0
from gaussianip.gaussians.ply import load_ply, save_ply
from gaussianip.gaussians.strategy import HumanDensifyStrategy

__all__ = [
    "SH_C0",
    "GaussianConfig",
    "GaussianModel",
    "HumanDensifyStrategy",
    "load_ply",
    "rgb_to_sh0",
    "save_ply",
]
