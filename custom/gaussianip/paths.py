"""Where files are looked up.

Relative paths in configs (``load/...``) are resolved like threestudio does, from the
current directory, and then from this repository's root, so our CLI works from anywhere
and threestudio's ``launch.py`` works from the threestudio checkout (``install.sh`` links
our ``load/`` assets into it).
"""

from __future__ import annotations

from pathlib import Path

from gaussianip.errors import AssetError

PACKAGE_DIR = Path(__file__).resolve().parent
# custom/gaussianip -> repository root (valid for the source checkout and editable installs).
REPO_ROOT = PACKAGE_DIR.parent.parent
CONFIG_DIR = PACKAGE_DIR / "configs"
# torch.compile's kernels, kept between runs (inductor's default lives in /tmp).
COMPILE_CACHE = Path.home() / ".cache" / "gaussianip" / "torchinductor"


def use_compile_cache() -> str:
    """Point inductor at ``COMPILE_CACHE`` unless ``TORCHINDUCTOR_CACHE_DIR`` is set (a
    user's own setting wins); the folder in use. Both hosts call it before compiling, so
    ``gaussianip warmup``, ``gaussianip run`` and threestudio's ``launch.py`` share it."""
    import os

    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(COMPILE_CACHE))


def _openable(path: Path, what: str) -> Path:
    """``path`` unless it is a FIFO, socket or device (opening one can block for ever)."""
    if not path.is_file() and not path.is_dir():
        from gaussianip.safe_load import regular_file

        regular_file(path, what)  # raises, naming what it is
    return path


def resolve_asset(path: str | Path, what: str = "file") -> Path:
    """Return an existing path for ``path``: as given (absolute, or relative to the current
    directory), else relative to the repository root. Raise ``AssetError`` naming both."""
    candidate = Path(path).expanduser()
    if candidate.exists():
        return _openable(candidate, what)
    if not candidate.is_absolute():
        in_repo = REPO_ROOT / candidate
        if in_repo.exists():
            return _openable(in_repo, what)
    places = {str(Path.cwd().resolve()), str(REPO_ROOT.resolve())}
    raise AssetError(
        f"{what} not found: '{path}' (looked in {' and '.join(repr(p) for p in sorted(places))}). "
        "Check the path, or give an absolute one."
    )


# Config keys that name input files or folders. A run pins each to an absolute path at its
# start (``absolute_inputs``) and records them in its config.yaml, so that its last steps,
# `--resume` and `animate` find the same files from any working folder.
INPUT_KEYS = (
    "system.face_image", "system.repel_face_image", "system.stage2_from",
    "system.body.model_path", "system.animation.motion", "system.face_analyser_root",
    "system.reconstruction.lpips_weights_dir",
)  # fmt: skip
# Model weights: a Hugging Face id, or a local folder/file relative to the working folder
# (the loaders' rule); only the local ones are pinned.
WEIGHT_KEYS = ("system.prior.base_model", "system.prior.vae", "system.prior.controlnet",
               "system.prior.ip_adapter", "system.prior.image_encoder")  # fmt: skip


def absolute_inputs(config) -> dict[str, str]:
    """Pin the input paths of a run config (an OmegaConf ``DictConfig``, changed in place)
    to absolute paths, found as ``resolve_asset`` finds them (weights: only where they
    exist relative to the working folder). Paths not found are left as they are, for the
    checks to name. Returns {key: absolute path} of the values changed."""
    from omegaconf import OmegaConf

    pinned: dict[str, str] = {}
    for key in (*INPUT_KEYS, *WEIGHT_KEYS):
        value = OmegaConf.select(config, key, default=None)
        if not isinstance(value, str) or not value.strip():
            continue
        candidate = Path(value).expanduser()
        if key in WEIGHT_KEYS:
            found = candidate if candidate.exists() else None
        else:
            try:
                found = resolve_asset(value)
            except AssetError:
                found = None
        if found is not None and str(found.absolute()) != value:
            pinned[key] = str(found.absolute())
            OmegaConf.update(config, key, pinned[key], merge=False)
    return pinned


def check_output_file(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a file to write: ``ConfigError`` (from ``errors``) naming it when it is a
    folder, or when a part of the folder above it is a regular file (``a.txt/b.splat``)."""
    from gaussianip.errors import ConfigError

    path = Path(path).expanduser()
    if path.is_dir():
        raise ConfigError(f"{option} '{path}' is a folder; give a file name.")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"{option} '{path}': '{parent}' is a file, not a folder, so nothing can be "
                    "written under it. Give a path in a folder."
                )
            break
    return path
