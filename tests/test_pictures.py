"""Pictures sized for people: H.264 turntables, thumbnails, the summary sheet, and the
``system.outputs`` settings."""

from __future__ import annotations

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from gaussianip.config import parse_config
from gaussianip.errors import ConfigError
from gaussianip.images import save_mp4
from gaussianip.pictures import (
    OutputsConfig,
    identity_line,
    summary_sheet,
    thumbnails,
)


def read_video(path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    return meta, frames


def test_save_mp4_writes_browser_playable_h264(tmp_path):
    colours = torch.linspace(0, 1, 12)
    frames = (torch.stack([colours, 1 - colours, torch.full_like(colours, 0.5)], 1)
              [:, None, None, :].expand(12, 33, 47, 3))  # fmt: skip
    path = save_mp4(tmp_path / "t.mp4", iter(frames), fps=24)  # any iterable of frames
    meta, decoded = read_video(path)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 24 and meta["size"] == (48, 34)  # padded to even sizes
    assert len(decoded) == 12
    for frame, colour in zip(decoded, frames[:, 0, 0], strict=True):
        middle = frame[10:24, 10:36].reshape(-1, 3).mean(axis=0) / 255
        assert np.abs(middle - colour.numpy()).max() < 0.04
    assert not (tmp_path / "t.tmp.mp4").exists()
    with pytest.raises(ValueError, match="no frames"):
        save_mp4(tmp_path / "empty.mp4", [])
    assert not (tmp_path / "empty.mp4").exists()


def test_thumbnails_shrink_the_longer_side_and_never_enlarge():
    images = torch.rand(3, 200, 100, 3)
    small = thumbnails(images, 50)
    assert small.shape == (3, 50, 25, 3)
    assert torch.allclose(small.mean(dim=(1, 2)), images.mean(dim=(1, 2)), atol=0.01)
    assert thumbnails(images, 256) is images


def test_outputs_config_is_checked():
    cfg = parse_config(OutputsConfig, {"turntable_frames": 240}, "system.outputs")
    assert (cfg.thumbnail_size, cfg.turntable_frames, cfg.turntable_fps) == (256, 240, 30)
    with pytest.raises(ConfigError, match="system.outputs.thumbnail_size"):
        parse_config(OutputsConfig, {"thumbnail_size": 0}, "system.outputs")
    with pytest.raises(ConfigError, match="Did you mean 'turntable_fps'"):
        parse_config(OutputsConfig, {"turntable_fsp": 30}, "system.outputs")


def test_summary_sheet_lays_out_labelled_panels():
    panels = [("portrait", np.zeros((80, 60, 3), np.uint8)), ("stage 1", None),
              ("final", torch.ones(40, 40, 3))]  # fmt: skip
    sheet = np.asarray(summary_sheet(panels, 100, identity_line({"arcface_cosine": 0.61})))
    gap = 8
    assert sheet.shape[0] == 100 + 2 * 28 + 2 * gap
    assert sheet.shape[1] == 75 + 100 + 100 + 4 * gap  # widths scaled to 100 px tall
    assert (sheet[gap : gap + 100, gap : gap + 75] == 0).all()  # the black portrait
    assert (sheet[gap + 50, gap + 75 + gap + 100 + gap + 50] == 255).all()  # white final
    assert "0.610" in identity_line({"arcface_cosine": 0.61})
    assert "stand-in" in identity_line({"arcface_cosine": None, "reason": "stand-in"})
