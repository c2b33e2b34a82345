"""Sizes that imply hours of work or gigabytes, refused before any work with an estimate.

A typo such as ``system.stage1.steps=2400000`` or ``data.n_test_views=100000`` is a valid
number; without a check it starts a run that would take months. Each size of a run is
compared with a limit far above every shipped and paper setting; one above its limit
stops the run while its config is checked, with the time it would take at the measured
speed (one H200, paper settings: ``BENCHMARKS.md``) and the way to go on anyway:
``system.allow_long_run=true``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gaussianip.errors import ConfigError

ALLOW_KEY = "system.allow_long_run"


@dataclass(frozen=True)
class Size:
    key: str  # the config key, as a user writes it
    value: int
    limit: int
    seconds_each: float  # measured cost of one unit (step, view, frame) on an H200
    unit: str  # "step", "view", "frame"


def _duration(seconds: float) -> str:
    for name, length in (("years", 365 * 86400), ("days", 86400), ("hours", 3600),
                         ("minutes", 60)):  # fmt: skip
        if seconds >= 2 * length:
            return f"{seconds / length:,.0f} {name}"
    return f"{seconds:.0f} s"


def check_sizes(sizes: list[Size], allowed: bool = False) -> None:
    """``ConfigError`` for the first size above its limit, unless ``allowed``."""
    if allowed:
        return
    for size in sizes:
        if size.value > size.limit:
            cost = size.value * size.seconds_each
            raise ConfigError(
                f"{size.key}={size.value} ({size.value:,} {size.unit}s) would take about "
                f"{_duration(cost)} on an H200 (about {size.seconds_each:g} s a {size.unit} at "
                f"paper settings, BENCHMARKS.md; far longer on a CPU). The limit is "
                f"{size.limit:,}, far above the method's settings. If you mean it, add "
                f"{ALLOW_KEY}=true."
            )


def run_sizes(settings: Any) -> list[Size]:
    """The sizes of a run (``engine.config.RunSettings``) that cost time, with their limits
    and per-unit costs (``BENCHMARKS.md`` round 5: a stage-1 step 111 ms, a
    reconstruction step 100 ms, the refinement 34 s for 32 views; a turntable frame at most
    0.2 s, rendering and encoding, from the 24 s between the method's end and the
    summary line)."""
    data, outputs = settings.data, settings.outputs
    return [
        Size("system.stage1.steps", settings.stage1.steps, 30_000, 0.111, "step"),
        Size("system.reconstruction.steps", settings.reconstruction.steps, 30_000, 0.1, "step"),
        Size("data.ring_size", data.ring_size, 256, 1.06, "view"),
        Size("data.n_val_views", data.n_val_views, 3_600, 0.2, "view"),
        Size("data.n_test_views", data.n_test_views, 3_600, 0.2, "view"),
        Size("system.outputs.turntable_frames", outputs.turntable_frames, 3_600, 0.2, "frame"),
    ]


# Bytes a Gaussian takes: 17 float32 in a PLY (SH degree 0; more with higher bands), and
# in a checkpoint its 14 trained values with Adam's two moments.
PLY_BYTES, CHECKPOINT_BYTES = 68, 14 * 4 * 3


def run_disk_bytes(settings: Any) -> int:
    """The least disk a run needs (``engine.config.RunSettings``): two PLYs and two
    checkpoints (``last.pt``, ``prev.pt``) of its initial Gaussians, and its full-size
    refined views (8-bit RGB, PNG taken as uncompressed: the worst case). Densification
    adds Gaussians, so a real run needs more; this is a floor, checked before any work."""
    gaussians = settings.gaussians.init_num_points
    ring = settings.data.ring_size * settings.data.ring_height * settings.data.ring_width * 3
    return gaussians * (2 * PLY_BYTES + 2 * CHECKPOINT_BYTES) + ring


__all__ = ["ALLOW_KEY", "Size", "check_sizes", "run_disk_bytes", "run_sizes"]
