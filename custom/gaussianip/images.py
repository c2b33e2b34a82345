"""Saving images, grids (PNG) and videos; reading our own PNGs back (user photos:
``gaussianip.photos``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gaussianip.output_files import writing


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


def save_png(path: str | Path, image: Tensor, compress_level: int = 6) -> Path:
    """Write one [H, W, 3] image in [0, 1]; written to a temporary file, then renamed.
    ``compress_level``: zlib's, 0-9 (Pillow's default 6; 1 is about 3x faster and the file
    about 15 % larger: the same pixels)."""
    path = Path(path)
    with writing(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG", compress_level=compress_level)
    return path


class BackgroundPngWriter:
    """``save_png`` on worker threads, so that encoding the views overlaps the GPU's work
    and each other (zlib releases the GIL). A 1024-px view takes about 0.3 s at Pillow's
    default level, so 32 refined views written one after another held the refinement up
    by about 10 s on an H200 (BENCHMARKS.md, round 6). Leaving the ``with`` block waits
    for every queued file and raises the first error of any of them."""

    def __init__(self, workers: int = 4, compress_level: int = 1) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="png-writer")
        self._pending: list = []
        self.compress_level = compress_level

    def save(self, path: str | Path, image: Tensor) -> None:
        """Queue ``image`` [H, W, 3] in [0, 1] (a CPU tensor the caller no longer changes)."""
        self._pending.append(self._pool.submit(save_png, path, image, self.compress_level))

    def __enter__(self) -> BackgroundPngWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)
        for future in self._pending:
            future.result()  # re-raises a failed write


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


def save_mp4(path: str | Path, frames: Tensor | Iterable[Tensor], fps: float = 30) -> Path:
    """Write frames in [0, 1] (an [N, H, W, 3] tensor, or any iterable of [H, W, 3] frames,
    so long turntables need not sit in memory at once) as an H.264 / yuv420p MP4, the
    codec and pixel format every browser plays (imageio-ffmpeg's bundled ffmpeg has
    libx264). Odd sizes are padded with white to even ones (yuv420p halves the chroma).
    A temporary file of its own (two writers of one name never mix), then rename."""

    path = Path(path)
    with writing(path) as tmp:  # keeps .mp4: ffmpeg picks the container by suffix
        _write_mp4(tmp, frames, fps)
    return path


def _write_mp4(tmp: Path, frames: Tensor | Iterable[Tensor], fps: float) -> None:
    import imageio_ffmpeg

    writer = None
    try:
        for frame in frames:
            pixels = to_uint8(frame)
            height, width = pixels.shape[:2]
            pad = ((0, height % 2), (0, width % 2), (0, 0))
            pixels = np.pad(pixels, pad, constant_values=255)
            if writer is None:
                writer = imageio_ffmpeg.write_frames(
                    str(tmp), (pixels.shape[1], pixels.shape[0]), fps=fps, codec="libx264",
                    pix_fmt_out="yuv420p", quality=None, macro_block_size=1,
                    output_params=["-crf", "20", "-movflags", "+faststart"],
                )  # fmt: skip
                writer.send(None)  # start ffmpeg
            writer.send(np.ascontiguousarray(pixels))
        if writer is None:
            raise ValueError(f"save_mp4('{tmp}'): no frames to write.")
        writer.close()
    except BaseException:
        if writer is not None:
            writer.close()
        raise


def save_json(path: str | Path, data: object) -> Path:
    """Write JSON (indented); temporary file, then rename."""
    import json

    path = Path(path)
    with writing(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
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
