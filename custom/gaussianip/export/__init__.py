"""``gaussianip export``: copies of a run's avatar in the formats web viewers read
(SuperSplat, antimatter15's viewer, ...); see ``formats`` for the conventions,
``gltf_splats`` for glTF (``KHR_gaussian_splatting``) and ``spz`` for SPZ; and as a
rigged, textured triangle mesh for Blender, Unity and glTF engines (``glb``, ``obj``;
see ``avatar_mesh``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from gaussianip.errors import AssetError, ConfigError
from gaussianip.export.avatar_mesh import MESH_FORMATS, MeshExportOptions, export_mesh, output_files
from gaussianip.export.formats import write_compressed_ply, write_splat
from gaussianip.export.gltf_splats import refuse_broken, write_gltf_splats
from gaussianip.export.spz import write_spz
from gaussianip.gaussians import load_ply, save_ply
from gaussianip.paths import check_output_file
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
    *,
    faces: int = 50_000,
    texture_size: int = 2048,
    motion: str | Path | None = None,
    device: str = "cpu",
    mesh_options: MeshExportOptions | None = None,
) -> Path:
    """Write the ``stage`` avatar of ``run_dir`` as ``fmt`` to ``out`` (default:
    ``<save>/avatar[_stage1].<suffix>``); returns the file. Never overwrites a file
    unless ``force``.

    The mesh formats (``glb``, ``obj``) take ``faces``, ``texture_size``, ``motion`` (an
    AMASS-layout .npz baked into the GLB as an animation clip) and ``device`` (the ring
    renders' device), or all of them as ``mesh_options``."""
    names = [*FORMATS, *MESH_FORMATS]
    if fmt not in names:
        raise ConfigError(f"Unknown export format '{fmt}'; choose one of {', '.join(names)}.")
    plys = stage_plys(run_dir)
    if stage not in plys:
        have = ", ".join(plys) or "none"
        raise AssetError(f"'{run_dir}' has no {stage} avatar (stages there: {have}).")
    suffix = MESH_FORMATS[fmt] if fmt in MESH_FORMATS else FORMATS[fmt][0]
    source = plys[stage]
    if out is None:
        out = source.parent / ("avatar" + ("" if stage == "final" else f"_{stage}") + suffix)
    out = check_output_file(out, "--out")
    if out.resolve() == source.resolve():
        raise ConfigError(f"--out '{out}' is the run's own PLY; give another file name.")
    if fmt in MESH_FORMATS:
        existing = [str(path) for path in output_files(out, fmt) if path.exists()]
        if existing and not force:
            raise ConfigError(f"'{', '.join(existing)}' exist{'s' if len(existing) == 1 else ''}; "
                              "give another --out, or --force to replace.")  # fmt: skip
        opts = mesh_options or MeshExportOptions(faces=faces, texture_size=texture_size,
                                                 motion=motion, device=device)  # fmt: skip
        return export_mesh(source, stage, fmt, out, opts)
    write = FORMATS[fmt][1]
    params = load_ply(source, drop_nonfinite=False)
    try:  # never copied silently: broken Gaussians are refused, with their count
        refuse_broken(params)
    except AssetError as err:
        raise AssetError(f"'{source}': {err}") from None
    if force:
        return write(out, params)  # replaced atomically: a reader sees old or new
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # claimed atomically: of two exports at once, one writes and one is refused
        os.close(os.open(out, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        raise ConfigError(f"'{out}' exists; give another --out, or --force to replace it."
                          ) from None  # fmt: skip
    try:
        return write(out, params)
    except BaseException:
        out.unlink(missing_ok=True)  # our empty claim, never a user's file
        raise


__all__ = ["FORMATS", "MESH_FORMATS", "MeshExportOptions", "export_run"]
