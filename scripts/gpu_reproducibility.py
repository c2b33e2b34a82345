"""How close two GPU runs of one config and seed come (they are not bit-identical: gsplat's
backward sums gradients with atomic adds; see README, Reliability).

    python3 scripts/gpu_reproducibility.py [--device cuda] [--out /tmp/repro] [overrides ...]

Runs the tiny config twice (whole, 60 + 10 steps, unless overridden) and prints one JSON
object: the Gaussian counts after stage 1 and at the end, and per PLY attribute the largest
absolute difference where the counts agree; ``identical_files`` lists the files that are
byte for byte the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from gaussianip.gaussians import load_ply

CONFIG = "custom/gaussianip/configs/gaussianip-tiny.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("/tmp/gaussianip-repro"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    runs = []
    for name in ("a", "b"):
        root = args.out / name
        cmd = [sys.executable, "-m", "gaussianip", "run", "--config", CONFIG, "--out", str(root),
               "--device", args.device, *args.overrides]  # fmt: skip
        subprocess.run(cmd, check=True)
        runs.append(sorted(root.iterdir())[-1] / "save")
    result: dict = {"device": args.device, "runs": [str(r) for r in runs], "identical_files": []}
    for name in ("stage1.ply", "gaussians.ply"):
        a, b = (load_ply(r / name) for r in runs)
        entry: dict = {"num_gaussians": [int(a["means"].shape[0]), int(b["means"].shape[0])]}
        if a["means"].shape == b["means"].shape:
            entry["max_abs_diff"] = {k: float(np.abs(np.asarray(a[k]) - np.asarray(b[k])).max())
                                     for k in a if np.asarray(a[k]).size}  # fmt: skip
        result[name] = entry
    for file in sorted(p.relative_to(runs[0]) for p in runs[0].rglob("*") if p.is_file()):
        if (runs[0] / file).read_bytes() == (runs[1] / file).read_bytes():
            result["identical_files"].append(str(file))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
