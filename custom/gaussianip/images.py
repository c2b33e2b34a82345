"""Saving images and grids (PNG) with Pillow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8(images: Tensor) -> np.ndarray:
    """[..., H, W, 3] floats in [0, 1] -> uint8 array."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def image_row(images: Tensor, gap: int = 0) -> Tensor:
    """Concatenate [B, H, W, C] images side by side into one [H, B*W + gaps, C] image."""
    b, h, _, c = images.shape
    spacer = images.new_ones(h, gap, c)
    parts: list[Tensor] = []
    for i in range(b):
        parts += [images[i]] + ([spacer] if gap and i < b - 1 else [])
    return torch.cat(parts, dim=1)


def save_png(path: str | Path, image: Tensor) -> Path:
    """Write one [H, W, 3] image in [0, 1]; written to a temporary file, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
