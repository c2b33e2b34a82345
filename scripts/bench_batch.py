"""One worker against separate runs: N avatars of the fast preset on one GPU (random-weight
prior, no download), through `gaussianip batch --workers 1` (the prior loaded once) and
through N separate `gaussianip run`s; seconds per avatar and what the batch saves.

    PYTHONPATH=$PWD/custom python3 scripts/bench_batch.py --out /tmp/bench_batch \
        [--rows 3] [--stage1-steps 100] [--reconstruction-steps 50] [--ring-size 16] \
        [--turntable-frames 30] [--only batch|separate]

Run it warm (after `python3 -m gaussianip warmup --config configs/bench/fast.yaml`, or a
first call of this script): a cold inductor cache makes whichever part runs first compile
for minutes. Each run's `setup_seconds` is reported, so a cold start shows. The step
counts shorten every phase alike (stage 1, the refinement ring, the reconstruction, the
turntable) so that the whole comparison fits a short call; the saving per avatar is the
set-up the batch skips (process start, imports, prior build), which does not depend on
them. Writes `<out>/bench_batch.json` and prints it.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

CONFIG = "configs/bench/fast.yaml"
PROMPTS = [
    "a photo of a woman in an orange space suit",
    "a photo of a man in a dark blue suit",
    "a photo of a woman in a red dress",
    "a photo of a man in a green hoodie",
    "a photo of a woman in a white lab coat",
]


def overrides(args: argparse.Namespace) -> list[str]:
    s1 = args.stage1_steps
    return [
        f"system.stage1.steps={s1}",
        f"system.guidance.timestep_schedule_cfg.total_steps={s1}",
        # the phase starts and densification scaled to the shortened stage 1
        "system.guidance.timestep_schedule_cfg.phase_start_steps="
        f"[0,{s1 * 350 // 1200},{s1 * 450 // 1200},{s1 * 700 // 1200}]",
        f"system.geometry.densify.refine_start_iter={max(1, s1 * 100 // 1200)}",
        f"system.geometry.densify.refine_stop_iter={s1 * 850 // 1200}",
        f"system.geometry.densify.refine_every={max(1, s1 * 250 // 1200)}",
        f"system.geometry.densify.prune_only_start_iter={s1 * 850 // 1200}",
        f"system.geometry.densify.prune_only_stop_iter={s1 * 950 // 1200}",
        f"system.geometry.densify.prune_only_every={max(1, s1 * 150 // 1200)}",
        f"data.close_up_start_step={s1 // 2}",
        f"system.reconstruction.steps={args.reconstruction_steps}",
        f"data.ring_size={args.ring_size}",
        f"system.outputs.turntable_frames={args.turntable_frames}",
    ]


def engine_worker(rows_file: Path, out: Path, device: str) -> None:
    """What one batch worker does, without Ray (for machines without it): one process, the
    prior loaded once, every row through ``run_avatar`` with it."""
    import time as clock

    from omegaconf import OmegaConf

    from gaussianip.engine.config import parse_run_config
    from gaussianip.engine.run import run_avatar
    from gaussianip.prior.human_prior import HumanPrior

    rows = json.loads(rows_file.read_text())
    prior, records = None, {}
    for name, config in rows.items():
        t0 = clock.perf_counter()
        config = OmegaConf.create(config)
        if prior is None:
            prior = HumanPrior.build(parse_run_config(config).prior, device)
            records["prior_seconds"] = clock.perf_counter() - t0
        run_avatar(config, device, run_dir=out / "runs" / name, prior=prior,
                   progress=lambda *_: None)  # fmt: skip
        records[name] = clock.perf_counter() - t0
    (out / "engine_worker.json").write_text(json.dumps(records, indent=2))


def timed(command: list[str], log: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--config", default=CONFIG, help="(a CPU smoke test: gaussianip-tiny.yaml)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--stage1-steps", type=int, default=100)
    parser.add_argument("--reconstruction-steps", type=int, default=50)
    parser.add_argument("--ring-size", type=int, default=16)
    parser.add_argument("--turntable-frames", type=int, default=30)
    parser.add_argument("--only", choices=("batch", "separate"), default=None)
    parser.add_argument(
        "--mode",
        choices=("ray", "engine"),
        default=None,
        help="ray: `gaussianip batch --workers 1`; engine: what its worker does, in one "
        "process without Ray (default: ray where it is installed)",
    )
    parser.add_argument("--engine-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_worker:
        engine_worker(*args.engine_worker, args.device)
        return 0
    if args.mode is None:
        import importlib.util

        args.mode = "ray" if importlib.util.find_spec("ray") else "engine"
    if args.out.exists():  # a folder of an earlier call of this script
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.rows)]
    common = overrides(args)
    report: dict = {"rows": args.rows, "config": args.config, "overrides": common}
    python = [sys.executable, "-m", "gaussianip"]

    if args.only != "separate":
        manifest = args.out / "rows.csv"
        with manifest.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["name", "prompt", "config"])
            for i, prompt in enumerate(prompts):
                writer.writerow([f"r{i + 1}", prompt, args.config])
        batch_dir = args.out / "batch"
        if args.mode == "ray":
            seconds, rc = timed([*python, "batch", str(manifest), "--out", str(batch_dir),
                                 "--workers", "1", "--device", args.device, *common],
                                args.out / "batch.log")  # fmt: skip
            rows = [json.loads(line) for line in (batch_dir / "batch.jsonl").open()]
            final = {r["name"]: r for r in rows}
            detail = {name: {k: r.get(k) for k in ("status", "prior", "prior_seconds", "seconds",
                                                    "run_seconds")}
                      for name, r in final.items()}  # fmt: skip
        else:
            from gaussianip.engine.run import load_run_config

            batch_dir.mkdir()
            configs = {f"r{i + 1}": load_run_config(args.config, [
                *common, f"system.prompt_processor.prompt='{prompt}'"]) for i, prompt in
                enumerate(prompts)}  # fmt: skip
            from omegaconf import OmegaConf

            rows_file = args.out / "rows.json"
            rows_file.write_text(json.dumps({n: OmegaConf.to_container(c, resolve=True)
                                             for n, c in configs.items()}))  # fmt: skip
            seconds, rc = timed([sys.executable, __file__, "--out", str(args.out),
                                 "--device", args.device,
                                 "--engine-worker", str(rows_file), str(batch_dir)],
                                args.out / "batch.log")  # fmt: skip
            final = dict.fromkeys(configs)
            file = batch_dir / "engine_worker.json"
            detail = json.loads(file.read_text()) if file.is_file() else None
        report["batch"] = {
            "mode": args.mode,
            "returncode": rc,
            "wall_seconds": round(seconds, 1),
            "seconds_per_avatar": round(seconds / args.rows, 1),
            "rows": detail,
        }
        setups = []
        for name in final:
            metrics = args.out / "batch" / "runs" / name / "save" / "metrics.json"
            if metrics.is_file():
                setups.append(json.loads(metrics.read_text())["setup_seconds"])
        report["batch"]["setup_seconds"] = setups

    if args.only != "batch":
        runs = []
        for i, prompt in enumerate(prompts):
            seconds, rc = timed([*python, "run", "--config", args.config, "--device", args.device,
                                 "--out", str(args.out / "separate" / f"r{i + 1}"), *common,
                                 f"system.prompt_processor.prompt='{prompt}'"],
                                args.out / f"run{i + 1}.log")  # fmt: skip
            metrics = next((args.out / "separate" / f"r{i + 1}").glob("*/save/metrics.json"), None)
            setup = json.loads(metrics.read_text())["setup_seconds"] if metrics else None
            runs.append({"returncode": rc, "wall_seconds": round(seconds, 1),
                         "setup_seconds": setup,
                         "run_seconds": json.loads(metrics.read_text())["total_seconds"]
                         if metrics else None})  # fmt: skip
        total = sum(r["wall_seconds"] for r in runs)
        report["separate"] = {"runs": runs, "wall_seconds": round(total, 1),
                              "seconds_per_avatar": round(total / args.rows, 1)}  # fmt: skip

    if "batch" in report and "separate" in report:
        per_batch = report["batch"]["seconds_per_avatar"]
        per_run = report["separate"]["seconds_per_avatar"]
        report["saved"] = {
            "seconds_per_avatar": round(per_run - per_batch, 1),
            "fraction": round(1 - per_batch / per_run, 3),
            "seconds_total": round(report["separate"]["wall_seconds"]
                                   - report["batch"]["wall_seconds"], 1),
        }  # fmt: skip
    (args.out / "bench_batch.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
