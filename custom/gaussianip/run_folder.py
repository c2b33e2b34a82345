"""A finished run's folder, as the commands that read one (``view``, ``export``) take it:
the run folder (``outputs/<name>@<time>``), its ``save/`` folder, or a PLY file."""

from __future__ import annotations

from pathlib import Path

from gaussianip.errors import AssetError

STAGES = {"final": "gaussians.ply", "stage1": "stage1.ply"}


def save_dir_of(run_dir: str | Path) -> Path:
    """The ``save/`` folder of ``run_dir`` (a run folder or its ``save/``); ``AssetError``
    naming the path and what to give instead."""
    path = Path(run_dir).expanduser()
    for candidate in (path / "save", path):
        if candidate.is_dir() and any((candidate / name).is_file() for name in STAGES.values()):
            return candidate
    state = "does not exist" if not path.exists() else "holds no gaussians.ply or stage1.ply"
    raise AssetError(
        f"'{run_dir}' {state}. Give the folder of a `gaussianip run` (outputs/<name>@<time>, "
        "the one holding save/), its save/ folder, or a 3DGS .ply file."
    )


def stage_plys(run_dir: str | Path) -> dict[str, Path]:
    """{stage: PLY} of the run (``final``, ``stage1``, whichever exist); a .ply given as
    ``run_dir`` is the ``final`` one."""
    path = Path(run_dir).expanduser()
    if path.suffix.lower() == ".ply":
        if not path.is_file():
            raise AssetError(f"PLY file not found: '{run_dir}'. Check the path.")
        return {"final": path}
    save = save_dir_of(path)
    return {stage: save / name for stage, name in STAGES.items() if (save / name).is_file()}


# What a finished `gaussianip run` holds in save/ (metrics.json, the "finished" record,
# is written last); runs started from another run's stage 1 (system.stage2_from) have no
# stage-1 files, and runs with system.animation.motion set also hold animation.mp4.
RUN_OUTPUTS = ("gaussians.ply", "avatar_rig.npz", "turntable.mp4", "vcr_views.png",
               "summary.png", "metrics.json")  # fmt: skip
STAGE1_OUTPUTS = ("stage1.ply", "stage1_views.png")
FINISHED_RECORD = "metrics.json"


def missing_outputs(save: str | Path, stage1: bool = True, animation: bool = False) -> list[str]:
    """The promised files not in the ``save`` folder of a run (``[]``: the run is finished).
    ``stage1``: the run ran stage 1 itself; ``animation``: it animates its result."""
    names = [*RUN_OUTPUTS, *(STAGE1_OUTPUTS if stage1 else ())]
    if animation:
        names.append("animation.mp4")

    def written(file: Path) -> bool:  # an empty file is a name claimed, not an output
        return file.is_file() and file.stat().st_size > 0

    return [name for name in names if not written(Path(save) / name)]
