"""Rasterizing 3D Gaussians: gsplat on CUDA, an exact PyTorch reference everywhere.

``rasterize`` takes gsplat's arguments and returns ``(colors, alphas, info)`` like
``gsplat.rasterization``; ``backend="auto"`` picks gsplat for CUDA tensors.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor

from gaussianip.render.gsplat_backend import rasterize_gsplat
from gaussianip.render.torch_rasterizer import rasterize_torch

BACKENDS = ("auto", "gsplat", "torch")


def rasterize(
    *args: Any, backend: Literal["auto", "gsplat", "torch"] = "auto", **kwargs: Any
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Dispatch to gsplat (CUDA) or the PyTorch reference; same arguments as
    ``rasterize_torch``."""
    if backend not in BACKENDS:
        raise ValueError(f"Unknown rasterizer backend '{backend}'; use one of {BACKENDS}.")
    means = kwargs["means"] if "means" in kwargs else args[0]
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "torch"
    if backend == "gsplat":
        if not means.is_cuda:
            raise ValueError(
                "The gsplat backend needs CUDA tensors; use backend='torch' on the CPU."
            )
        return rasterize_gsplat(*args, **kwargs)
    return rasterize_torch(*args, **kwargs)


__all__ = ["rasterize", "rasterize_gsplat", "rasterize_torch"]
