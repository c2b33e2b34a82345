"""``gaussianip export``: copies of a run's avatar in the formats web viewers read
(SuperSplat, antimatter15's viewer, ...); see ``formats`` for the conventions,
``gltf_splats`` for glTF (``KHR_gaussian_splatting``) and ``spz`` for SPZ."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from gaussianip.errors import AssetError, ConfigError
from gaussianip.export.formats import write_compressed_ply, write_splat
from gaussianip.export.gltf_splats import write_gltf_splats
from gaussianip.export.spz import write_spz
from gaussianip.gaussians import load_ply, save_ply
from gaussianip.run_folder import stage_plys

# format -> (file name suffix, writer)
FORMATS: dict[str, tuple[str, Callable[[str | Path, dict[str, Tensor]], Path]]] = {
    "splat": (".splat", write_splat),
    "ply": (".ply", save_ply),  # the standard 3DGS layout (also gaussians.ply's)
    "compressed-ply": (".compressed.ply", write_compressed_ply),
    # KHR_gaussian_splatting; "_splats" keeps avatar.glb free for the rigged mesh
    "gltf": ("_splats.glb", write_gltf_splats),
    "spz": (".spz", write_spz),
}


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path | None = None,
    stage: str = "final",
    force: bool = False,
) -> Path:
    """Write the ``stage`` avatar of ``run_dir`` as ``fmt`` to ``out`` (default:
    ``<save>/avatar[_stage1].<suffix>``); returns the file. Never overwrites a file
    unless ``force``."""
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}.")
    plys = stage_plys(run_dir)
    if stage not in plys:
        have = ", ".join(plys) or "none"
        raise AssetError(f"'{run_dir}' has no {stage} avatar (stages there: {have}).")
    suffix, write = FORMATS[fmt]
    source = plys[stage]
    if out is None:
        out = source.parent / ("avatar" + ("" if stage == "final" else f"_{stage}") + suffix)
    out = Path(out).expanduser()
    if out.resolve() == source.resolve():
        raise ConfigError(f"--out '{out}' is the run's own PLY; give another file name.")
    if out.exists() and not force:
        raise ConfigError(f"'{out}' exists; give another --out, or --force to replace it.")
    if out.is_dir():
        raise ConfigError(f"--out '{out}' is a folder; give a file name ending in {suffix}.")
    return write(out, load_ply(source))


__all__ = ["FORMATS", "export_run"]
