"""BackgroundPngWriter: the refined views' PNGs written on a thread, with errors kept."""

from __future__ import annotations

import pytest
import torch

from gaussianip.images import BackgroundPngWriter, load_png, save_png


def test_queued_pngs_are_the_files_save_png_writes(tmp_path):
    images = torch.rand(3, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    with BackgroundPngWriter(workers=2, compress_level=1) as writer:
        for i, image in enumerate(images):
            writer.save(tmp_path / "bg" / f"{i}.png", image)
    for i, image in enumerate(images):
        direct = save_png(tmp_path / "direct" / f"{i}.png", image, compress_level=1)
        assert (tmp_path / "bg" / f"{i}.png").read_bytes() == direct.read_bytes()
        assert torch.equal(load_png(direct), (image * 255).round() / 255)
        default = save_png(tmp_path / "level6" / f"{i}.png", image)  # other bytes, same pixels
        assert torch.equal(load_png(default), load_png(direct))
    assert not list((tmp_path / "bg").glob("*.tmp"))


def test_a_failed_write_is_raised_when_the_block_ends(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError), BackgroundPngWriter() as writer:
        writer.save(tmp_path / "fine.png", torch.zeros(4, 4, 3))
        writer.save(blocker / "view.png", torch.zeros(4, 4, 3))  # its folder is a file
    assert (tmp_path / "fine.png").is_file()  # the others are still written
