"""Pictures sized for people: thumbnails for the view grids, the turntable's settings and
the ``summary.png`` contact sheet (portrait, stage 1, refinement, final avatar).

The full-size refined views stay in ``vcr/``; the grids are for looking, so each view in
them is a thumbnail (a 32-view ring at 1024 px made an 86 MB ``vcr_views.png``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from gaussianip.errors import ConfigError
from gaussianip.images import to_uint8
from gaussianip.output_files import writing


@dataclass
class OutputsConfig:
    """``system.outputs``: sizes of the pictures and the video a run writes."""

    thumbnail_size: int = 256  # px, the longer side of each view in the *_views.png grids
    turntable_frames: int = 120  # frames of turntable.mp4 (one full turn)
    turntable_fps: int = 30  # its frame rate: 120 frames = a 4 s turn
    summary_size: int = 512  # px, the height of each panel of summary.png

    def __post_init__(self) -> None:
        for name, low in (("thumbnail_size", 16), ("turntable_frames", 1), ("turntable_fps", 1),
                          ("summary_size", 64)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"system.outputs.{name} must be an integer >= {low}, got {value!r}."
                )


def thumbnails(images: Tensor, size: int) -> Tensor:
    """[N, H, W, C] images with their longer side shrunk to ``size`` px (antialiased;
    never enlarged) -> [N, h, w, C]."""
    height, width = images.shape[1:3]
    scale = size / max(height, width)
    if scale >= 1:
        return images
    new = (max(1, round(height * scale)), max(1, round(width * scale)))
    chw = images.permute(0, 3, 1, 2).float()
    small = F.interpolate(chw, size=new, mode="bilinear", antialias=True, align_corners=False)
    return small.clamp(0, 1).permute(0, 2, 3, 1)


def _fit(image: np.ndarray, height: int) -> Image.Image:
    """An RGB uint8 array as a PIL image ``height`` px tall (aspect kept)."""
    picture = Image.fromarray(image)
    width = max(1, round(picture.width * height / picture.height))
    return picture.resize((width, height), Image.Resampling.LANCZOS)


def summary_sheet(
    panels: list[tuple[str, Tensor | np.ndarray | None]],
    height: int,
    footer: str,
) -> Image.Image:
    """One row of labelled panels (``[H, W, 3]`` floats in [0, 1] or uint8 arrays; ``None``
    for a missing one, drawn as a grey box) with a line of text below -> an RGB image."""
    gap, label_h = 8, 28
    font = ImageFont.load_default(size=18)
    tiles: list[tuple[str, Image.Image]] = []
    for label, image in panels:
        if image is None:
            tile = Image.new("RGB", (height, height), (200, 200, 200))
            ImageDraw.Draw(tile).text((10, height // 2), "not available", fill=(80, 80, 80),
                                      font=font)  # fmt: skip
        else:
            array = to_uint8(image) if isinstance(image, Tensor) else np.asarray(image)
            tile = _fit(array, height)
        tiles.append((label, tile))
    width = sum(t.width for _, t in tiles) + gap * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, height + 2 * label_h + 2 * gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x = gap
    for label, tile in tiles:
        sheet.paste(tile, (x, gap))
        draw.text((x + 4, height + gap + 4), label, fill=(0, 0, 0), font=font)
        x += tile.width + gap
    draw.text((gap + 4, height + gap + label_h + 4), footer, fill=(0, 0, 0), font=font)
    return sheet


def identity_line(identity: dict | None) -> str:
    """The summary's footer: the ArcFace identity score, or why there is none."""
    if not identity:
        return "identity: not measured"
    score = identity.get("arcface_cosine")
    if score is not None:
        return f"identity (ArcFace cosine, portrait vs frontal renders): {score:.3f}"
    return f"identity: not measured ({identity.get('reason') or 'no score'})"


def write_summary(
    path: Path,
    portrait: np.ndarray | None,
    stage1_front: Tensor | None,
    refined_front: Tensor | None,
    final_views: Tensor,
    identity: dict | None,
    height: int,
) -> Path:
    """``summary.png``: the portrait [H, W, 3] uint8, stage 1's front view, the refined
    front view and the final front / side / back views ([H, W, 3] / [3, H, W, 3] floats in
    [0, 1]; ``None`` where a run has none), with the identity score (``identity``, as in
    ``metrics.json``) below, each panel ``height`` px tall. Written atomically."""
    panels = [("portrait", portrait), ("stage 1", stage1_front), ("refined (VCR)", refined_front),
              ("final: front", final_views[0]), ("final: side", final_views[1]),
              ("final: back", final_views[2])]  # fmt: skip
    sheet = summary_sheet(panels, height, identity_line(identity))
    with writing(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path


__all__ = [
    "OutputsConfig",
    "identity_line",
    "summary_sheet",
    "thumbnails",
    "write_summary",
]
