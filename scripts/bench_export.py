"""Time ``gaussianip export --format glb`` of a paper-size avatar, phase by phase.

A synthetic avatar of ``--gaussians`` opaque discs on the default body's surface (the
size of a trained one: the paper's avatars hold 100k-300k Gaussians), exported with the
default 50,000 faces, a 2048 px texture and the walk motion baked in. Prints one JSON
object: seconds per phase (ring renders, TSDF, clean-up, texture, rig set-up, writing),
the total, and the mesh's size. Goal (issue 21): at most 60 s on a GPU, 5 minutes on a CPU.

    PYTHONPATH=$PWD/custom python3 scripts/bench_export.py --device cuda
    PYTHONPATH=$PWD/custom python3 scripts/bench_export.py --device cpu
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from gaussianip.body import build_body_model
from gaussianip.export import MeshExportOptions, export_run
from gaussianip.gaussians import save_ply
from gaussianip.gaussians.model import knn_rms_distance, rgb_to_sh0
from gaussianip.rig.rotations import matrix_to_quat


def paper_size_avatar(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """``n`` flat, opaque Gaussians tiling the default body, coloured by position."""
    body = build_body_model("default")
    g = torch.Generator().manual_seed(seed)
    points, normals = body.sample_surface(n, generator=g)
    radius = knn_rms_distance(points, k=4) * 1.6
    helper = torch.where(normals[:, :1].abs() < 0.9, torch.tensor([1.0, 0, 0]),
                         torch.tensor([0.0, 1, 0]))  # fmt: skip
    t1 = torch.nn.functional.normalize(torch.linalg.cross(normals, helper), dim=-1)
    frame = torch.stack([t1, torch.linalg.cross(normals, t1), normals], dim=-1)
    colour = 0.5 + 0.35 * torch.tanh(points[:, [2, 0, 1]] / torch.tensor([0.5, 0.3, 0.9]))
    return {
        "means": points,
        "quats": matrix_to_quat(frame),
        "scales": torch.log(torch.stack([radius, radius, radius * 0.15], -1)),
        "opacities": torch.full((n,), 4.0),
        "sh0": rgb_to_sh0(colour)[:, None, :],
        "shN": torch.zeros(n, 0, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--gaussians", type=int, default=200_000)
    parser.add_argument("--faces", type=int, default=50_000)
    parser.add_argument("--texture-size", type=int, default=2048)
    parser.add_argument("--motion", default="load/motions/walk.npz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        save_ply(run / "save" / "gaussians.ply", paper_size_avatar(args.gaussians))
        opts = MeshExportOptions(faces=args.faces, texture_size=args.texture_size,
                                 motion=args.motion, device=args.device)  # fmt: skip
        start = time.perf_counter()
        out = export_run(run, "glb", mesh_options=opts)
        total = time.perf_counter() - start
        size = out.stat().st_size
    result = {
        "device": args.device,
        "gaussians": args.gaussians,
        "faces": args.faces,
        "texture_size": args.texture_size,
        "seconds": {k: round(v, 2) for k, v in opts.timings.items()},
        "total_seconds": round(total, 2),
        "glb_mb": round(size / 2**20, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
