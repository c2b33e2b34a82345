"""The ``gaussianip batch`` command: its arguments, the rows they name, and the run."""

from __future__ import annotations

import argparse
from pathlib import Path

from gaussianip.batch.manifest import ManifestError, check_rows, grid_rows, read_manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "items",
        nargs="*",
        metavar="MANIFEST | key=value",
        help="a manifest (.csv or .jsonl, one avatar a row: name, prompt, portrait, seed, "
        "config, overrides), then key=value overrides for every row",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="the batch folder: runs/<name>/, batch.jsonl, results.csv, gallery.html "
        "(rerunning the command there continues the batch)",
    )
    p.add_argument("--prompts", type=Path, default=None,
                   help="instead of a manifest: a file of prompts, one a line (a grid of "
                        "prompts x portraits x configs)")  # fmt: skip
    p.add_argument(
        "--portraits",
        type=Path,
        default=None,
        help="with --prompts: a folder of portraits (default: each config's)",
    )
    p.add_argument(
        "--configs",
        nargs="+",
        default=None,
        metavar="YAML",
        help="with --prompts: the configs, one gallery column each",
    )
    p.add_argument("--address", default=None,
                   help="a Ray cluster: 'auto' (this node's), or ray://HOST:10001 (default: "
                        "RAY_ADDRESS, else Ray on this machine)")  # fmt: skip
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="more tries of a row that fails or whose worker dies (default 1)",
    )
    p.add_argument("--workers", type=int, default=None,
                   help="workers to start (default: one per GPU; without GPUs, one per "
                        "--cpus-per-worker CPUs)")  # fmt: skip
    p.add_argument(
        "--cpus-per-worker",
        type=int,
        default=1,
        help="CPU workers: the CPU threads of each (default 1)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cuda", "cpu"),
        help="auto: GPU workers where the cluster has GPUs, else CPU workers",
    )


def main(args: argparse.Namespace) -> int:
    """Check every row (before Ray or any model starts), then run them."""
    # Ray is imported only here: the other commands start without it.
    from gaussianip.batch.runner import BatchOptions, continue_command, run_batch

    overrides = [item for item in args.items if "=" in item]
    manifests = [item for item in args.items if "=" not in item]
    configs = list(args.configs or [])
    overrides += [c for c in configs if "=" in c]  # overrides written after --configs
    configs = [c for c in configs if "=" not in c]
    grid = args.prompts is not None or args.portraits is not None or bool(configs)
    if len(manifests) > 1 or (manifests and grid) or not (manifests or grid):
        raise ManifestError(
            "Give one manifest (gaussianip batch people.csv --out DIR), or the grid "
            "shorthand (--prompts FILE [--portraits DIR] --configs A.yaml B.yaml), not both; "
            f"got {manifests or 'no manifest'}."
        )
    for option, value, low in (("--retries", args.retries, 0),
                               ("--cpus-per-worker", args.cpus_per_worker, 1),
                               ("--workers", args.workers, 1)):  # fmt: skip
        if value is not None and value < low:
            raise ManifestError(f"{option} must be >= {low}, got {value}.")
    if grid:
        if args.prompts is None or not configs:
            raise ManifestError("The grid shorthand needs --prompts FILE and --configs A.yaml "
                                "[B.yaml ...] (and optionally --portraits DIR).")  # fmt: skip
        rows = grid_rows(args.prompts, args.portraits, configs)
        jobs = check_rows(rows, "the grid", None, overrides)
    else:
        manifest = Path(manifests[0])
        rows = read_manifest(manifest)
        jobs = check_rows(rows, f"'{manifest}'", manifest.parent, overrides)
    options = BatchOptions(
        address=args.address,
        retries=args.retries,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        device=args.device,
        command=continue_command(),
    )
    return run_batch(jobs, args.out, options)


__all__ = ["add_arguments", "main"]
