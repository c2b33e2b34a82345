"""``gaussianip run``: the whole method from one YAML config (the threestudio layout).

Reads the ``data`` and ``system`` sections of a config such as
``custom/gaussianip/configs/gaussianip.yaml``, then runs stage 1, the View-Consistent
Refinement and the reconstruction with progress bars that name the phase, writing every
output into ``<exp_root_dir>/<name>@<timestamp>/save/`` (a new folder each run, so
nothing is overwritten).
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from gaussianip.engine.config import load_run_config, parse_run_config
from gaussianip.errors import ConfigError


def new_run_dir(root: Path, name: str) -> Path:
    """``root/name@<timestamp>``, created; never an existing folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        run_dir = root / (f"{name}@{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            (run_dir / "save").mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            continue
    raise ConfigError(f"Could not create a new run folder under '{root}'.")


def run(config: DictConfig, device: str = "cpu", out_root: str | None = None) -> dict[str, Path]:
    """Run the whole method for ``config``; returns the written files."""
    from tqdm import tqdm

    from gaussianip.engine.pipeline import GaussianIPPipeline

    settings = parse_run_config(config)  # user errors surface here, in seconds
    root = Path(out_root or config.get("exp_root_dir", "outputs"))
    save = new_run_dir(root, str(config.get("name", "gaussianip"))) / "save"
    pipeline = GaussianIPPipeline(settings, device, save)

    bar = tqdm(total=pipeline.stage1_steps, desc="stage 1", unit="step")
    vcr_bar: tqdm | None = None

    def on_refine_step(i: int, n: int) -> None:
        nonlocal vcr_bar
        if vcr_bar is None:
            vcr_bar = tqdm(total=n, desc="VCR", unit="step")
        vcr_bar.update(1)

    for step in range(pipeline.total_steps):
        if step == pipeline.stage1_steps:
            bar.close()
        logs = pipeline.train_step(step, on_refine_step=on_refine_step)
        if step == pipeline.stage1_steps:
            if vcr_bar is not None:
                vcr_bar.close()
            bar = tqdm(total=settings.reconstruction.steps, desc="reconstruction", unit="step")
        postfix = {"loss": f"{logs['loss']:.3g}"}
        if step < pipeline.stage1_steps and pipeline.guidance is not None:
            postfix.update(phase=pipeline.guidance.schedule.phase(step),
                           t=int(logs["timestep"]), n=int(logs["num_gaussians"]))  # fmt: skip
        bar.set_postfix(postfix)
        bar.update(1)
    bar.close()
    files = pipeline.finish()
    phases = pipeline.metrics["phases"]
    timing = ", ".join(f"{name} {p['seconds']:.0f} s" for name, p in phases.items())
    print(f"gaussianip: done ({timing}); outputs in {save}: " + ", ".join(sorted(files)))
    return files


__all__ = ["load_run_config", "new_run_dir", "run"]
