"""LPIPS as the reconstruction uses it, plain against cached target features.

Times one loss + backward (the renders need gradients, the targets do not) of ``--views``
renders at ``--side`` px against N fixed targets, both ways: ``lpips_loss`` (VGG on renders
and targets at every step) and ``LpipsTargets.loss`` (the targets' VGG features computed
once). Prints one JSON line: milliseconds a step of each, their ratio, the largest
difference of the losses, and the cache's size. Any device; on CUDA with bf16 autocast and
torch.compile as the reconstruction runs it (``--compile``).

    python3 scripts/bench_lpips_targets.py --device cpu --views 4 --side 256
    python3 scripts/bench_lpips_targets.py --device cuda --views 8 --side 1024 --compile
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from gaussianip.engine.lpips_targets import LpipsTargets
from gaussianip.engine.reconstruction import ReconstructionConfig, build_lpips, lpips_loss


def _time(step, repeats: int, device: torch.device) -> float:
    """Median milliseconds of ``step()`` over ``repeats`` calls after two untimed ones."""
    times = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--views", type=int, default=8, help="renders a step (batch)")
    p.add_argument("--targets", type=int, default=32, help="refined views cached")
    p.add_argument("--side", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()

    device = torch.device(args.device)
    cfg = ReconstructionConfig(lpips_pretrained=False, lpips_compile=args.compile)
    model = build_lpips(cfg, device)
    autocast = device.type == "cuda"
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(args.targets, 3, args.side, args.side, generator=g).to(device)
    renders = torch.rand(args.views, 3, args.side, args.side, generator=g).to(device)
    views = list(range(args.views))
    cache = LpipsTargets(model, targets, autocast=autocast, compile=args.compile)

    def plain() -> torch.Tensor:
        x = renders.clone().requires_grad_(True)
        loss = lpips_loss(model, x, targets[views], autocast=autocast)
        loss.backward()
        return loss.detach()

    def cached() -> torch.Tensor:
        x = renders.clone().requires_grad_(True)
        loss = cache.loss(x, views)
        loss.backward()
        return loss.detach()

    ms_plain = _time(plain, args.repeats, device)
    ms_cached = _time(cached, args.repeats, device)
    print(json.dumps({
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "views": args.views, "side": args.side, "compile": args.compile,
        "plain_ms": round(ms_plain, 2), "cached_ms": round(ms_cached, 2),
        "cached_over_plain": round(ms_cached / ms_plain, 3),
        "loss_difference": float((plain() - cached()).abs()),
        "cache_gib": round(cache.nbytes / 2**30, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
