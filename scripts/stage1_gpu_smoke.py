"""Stage 1 on the GPU with the full-size prior architectures at random weights.

No download: the SD 1.5 UNet, ControlNet, VAE, CLIP-L text and CLIP-H vision towers and
IP-Adapter-FaceID-PlusV2 are built from embedded configs (``PriorConfig(preset="random")``).
Runs the real stage-1 step (render 4 views at 512 px, VAE encode with gradient, one
UNet+ControlNet call at batch 12, HDS gradient, regularisers, densification, Adam) and
prints ms per step and peak GPU memory as JSON.

    PYTHONPATH=custom python3 scripts/stage1_gpu_smoke.py --steps 20
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from gaussianip.body import build_body_model
from gaussianip.data import HumanCameraConfig, HumanCameraSampler
from gaussianip.engine import Stage1Config, Stage1Trainer
from gaussianip.faces import StandInFaceAnalyser, extract_identity
from gaussianip.gaussians import GaussianConfig
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.guidance.hds_guidance import HDSGuidance, HDSGuidanceConfig, body_pose_images
from gaussianip.prior.human_prior import HumanPrior, PriorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--start-step", type=int, default=1501, help="schedule position")
    parser.add_argument("--gaussians", type=int, default=100_000)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    device = torch.device("cuda")

    t0 = time.perf_counter()
    prior = HumanPrior.build(PriorConfig(preset="random"), device)
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    analyser = StandInFaceAnalyser()  # the real buffalo_l pack is not on this machine
    identity = extract_identity("load/portraits/eileen_collins_nasa.png", analyser)
    repel = extract_identity("load/portraits/grace_hopper_us_navy.jpg", analyser)
    body = build_body_model().to(device)
    guidance = HDSGuidance(prior, HDSGuidanceConfig(resolution=args.resolution), identity, repel,
                           pose_images=body_pose_images(body))  # fmt: skip
    model = gaussians_from_body(body.to("cpu"), GaussianConfig(init_num_points=args.gaussians),
                                torch.Generator().manual_seed(0)).to(device)  # fmt: skip
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=args.batch, height=args.resolution,
                                                   width=args.resolution))  # fmt: skip
    trainer = Stage1Trainer(model, sampler, guidance, Stage1Config())

    step = args.start_step
    for _ in range(args.warmup):  # gsplat compilation, cuDNN autotuning, allocator warm-up
        trainer.step(step)
        step += 1
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        logs = trainer.step(step)
        step += 1
    torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - t0) / args.steps
    print(json.dumps({
        "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "prior": "full-size SD 1.5 architectures, random weights, fp16",
        "views": args.batch, "resolution": args.resolution, "gaussians_start": args.gaussians,
        "gaussians_end": model.num_gaussians, "timed_steps": args.steps,
        "ms_per_step": round(ms, 1),
        "projected_2400_steps_min": round(ms * 2400 / 60000, 1),
        "peak_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "prior_build_s": round(build_s, 1), "last_logs": logs,
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
