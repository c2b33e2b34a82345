"""``gaussianip warmup``: compile the method's kernels once, before the first run.

``torch.compile`` spends minutes on a fresh machine (the VAE encoder with its backward,
the UNet and ControlNet where a config compiles them, LPIPS), then keeps the kernels in
inductor's cache (``COMPILE_CACHE``). The cache is keyed by the traced graphs, shapes and
dtypes, not by weights, so the same architectures with random weights (the benchmark's
``preset: random``, no download) fill it for the published weights too. The warm-up
builds a config's pipeline that way and runs one stage-1 step and one reconstruction
step (on stage-1 renders: the refinement compiles nothing); nothing is written but the
cache. ``install.sh`` runs it where a GPU is present, as it builds gsplat's kernels.

A run whose shapes differ from the warmed config's (another resolution, ``micro_batch``,
LPIPS size, ``compile_networks``) compiles its own kernels at its first step, once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from gaussianip.devices import synchronize
from gaussianip.engine.bench import BENCH_OVERRIDES
from gaussianip.engine.config import RunSettings, load_run_config, parse_run_config
from gaussianip.paths import CONFIG_DIR

# The configs users start from: a fresh machine's first run of either finds its kernels.
SHIPPED_CONFIGS = (CONFIG_DIR / "gaussianip.yaml", CONFIG_DIR / "gaussianip-fast.yaml")


def warm_settings(config: str | Path, overrides: Sequence[str] = ()) -> RunSettings:
    """``config`` with its networks' weights random (the benchmark's overrides), checked."""
    return parse_run_config(load_run_config(config, BENCH_OVERRIDES + list(overrides)))


def warm_compile_cache(
    config: str | Path | RunSettings,
    device: str | torch.device = "cuda",
    overrides: Sequence[str] = (),
) -> dict[str, float]:
    """Run the first stage-1 step and the first reconstruction step of ``config`` (its
    networks with random weights) on ``device``, so that their compiled kernels land in
    inductor's cache. Returns the seconds of the build and of each first step."""
    from gaussianip.engine.pipeline import GaussianIPPipeline
    from gaussianip.engine.reconstruction import Reconstructor

    device = torch.device(device)
    settings = config if isinstance(config, RunSettings) else warm_settings(config, overrides)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    pipeline = GaussianIPPipeline(settings, device)  # no save_dir: nothing is written
    seconds["build"] = time.perf_counter() - t0
    if pipeline.stage1 is not None:
        t0 = time.perf_counter()
        pipeline.stage1.step(0)
        synchronize(device)
        seconds["stage1_first_step"] = time.perf_counter() - t0
    pipeline.finish_stage1()
    # The reconstruction fits the ring's views; stage-1 renders stand in for refined ones.
    cameras = pipeline.sampler.refinement_ring()
    targets = pipeline.render_each(cameras)
    pipeline.prior.offload()
    t0 = time.perf_counter()
    Reconstructor(pipeline.model, cameras, targets, settings.reconstruction,
                  pipeline.body.to(device)).step(0)  # fmt: skip
    synchronize(device)
    seconds["reconstruction_first_step"] = time.perf_counter() - t0
    return seconds


def warm_up(configs: Iterable[str | Path], device: str, overrides: Sequence[str] = ()) -> None:
    """``gaussianip warmup``: each config in turn, one line each."""
    from gaussianip.prior.compile import inductor_cache_dir

    # Every config checked before any model is built.
    checked = [(Path(config).name, warm_settings(config, overrides)) for config in configs]
    for name, settings in checked:
        t0 = time.perf_counter()
        seconds = warm_compile_cache(settings, device)
        parts = ", ".join(f"{part.replace('_', ' ')} {s:.0f} s" for part, s in seconds.items())
        print(f"gaussianip warmup: {name} ready in {time.perf_counter() - t0:.0f} s "
              f"({parts})", flush=True)  # fmt: skip
    print(f"gaussianip warmup: compiled kernels are cached in {inductor_cache_dir()}")


__all__ = ["SHIPPED_CONFIGS", "warm_compile_cache", "warm_settings", "warm_up"]
