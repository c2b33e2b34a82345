"""Sizes of the run's pictures at paper settings, measured on the CPU with our own picture
code (``gaussianip.pictures``, ``gaussianip.images``): 32 ring views and 4 evaluation
views at 1024 px, a 120-frame 1024-px turntable at 30 fps, the summary sheet.

Two kinds of content: uniform random images (the worst case for any compression) and
noise-free renders of a coloured body (our CPU rasterizer, the evaluation cameras).

    PYTHONPATH=custom python3 scripts/measure_picture_sizes.py [--out DIR] [--points N]
        [--kinds random,render] [--device cuda]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from gaussianip.body import build_body_model
from gaussianip.config import parse_config
from gaussianip.data import HumanCameraConfig, HumanCameraSampler, select_views
from gaussianip.gaussians import GaussianConfig
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.gaussians.model import rgb_to_sh0
from gaussianip.images import image_grid, image_row, save_mp4, save_png
from gaussianip.pictures import OutputsConfig, summary_sheet, thumbnails
from gaussianip.render.views import render_views


def coloured_body(points: int):
    config = GaussianConfig(init_num_points=points, init_opacity=0.9)
    model = gaussians_from_body(build_body_model(name="default"), config,
                                torch.Generator().manual_seed(0))  # fmt: skip
    means = model.params["means"].detach()
    rgb = 0.25 + 0.5 * (means - means.min(0).values) / (means.max(0).values - means.min(0).values)
    model.params["sh0"].data = rgb_to_sh0(rgb)[:, None, :]
    return model


def render(model, cameras) -> torch.Tensor:
    n = cameras["c2w"].shape[0]
    with torch.no_grad():
        return torch.cat([render_views(model, select_views(cameras, [i]), background=(1, 1, 1))
                          ["comp_rgb"].cpu() for i in range(n)])  # fmt: skip


def mb(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.2f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="keep the files here")
    parser.add_argument("--points", type=int, default=20_000, help="Gaussians of the body")
    parser.add_argument("--kinds", default="random,render", help="contents to measure")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (renders)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="picture-sizes-"))
    outputs = OutputsConfig()  # the paper settings' defaults
    sampler = HumanCameraSampler(parse_config(HumanCameraConfig, {}, "data"))  # 1024 px
    model = coloured_body(args.points).to(args.device)
    g = torch.Generator().manual_seed(0)
    contents = {
        "random": lambda cams: torch.rand(cams["c2w"].shape[0], 1024, 1024, 3, generator=g),
        "render": lambda cams: render(model, cams),
    }
    for kind in args.kinds.split(","):
        make = contents[kind]
        ring = make(sampler.refinement_ring())  # 32 views
        rows = torch.cat([thumbnails(torch.cat([ring[i : i + 8], ring[i : i + 8]]),
                                     outputs.thumbnail_size) for i in range(0, 32, 8)])  # fmt: skip
        vcr = save_png(out / kind / "vcr_views.png", image_grid(rows, columns=8, gap=4))
        full = save_png(out / kind / "vcr_views_full_size.png",
                        image_grid(torch.cat([ring[:8], ring[:8]]), columns=8, gap=4))  # fmt: skip
        evals = make(sampler.turntable(4))
        stage1 = save_png(out / kind / "stage1_views.png",
                          image_row(thumbnails(evals, outputs.thumbnail_size), gap=4))  # fmt: skip
        turntable = sampler.turntable(outputs.turntable_frames)
        frames = (make(select_views(turntable, [i]))[0] for i in range(outputs.turntable_frames))
        video = save_mp4(out / kind / "turntable.mp4", frames, outputs.turntable_fps)
        panels = [(name, evals[i % 4]) for i, name in enumerate(
            ["portrait", "stage 1", "refined", "front", "side", "back"])]  # fmt: skip
        summary = out / kind / "summary.png"
        summary_sheet(panels, outputs.summary_size, "identity: 0.000").save(summary)
        print(f"{kind:>6}: vcr_views.png {mb(vcr)} (one full-size row pair of 8 views: "
              f"{mb(full)}, so 4 of them {4 * full.stat().st_size / 2**20:.1f} MB), "
              f"stage1_views.png {mb(stage1)}, turntable.mp4 {mb(video)} "
              f"({outputs.turntable_frames} frames at {outputs.turntable_fps} fps), "
              f"summary.png {mb(summary)}", flush=True)  # fmt: skip
    print(f"files in {out}")


if __name__ == "__main__":
    main()
