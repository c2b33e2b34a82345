"""``gaussianip preview``: the initial grey Gaussian human and its pose images.

Builds the body model, samples the Gaussians on its surface, writes ``init.ply``, renders
front / left / back / right views into ``views.png`` and draws the matching OpenPose
images into ``openpose.png``. Runs on the CPU in well under a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from gaussianip.body import build_body_model
from gaussianip.data import HumanCameraConfig, make_batch
from gaussianip.errors import ConfigError
from gaussianip.gaussians import GaussianConfig, save_ply
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.images import image_row, save_png
from gaussianip.pose import draw_openpose
from gaussianip.render.views import render_views

PREVIEW_AZIMUTHS = {"front": 0.0, "left": 90.0, "back": 180.0, "right": -90.0}
OUTPUT_FILES = ("init.ply", "views.png", "openpose.png")


@dataclass
class PreviewOptions:
    out: Path
    body: str = "default"
    body_model_path: str | None = None
    num_points: int = 100_000
    resolution: int = 512
    seed: int = 0
    device: str = "cpu"


def check_output_dir(out: Path, files: tuple[str, ...] = OUTPUT_FILES) -> None:
    """Refuse an ``out`` that is (or lies inside) a file, and to overwrite files a previous
    run wrote; creates nothing."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                what = f"--out '{out}'" + ("" if folder == out else f": '{folder}'")
                raise ConfigError(
                    f"{what} is a file, not a folder; nothing was written. Give a new or "
                    "existing folder for the preview's files."
                )
            break
    existing = [name for name in files if (out / name).exists()]
    if existing:
        raise ConfigError(
            f"'{out}' already holds {', '.join(existing)}; nothing was overwritten. "
            "Choose a new --out folder, or move those files away."
        )


def run_preview(opts: PreviewOptions) -> dict[str, Path]:
    """Write the three preview files into ``opts.out`` and return their paths."""
    if opts.num_points < 1:
        raise ConfigError(f"--num-points must be >= 1, got {opts.num_points}.")
    if opts.resolution < 8 or opts.resolution % 8:
        raise ConfigError(f"--resolution must be a multiple of 8, got {opts.resolution}.")
    out = Path(opts.out)
    check_output_dir(out)
    device = torch.device(opts.device)
    body = build_body_model(opts.body, model_path=opts.body_model_path)

    generator = torch.Generator().manual_seed(opts.seed)
    cfg = GaussianConfig(init_num_points=opts.num_points)
    model = gaussians_from_body(body, cfg, generator).to(device)

    cams = HumanCameraConfig()
    n = len(PREVIEW_AZIMUTHS)
    batch = make_batch(
        torch.zeros(n, 3),
        torch.full((n,), cams.eval_elevation),
        torch.tensor(list(PREVIEW_AZIMUTHS.values())),
        torch.full((n,), cams.eval_camera_distance),
        torch.full((n,), cams.eval_fovy),
        opts.resolution,
        opts.resolution,
        torch.zeros(n, dtype=torch.long),
    )
    with torch.no_grad():
        views = render_views(model, batch)["comp_rgb"]
        pose = draw_openpose(
            body.body_keypoints,
            body.face_keypoints,
            body.head_center,
            batch["c2w"],
            batch["intrinsics"],
            opts.resolution,
            opts.resolution,
        )
    out.mkdir(parents=True, exist_ok=True)
    return {
        "init.ply": save_ply(out / "init.ply", {k: v for k, v in model.params.items()}),
        "views.png": save_png(out / "views.png", image_row(views, gap=4)),
        "openpose.png": save_png(out / "openpose.png", image_row(pose.permute(0, 2, 3, 1), gap=4)),
    }


__all__ = ["PreviewOptions", "run_preview"]
