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


def resolve_asset(path: str | Path, what: str = "file") -> Path:
    """Return an existing path for ``path``: as given (absolute, or relative to the current
    directory), else relative to the repository root. Raise ``AssetError`` naming both."""
    candidate = Path(path).expanduser()
    if candidate.exists():
        return candidate
    if not candidate.is_absolute():
        in_repo = REPO_ROOT / candidate
        if in_repo.exists():
            return in_repo
    places = {str(Path.cwd().resolve()), str(REPO_ROOT.resolve())}
    raise AssetError(
        f"{what} not found: '{path}' (looked in {' and '.join(repr(p) for p in sorted(places))}). "
        "Check the path, or give an absolute one."
    )
