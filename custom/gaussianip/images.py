"""Saving images, grids (PNG) and videos; reading our own PNGs back (user photos:
``gaussianip.photos``)."""

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


def image_grid(images: Tensor, columns: int, gap: int = 0) -> Tensor:
    """Lay out [N, H, W, C] images in rows of ``columns`` (white gaps) -> [H', W', C]."""
    rows = [image_row(images[i : i + columns], gap) for i in range(0, images.shape[0], columns)]
    width = max(r.shape[1] for r in rows)
    rows = [torch.cat([r, r.new_ones(r.shape[0], width - r.shape[1], r.shape[2])], dim=1)
            for r in rows]  # fmt: skip
    if gap:
        spacer = images.new_ones(gap, width, images.shape[-1])
        rows = [part for r in rows for part in (r, spacer)][:-1]
    return torch.cat(rows, dim=0)


def save_mp4(path: str | Path, frames: Tensor, fps: int = 30) -> Path:
    """Write [N, H, W, 3] frames in [0, 1] as an MP4 (OpenCV's MPEG-4 encoder, which every
    opencv-python wheel has); temporary file, then rename."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.mp4")  # OpenCV picks the container by suffix
    pixels = to_uint8(frames)
    height, width = pixels.shape[1:3]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write an MP4 at '{tmp}'.")
    for frame in pixels:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV wants BGR
    writer.release()
    os.replace(tmp, path)
    return path


def save_json(path: str | Path, data: object) -> Path:
    """Write JSON (indented); temporary file, then rename."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def load_png(path: str | Path) -> Tensor:
    """[H, W, 3] float32 image in [0, 1]."""
    with Image.open(path) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).float() / 255.0


def read_rgb(file: str | Path, what: str = "image") -> np.ndarray:
    """The image at ``file`` upright, as RGB uint8 [H, W, 3]: ``gaussianip.photos.read_photo``
    (EXIF orientation, every Pillow mode, huge and animated images; clear errors)."""
    from gaussianip.photos import read_photo

    return read_photo(file, what)
