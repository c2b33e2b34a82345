"""The avatar of a threestudio trial as a rigged, textured GLB, for ``launch.py --export``.

The checkpoint's Gaussians (not the trial's ``gaussians.ply``, which may belong to a later
step) are exported through the same path as ``gaussianip export --format glb``: they are
written, with the trial's body settings, as a small run folder in a temporary directory
(the export's input), and the GLB lands in ``save/it<step>-export/avatar.glb``
(``avatar-2.glb``, ... where that exists: nothing is overwritten).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gaussianip.config import construct_config
from gaussianip.engine.pipeline import GaussianIPPipeline
from gaussianip.export import MeshExportOptions, export_run
from gaussianip.gaussians import save_ply


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2``, ``stem-3``, ... where taken."""
    path, n = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    return path


def export_trial_glb(
    pipeline: GaussianIPPipeline, body: dict[str, Any], step: int, options: dict[str, Any]
) -> Path:
    """Write ``pipeline``'s Gaussians (a trial with ``save_dir`` set) as a rigged GLB into
    ``save/it<step>-export/``; returns the file. ``options``: the config's
    ``system.export`` (``MeshExportOptions``: faces, texture_size, motion, ...)."""
    assert pipeline.save_dir is not None
    opts = construct_config(MeshExportOptions, dict(options), "system.export")
    opts.device = str(pipeline.device)
    folder = pipeline.save_dir / f"it{step}-export"
    folder.mkdir(parents=True, exist_ok=True)
    out = free_name(folder, "avatar", ".glb")
    with tempfile.TemporaryDirectory(prefix="gaussianip-export-") as tmp:
        run = Path(tmp)
        OmegaConf.save(OmegaConf.create({"system": {"body": dict(body)}}), run / "config.yaml")
        save_ply(run / "save" / "gaussians.ply", pipeline.model.params)
        return export_run(run, "glb", out=out, mesh_options=opts)


__all__ = ["export_trial_glb", "free_name"]
