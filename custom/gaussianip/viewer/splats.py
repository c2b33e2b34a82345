"""Our pre-activation Gaussian parameters as the arrays viser's splat renderer takes."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gaussianip.gaussians.model import SH_C0


def quat_to_matrix(quats: Tensor) -> Tensor:
    """[N, 4] wxyz quaternions (any norm) -> [N, 3, 3] rotation matrices."""
    w, x, y, z = (quats / quats.norm(dim=1, keepdim=True).clamp_min(1e-12)).unbind(dim=1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=1).reshape(-1, 3, 3)  # fmt: skip


def splat_arrays(params: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """``centers`` [N, 3], ``covariances`` [N, 3, 3] (R diag(exp(scales))^2 R^T),
    ``rgbs`` [N, 3] (the SH DC colour ``0.5 + C0 * sh0``, clamped to [0, 1]) and
    ``opacities`` [N, 1] (``sigmoid``, straight alpha), float32, for
    ``viser``'s ``scene.add_gaussian_splats``. Non-finite Gaussians are dropped."""
    p = {k: v.detach().cpu().float() for k, v in params.items()}
    n = p["means"].shape[0]
    keep = torch.ones(n, dtype=torch.bool)
    for name in ("means", "scales", "quats", "opacities", "sh0"):
        keep &= torch.isfinite(p[name].reshape(n, -1)).all(dim=1)
    p = {k: v[keep] for k, v in p.items()}
    rotation = quat_to_matrix(p["quats"])
    m = rotation * torch.exp(p["scales"])[:, None, :]  # R @ diag(s)
    return {
        "centers": p["means"].numpy(),
        "covariances": (m @ m.transpose(1, 2)).numpy(),
        "rgbs": (0.5 + SH_C0 * p["sh0"].reshape(-1, 3)).clamp(0, 1).numpy(),
        "opacities": torch.sigmoid(p["opacities"].reshape(-1, 1)).numpy(),
    }
