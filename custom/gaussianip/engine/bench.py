"""``gaussianip bench``: time the whole method on the full-size prior architectures.

The prior is ``preset: random`` (SD 1.5 UNet, OpenPose ControlNet, VAE, CLIP-L text and
CLIP-H vision towers, IP-Adapter FaceID-PlusV2 projection and LoRA processors, built from
embedded configs with random weights: no download); everything else is the real pipeline
at the paper settings of ``gaussianip.yaml``. The presets live in the repository's
``configs/bench/`` (``paper.yaml``, the default; ``fast.yaml``; ``render512.yaml``); any
other ``--config`` gets the same random-weight overrides. Each phase can run a fraction
of its steps; the full-run time is then projected from the measured ms per step and
labelled so.
Prints one JSON object. Timing is never a CI test: run it on the GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

from gaussianip.devices import apply_memory_cap, synchronize
from gaussianip.engine.config import load_run_config, parse_run_config

DEFAULT_PRESET = "configs/bench/paper.yaml"  # from the repository root
# configs/bench/random-prior.yaml holds the same values for the presets.
BENCH_OVERRIDES = [
    "system.prior.preset=random",
    "system.face_analyser=stand-in",  # the insightface pack is not on benchmark machines
    "system.reconstruction.lpips_pretrained=false",  # same VGG compute, random weights
]


def _peak(device: torch.device) -> dict[str, float] | None:
    if device.type != "cuda":
        return None
    return {"allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3)}  # fmt: skip


def _allocated(device: torch.device) -> float | None:
    return round(torch.cuda.memory_allocated() / 2**30, 3) if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _timed_steps(fn, steps: range, warmup: int, device: torch.device) -> tuple[float, int]:
    """Seconds for ``steps`` after ``warmup`` untimed ones (from the same range)."""
    items = list(steps)
    for i in items[:warmup]:
        fn(i)
    synchronize(device)
    start = time.perf_counter()
    for i in items[warmup:]:
        fn(i)
    synchronize(device)
    return time.perf_counter() - start, len(items[warmup:])


def _phase(seconds: float, steps: int, total_steps: int, device: torch.device,
           untimed: int = 0) -> dict[str, Any]:  # fmt: skip
    """A phase's figures. ``untimed``: steps that ran but were not timed (the first step,
    with compilation, and warm-up steps); a phase whose steps all ran counts as measured,
    its untimed steps at the measured rate."""
    ms = 1000 * seconds / max(steps, 1)
    whole = steps + untimed >= total_steps
    return {
        "measured_seconds": round(seconds, 3),
        "measured_steps": steps,
        "untimed_steps": untimed,
        "ms_per_step": round(ms, 2),
        "full_steps": total_steps,
        "full_seconds": round(ms * total_steps / 1000, 2),
        "full_seconds_is": "measured" if whole else "projected",
        "peak_memory": _peak(device),
    }


def scaling_rows(pipeline, device: torch.device, counts: list[int], resolutions: list[int],
                 steps: int = 5) -> list[dict[str, Any]]:  # fmt: skip
    """ms per stage-1 step (full prior) at each Gaussian count (512 px) and resolution
    (100k Gaussians), at a phase-3 schedule position."""
    from dataclasses import replace

    from gaussianip.data import HumanCameraSampler
    from gaussianip.engine.stage1 import Stage1Trainer
    from gaussianip.gaussians.init import gaussians_from_body

    s = pipeline.settings
    rows = []
    cases = [(n, 512) for n in counts] + [(100_000, r) for r in resolutions if r != 512]
    for n, res in cases:
        gaussian_cfg = replace(s.gaussians, init_num_points=n)
        generator = torch.Generator().manual_seed(0)
        model = gaussians_from_body(pipeline.body.to("cpu"), gaussian_cfg, generator).to(device)
        sampler = HumanCameraSampler(replace(s.data, height=res, width=res))
        pipeline.guidance.cfg.resolution = res
        no_densify = replace(s.densify, refine_stop_iter=0, prune_only_stop_iter=0)
        trainer = Stage1Trainer(model, sampler, pipeline.guidance, s.stage1, no_densify)
        _reset_peak(device)
        seconds, timed = _timed_steps(trainer.step, range(2000, 2002 + steps), 2, device)
        ms = round(1000 * seconds / timed, 2)
        rows.append({"gaussians": n, "resolution": res, "ms_per_step": ms,
                     "peak_memory": _peak(device)})  # fmt: skip
    pipeline.guidance.cfg.resolution = s.guidance.resolution
    return rows


RANGES = ("stage1/", "guidance/", "reconstruction/")


def profile_steps(step_fn, steps: list[int], device: torch.device) -> dict[str, Any]:
    """Where a step's time goes: per named range (``stage1/...``, ``guidance/...``,
    ``reconstruction/...``) the device and host milliseconds per step, and the operators
    that take the most device time, from ``torch.profiler`` over ``step_fn(i)`` for
    ``steps``. Backward kernels run on autograd's thread, outside the named ranges: they
    show in the operator list."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    synchronize(device)
    with profile(activities=activities) as prof:
        for i in steps:
            step_fn(i)
        synchronize(device)
    n = max(len(steps), 1)

    def device_us(event, self_only: bool = False) -> float:
        name = "self_device_time_total" if self_only else "device_time_total"
        legacy = "self_cuda_time_total" if self_only else "cuda_time_total"
        return float(getattr(event, name, getattr(event, legacy, 0.0)) or 0.0)

    events = prof.key_averages()
    ranges = {
        e.key: {"device_ms": round(device_us(e) / 1000 / n, 2),
                "host_ms": round(e.cpu_time_total / 1000 / n, 2)}
        for e in events if e.key.startswith(RANGES)
    }  # fmt: skip
    ops = [e for e in events if not e.key.startswith(RANGES)]
    kernels = sorted(ops, key=lambda e: device_us(e, True), reverse=True)[:15]
    return {
        "steps": n,
        "ranges_ms_per_step": dict(sorted(ranges.items())),
        "top_ops_device_ms_per_step": {
            e.key[:80]: round(device_us(e, True) / 1000 / n, 2) for e in kernels
        },  # fmt: skip
    }


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from gaussianip.engine.pipeline import GaussianIPPipeline

    device = torch.device(args.device)
    config = load_run_config(args.config, BENCH_OVERRIDES + list(args.overrides))
    settings = parse_run_config(config)
    cap = apply_memory_cap(args.memory_cap_gib, device)
    caches = compile_caches()
    synchronize(device)
    t0 = time.perf_counter()
    pipeline = GaussianIPPipeline(settings, device)
    synchronize(device)
    build_seconds = time.perf_counter() - t0

    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
        "versions": _versions(),
        "settings": {
            "config": str(args.config),
            "overrides": BENCH_OVERRIDES + list(args.overrides),
            "stage1_steps": pipeline.stage1_steps,
            "batch_size": settings.data.batch_size,
            "render_resolution": settings.data.height,  # stage-1 renders, before the resize
            "resolution": settings.guidance.resolution,
            "init_num_points": settings.gaussians.init_num_points,
            "ring_size": settings.data.ring_size,
            "ring_resolution": settings.data.ring_height,
            "vcr_steps": settings.vcr.refine_steps,
            "reconstruction_steps": settings.reconstruction.steps,
            "reconstruction_batch": settings.reconstruction.batch_size,
            "fractions": {
                "stage1": args.stage1_fraction,
                "reconstruction": args.reconstruction_fraction,
            },
        },  # fmt: skip
        "setup": {
            "model_build_seconds": round(build_seconds, 2),
            # what the networks and the initial Gaussians hold before any step
            "allocated_after_build_gib": _allocated(device),
            "caches": caches,
        },
        "memory_cap_gib": cap,
        "memory_plan": pipeline.memory_plan.as_dict(),
        "phases": {},
    }

    # Stage 1: the first warm-up steps include gsplat's compilation (set-up, not run time).
    n1 = max(args.warmup + 1, round(pipeline.stage1_steps * args.stage1_fraction))
    stride = max(1, pipeline.stage1_steps // n1)  # spread over the schedule's phases
    steps = range(0, pipeline.stage1_steps, stride)[:n1]
    _reset_peak(device)
    synchronize(device)
    t0 = time.perf_counter()
    pipeline.train_step(steps[0])
    synchronize(device)
    result["setup"]["first_step_seconds"] = round(time.perf_counter() - t0, 2)
    warmup = max(args.warmup - 1, 0)  # after the first step
    seconds, timed = _timed_steps(pipeline.stage1.step, steps[1:], warmup, device)
    result["phases"]["stage1"] = _phase(seconds, timed, pipeline.stage1_steps, device,
                                        untimed=len(steps) - timed)  # fmt: skip
    if args.profile:
        result["stage1_profile"] = profile_steps(pipeline.stage1.step,
                                                 list(steps[-args.profile :]), device)  # fmt: skip
    if args.scaling:
        result["scaling"] = scaling_rows(pipeline, device, [50_000, 100_000, 200_000],
                                         [512, 1024])  # fmt: skip
    pipeline.finish_stage1()
    if args.stage1_only:
        return _totals(result)

    _reset_peak(device)
    synchronize(device)
    t0 = time.perf_counter()
    pipeline.refine()
    synchronize(device)
    vcr_seconds = time.perf_counter() - t0
    result["phases"]["vcr"] = _phase(vcr_seconds, settings.vcr.refine_steps,
                                     settings.vcr.refine_steps, device)  # fmt: skip
    # where the refinement's time went (ring render, encode, denoise, decode, PNGs)
    result["phases"]["vcr"]["parts"] = pipeline.metrics["phases"]["vcr"].get("parts", {})

    total = settings.reconstruction.steps
    n3 = max(args.warmup + 1, round(total * args.reconstruction_fraction))
    _reset_peak(device)
    # The first step compiles LPIPS (reconstruction.lpips_compile): set-up, as in stage 1.
    t0 = time.perf_counter()
    pipeline.reconstructor.step(0)
    synchronize(device)
    result["setup"]["reconstruction_first_step_seconds"] = round(time.perf_counter() - t0, 2)
    seconds, timed = _timed_steps(pipeline.reconstructor.step, range(1, n3), warmup, device)
    result["phases"]["reconstruction"] = _phase(seconds, timed, total, device, untimed=n3 - timed)
    if args.profile:
        result["reconstruction_profile"] = profile_steps(
            pipeline.reconstructor.step, list(range(n3, n3 + args.profile)), device
        )

    return _totals(result)


def _totals(result: dict[str, Any]) -> dict[str, Any]:
    """The whole method's seconds (the phases that ran) and the peak memory."""
    phases = result["phases"]
    result["whole_method_seconds"] = round(sum(p["full_seconds"] for p in phases.values()), 1)
    result["whole_method_is"] = (
        "measured" if all(p["full_seconds_is"] == "measured" for p in phases.values())
        else "projected"
    )  # fmt: skip
    peaks = [p["peak_memory"] for p in phases.values() if p["peak_memory"]]
    if peaks:
        result["peak_memory"] = {k: max(p[k] for p in peaks) for k in peaks[0]}
    return result


def compile_caches() -> dict[str, Any]:
    """Where compiled code is cached, and whether each cache had entries at the start
    (cold: empty, so the set-up includes every compilation)."""
    import os

    from gaussianip.prior.compile import inductor_cache_dir

    found = {}
    folders = {"inductor": inductor_cache_dir(),
               "torch_extensions (gsplat)": os.environ.get("TORCH_EXTENSIONS_DIR",
                   os.path.expanduser("~/.cache/torch_extensions"))}  # fmt: skip
    for name, folder in folders.items():
        warm = os.path.isdir(folder) and any(os.scandir(folder))
        found[name] = {"path": folder, "warm_at_start": warm}
    return found


def _versions() -> dict[str, str]:
    import diffusers
    import transformers

    versions = {"torch": torch.__version__, "cuda": str(torch.version.cuda),
                "diffusers": diffusers.__version__,
                "transformers": transformers.__version__}  # fmt: skip
    try:
        import gsplat

        versions["gsplat"] = gsplat.__version__
    except ImportError:
        pass
    return versions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=DEFAULT_PRESET,
                   help=f"config to time (default {DEFAULT_PRESET})")  # fmt: skip
    p.add_argument("--device", default="cuda",
                   help="device to time on (default cuda; cuda:N; cpu runs, at minutes "
                        "a step)")  # fmt: skip
    p.add_argument("--stage1-fraction", type=float, default=0.05,
                   help="fraction of stage 1's steps to run (1: the whole phase)")  # fmt: skip
    p.add_argument("--reconstruction-fraction", type=float, default=0.1,
                   help="fraction of the reconstruction's steps (1: the whole phase)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--scaling", action="store_true",
                   help="add ms/step rows at 50k/100k/200k Gaussians and 512/1024 px")  # fmt: skip
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after the timed steps, profile N more steps of stage 1 and of the "
                        "reconstruction: time per named range, top kernels")  # fmt: skip
    p.add_argument("--memory-cap-gib", type=float, default=None, metavar="GIB",
                   help="hard cap on GPU memory (as on a card of that size): an allocation "
                        "beyond it fails")  # fmt: skip
    p.add_argument("--stage1-only", action="store_true",
                   help="time stage 1 only (no refinement, no reconstruction)")  # fmt: skip
    p.add_argument("--out", default=None, help="also write the JSON to this file")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (e.g. toggles)")


def main(args: argparse.Namespace) -> None:
    result = run_bench(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")
