"""How much GPU memory a run may use, and the speed-for-memory switches that follow from it.

Four switches trade speed for memory without changing a result: the views per stage-1
pass through the VAE and UNet (``system.guidance.micro_batch``), the views per refinement
UNet call (``system.vcr.chunk_size``), the per-view recomputation of LPIPS in the
reconstruction (``system.reconstruction.lpips_checkpoint``) and the refined views' LPIPS
features kept on the GPU (``system.reconstruction.lpips_target_cache``). Left ``null`` in a
config, they follow the memory plan, chosen once when a run starts:

- the budget is the GPU's free memory at that moment, or the ``--memory-cap-gib`` cap
  where it is lower (``devices.apply_memory_cap``);
- a budget of at least ``large_min_gib`` (``system.memory.large_min_gib``) gives the
  *large* plan: every view in one pass, every refinement group in one call, LPIPS in one
  batch against cached target features; any smaller budget (and the CPU) gives the
  *small* plan, which the whole method runs in under an 8 GiB cap (BENCHMARKS.md).

``system.memory.mode`` (``auto``, ``small``, ``large``) overrides the rule; a value set
for a switch itself always wins. ``metrics.json`` records the plan (``memory_plan``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from gaussianip.errors import ConfigError

MODES = ("auto", "small", "large")

# A whole paper-settings run in the large plan peaked at 24.1 GiB reserved on an H200
# (BENCHMARKS.md, round 6: the refinement's 48-row UNet calls); the reconstruction's 21.1
# GiB plus 8 GiB of cached LPIPS features (round 7) stays under the 32 GiB threshold, so a
# 24 GB card takes the small plan (7.4 GiB) and a 40 GB card the large one.
LARGE_MODE_MIN_GIB = 32.0


@dataclass
class MemoryConfig:
    """``system.memory``."""

    mode: str = "auto"  # auto: by the budget; small or large: that plan whatever the budget
    large_min_gib: float = LARGE_MODE_MIN_GIB  # the smallest budget that gets the large plan

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(
                f"system.memory.mode='{self.mode}' is not a memory mode; use one of "
                f"{', '.join(MODES)} (auto: chosen from the GPU's free memory)."
            )
        if not (math.isfinite(self.large_min_gib) and self.large_min_gib > 0):
            raise ConfigError(
                f"system.memory.large_min_gib must be a number of GiB > 0, got "
                f"{self.large_min_gib}; the default is {LARGE_MODE_MIN_GIB:g}."
            )


@dataclass(frozen=True)
class MemoryPlan:
    """The switches of one run and why they were chosen."""

    mode: str  # "small" or "large"
    budget_gib: float | None  # None: not a CUDA device
    reason: str
    micro_batch: int  # views per stage-1 pass (0: all at once)
    vcr_chunk_size: int  # views per refinement UNet call
    lpips_checkpoint: bool  # LPIPS one view at a time, recomputed in the backward
    lpips_target_cache: bool  # the refined views' LPIPS features kept on the GPU

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# The switches of each plan. The small plan's values are those of the 8 GiB runs.
PLANS: dict[str, dict[str, Any]] = {
    "small": {
        "micro_batch": 2,
        "vcr_chunk_size": 4,
        "lpips_checkpoint": True,
        "lpips_target_cache": False,
    },
    "large": {
        "micro_batch": 0,
        "vcr_chunk_size": 32,
        "lpips_checkpoint": False,
        "lpips_target_cache": True,
    },
}

_caps_gib: dict[int, float] = {}  # device index -> the cap set by apply_memory_cap


def record_cap(index: int, gib: float) -> None:
    """Remember a process-wide memory cap (``devices.apply_memory_cap`` calls this)."""
    _caps_gib[index] = gib


def memory_budget_gib(device: torch.device) -> float | None:
    """GiB this process may still take on ``device``: its free memory, or the cap where
    that is lower; None for a device that is not a CUDA GPU."""
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    free, _total = torch.cuda.mem_get_info(index)
    budget = free / 2**30
    if index in _caps_gib:
        budget = min(budget, _caps_gib[index] - torch.cuda.memory_reserved(index) / 2**30)
    return round(budget, 2)


def plan_memory(budget_gib: float | None, cfg: MemoryConfig | None = None) -> MemoryPlan:
    """The plan for a budget of ``budget_gib`` GiB (None: not a GPU) under ``cfg``."""
    cfg = cfg or MemoryConfig()
    if cfg.mode != "auto":
        mode, reason = cfg.mode, f"system.memory.mode={cfg.mode}"
    elif budget_gib is None:
        mode, reason = "small", "not a CUDA device"
    elif budget_gib >= cfg.large_min_gib:
        mode, reason = "large", f"{budget_gib:g} GiB free >= {cfg.large_min_gib:g} GiB"
    else:
        mode, reason = "small", f"{budget_gib:g} GiB free < {cfg.large_min_gib:g} GiB"
    return MemoryPlan(mode=mode, budget_gib=budget_gib, reason=reason, **PLANS[mode])


def follow_plan(plan: MemoryPlan, guidance: Any, vcr: Any, reconstruction: Any) -> None:
    """Fill the switches that a run's config left None from ``plan`` (values set in the
    config stay): ``guidance.micro_batch``, ``vcr.chunk_size``,
    ``reconstruction.lpips_checkpoint``, ``reconstruction.lpips_target_cache``."""
    for section, name, value in (
        (guidance, "micro_batch", plan.micro_batch),
        (vcr, "chunk_size", plan.vcr_chunk_size),
        (reconstruction, "lpips_checkpoint", plan.lpips_checkpoint),
        (reconstruction, "lpips_target_cache", plan.lpips_target_cache),
    ):
        if getattr(section, name) is None:
            setattr(section, name, value)


__all__ = [
    "LARGE_MODE_MIN_GIB",
    "MemoryConfig",
    "MemoryPlan",
    "PLANS",
    "follow_plan",
    "memory_budget_gib",
    "plan_memory",
    "record_cap",
]
