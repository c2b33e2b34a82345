"""Faults during a run: non-finite steps and GPU out-of-memory, as clear outcomes."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from gaussianip.errors import GaussianIPError


class TrainingDiverged(GaussianIPError):
    """The loss or gradients stayed NaN/Inf for too many steps in a row."""


class NonFiniteGuard:
    """Skips steps whose loss or gradients are NaN or Inf (the optimiser step would spread
    them into every parameter), counts them, and stops a run that keeps producing them.

    ``ok(loss, params)`` costs one device-to-host sync per step.
    """

    def __init__(self, phase: str, max_consecutive: int = 20) -> None:
        self.phase, self.max_consecutive = phase, max_consecutive
        self.skipped = 0
        self.consecutive = 0

    def ok(self, step: int, loss: Tensor, params: Iterable[Tensor]) -> bool:
        checks = [torch.isfinite(loss).all()]
        for p in params:
            checks.append(torch.isfinite(p).all())
            if p.grad is not None:
                checks.append(torch.isfinite(p.grad).all())
        if bool(torch.stack(checks).all()):
            self.consecutive = 0
            return True
        self.skipped += 1
        self.consecutive += 1
        if self.consecutive >= self.max_consecutive:
            raise TrainingDiverged(
                f"{self.phase}: the loss or its gradients were NaN/Inf for "
                f"{self.consecutive} steps in a row (up to step {step}; {self.skipped} skipped "
                "in all). Usual causes: a learning rate or guidance scale far too high, a "
                "broken prior checkpoint, or fp16 overflow (try system.prior.half_precision="
                "false). Nothing was saved from the diverged steps."
            )
        return False


def out_of_memory_message(settings_hint: str) -> str:
    """What to tell a user whose GPU ran out of memory."""
    return (
        "The GPU ran out of memory. Settings that reduce memory: "
        + settings_hint
        + ". Close other programs on the GPU (nvidia-smi) and restart; a run restarted with "
        "`--resume` continues from its last checkpoint."
    )


OOM_HINT = (
    "with the same results, the small memory plan (`--memory-cap-gib 8`, which `--resume` "
    "takes too, or system.memory.mode=small), and below it system.guidance.micro_batch=1 "
    "(views per pass through the VAE and UNet, 2 in the small plan) and "
    "system.vcr.chunk_size=2 (views per refinement call, 4); "
    "changing the method, data.batch_size (stage 1, default 4), system.guidance.resolution "
    "(512), system.geometry.gaussians.init_num_points (100000), "
    "system.reconstruction.batch_size (8), system.reconstruction.lpips_resolution (e.g. 512: "
    "LPIPS on downsized views)"
)
