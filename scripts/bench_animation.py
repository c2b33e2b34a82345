"""Benchmark: posing + rendering an animated avatar on the GPU (one JSON line).

100k Gaussians (anisotropic, on the default body's surface) bound to the default body,
driven by the shipped walk, rendered at 1024 x 1024 with gsplat; per frame:
``animate_params`` (linear blend skinning of centres and orientations) then
``rasterize``. The goal is >= 60 frames per second on an H100.

    PYTHONPATH=$PWD/custom python3 scripts/bench_animation.py [--gaussians 100000]
        [--resolution 1024] [--frames 300]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch


def main() -> None:
    from gaussianip.animate import frame_cameras, render_params
    from gaussianip.body import build_body_model
    from gaussianip.motion import animate_params, list_shipped_motions, load_motion
    from gaussianip.rig import build_rig

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=100_000)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=300, help="timed frames")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)

    body = build_body_model("default")
    g = torch.Generator().manual_seed(0)
    points, normals = body.sample_surface(args.gaussians, g)
    n = args.gaussians
    params = {
        "means": points + 0.01 * torch.rand(n, 1, generator=g) * normals,
        "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        "scales": torch.log(torch.rand(n, 3, generator=g) * 0.008 + 0.002),
        "opacities": torch.full((n,), 2.0),
        "sh0": torch.rand(n, 1, 3, generator=g) - 0.5,
        "shN": torch.zeros(n, 0, 3),
    }
    t0 = time.perf_counter()
    rig = build_rig(params["means"], body)
    bind_seconds = time.perf_counter() - t0
    motion = load_motion(next(p for p in list_shipped_motions() if p.stem == "walk"))
    frames = [i % motion.num_frames for i in range(args.frames)]
    c2w, fovy = frame_cameras(params, rig, motion, list(range(motion.num_frames)), "front")
    params = {k: v.to(device) for k, v in params.items()}
    rig = rig.to(device)
    c2w, fovy = c2w.to(device), fovy.to(device)

    def frame(i: int) -> torch.Tensor:
        posed = animate_params(params, rig, motion, i)
        return render_params(posed, c2w[i], fovy[i], args.resolution)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        for i in range(10):  # warm-up: kernels, caches, the motion's transforms on the GPU
            frame(i)
        sync()
        start = time.perf_counter()
        for i in frames:
            image = frame(i)
        sync()
        total = time.perf_counter() - start
        # Posing alone, to split the frame time.
        start = time.perf_counter()
        for i in frames:
            animate_params(params, rig, motion, i)
        sync()
        pose = time.perf_counter() - start
    print(json.dumps({
        "benchmark": "animation", "device": torch.cuda.get_device_name(device)
        if device.type == "cuda" else "cpu", "gaussians": n, "joints": rig.skeleton.num_joints,
        "resolution": args.resolution, "frames": len(frames),
        "fps": round(len(frames) / total, 1), "ms_per_frame": round(1000 * total / len(frames), 3),
        "pose_ms_per_frame": round(1000 * pose / len(frames), 3),
        "bind_seconds": round(bind_seconds, 2),
        "image_mean": round(float(image.mean()), 4), "goal_fps": 60,
        "meets_goal": bool(len(frames) / total >= 60 and math.isfinite(total)),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
