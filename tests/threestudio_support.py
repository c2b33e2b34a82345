"""Test harness for the threestudio integration tests.

threestudio is on no package registry: the integration tests run against a source checkout
of threestudio v0.2.3 (commit 28d9d80) named by the environment variable
``THREESTUDIO_ROOT``. Without it (or when it names no threestudio checkout, or when
threestudio's own imports fail) the tests that need it are skipped, with the reason.

threestudio imports ``tinycudann`` and ``nvdiffrast.torch`` at module level; both are
compiled from git and cannot be installed on the test machines. When the real package is
not importable, this harness loads a stand-in from ``tests/threestudio_stubs/`` whose
attributes raise if ever used, and says so once (a ``ThreestudioStandInWarning`` and a
line on stderr). The stand-ins belong to the tests only, never to the product.

Use::

    # pytest puts tests/ on sys.path (rootdir-relative "prepend" import mode)
    from threestudio_support import import_threestudio  # plain function
    from threestudio_support import in_threestudio_root, threestudio_module  # fixtures

    def test_registry(threestudio_module):
        assert "gaussianip-system" in threestudio_module.__modules__

threestudio resolves ``custom/``, ``load/`` and relative config paths against the current
working directory: use the ``in_threestudio_root`` fixture or ``threestudio_cwd()``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import tempfile
import time
import traceback
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV_VAR = "THREESTUDIO_ROOT"
EXPECTED_VERSION = "0.2.3"
EXPECTED_COMMIT = "28d9d80"
STUBS_DIR = Path(__file__).resolve().parent / "threestudio_stubs"

# stand-in package -> the module threestudio imports from it
STANDIN_PACKAGES: dict[str, str] = {
    "tinycudann": "tinycudann",
    "nvdiffrast": "nvdiffrast.torch",
    "wandb": "wandb",
}

# import name -> what to pip install, for the ones whose names differ
_PIP_NAMES: dict[str, str] = {
    "igl": "libigl==2.5.1",
    "cv2": "opencv-python-headless",
    "taming": "taming-transformers-rom1504",
    "controlnet_aux": "controlnet-aux",
    "IPython": "ipython",
    "PIL": "pillow",
    "yaml": "pyyaml",
}

_HOW = f"set it to a threestudio v{EXPECTED_VERSION} checkout to run this test"


class ThreestudioStandInWarning(UserWarning):
    """Emitted once when the test stand-ins for tinycudann / nvdiffrast are in use."""


class _State:
    module: types.ModuleType | None = None
    root: Path | None = None
    skip_reason: str | None = None
    standins: list[str] | None = None
    import_seconds: float | None = None


_state = _State()


# --------------------------------------------------------------------------- the root


def _root_problem(raw: str | None) -> str | None:
    """Why ``raw`` is not a usable threestudio checkout, or None if it is one."""
    if raw is None or not raw.strip():
        return (
            f"{ENV_VAR} is not set: these tests need a source checkout of threestudio "
            f"(v{EXPECTED_VERSION}, commit {EXPECTED_COMMIT}); {_HOW}"
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        return f"{ENV_VAR}={raw!r} is not a directory: {_HOW}"
    missing = [p for p in ("threestudio/__init__.py", "launch.py") if not (root / p).is_file()]
    if missing:
        return (
            f"{ENV_VAR}={raw!r} is not a threestudio checkout (no {', '.join(missing)} "
            f"there): {_HOW}"
        )
    return None


def threestudio_root() -> Path:
    """The checkout named by ``THREESTUDIO_ROOT``, or ``pytest.skip`` with the reason."""
    raw = os.environ.get(ENV_VAR)
    problem = _root_problem(raw)
    if problem is not None:
        pytest.skip(problem)
    assert raw is not None
    return Path(raw).expanduser().resolve()


def checkout_version(root: Path) -> str | None:
    """``__version__`` as written in ``<root>/threestudio/__init__.py`` (not imported)."""
    text = (root / "threestudio" / "__init__.py").read_text(encoding="utf-8", errors="replace")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return match.group(1) if match else None


# ---------------------------------------------------------------------- the stand-ins


def _drop_modules(top: str) -> None:
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        del sys.modules[name]


def _real_importable(module_name: str) -> bool:
    top = module_name.split(".")[0]
    if importlib.util.find_spec(top) is None:
        return False
    try:
        importlib.import_module(module_name)
    except Exception:  # e.g. an installed tinycudann that cannot load without CUDA
        _drop_modules(top)
        return False
    return not getattr(sys.modules.get(top), "STANDIN", False)


def _load_standin(top: str) -> None:
    package_dir = STUBS_DIR / top
    spec = importlib.util.spec_from_file_location(
        top, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[top] = module
    spec.loader.exec_module(module)


def install_standins() -> list[str]:
    """Load the stand-ins for the packages in ``STANDIN_PACKAGES`` that are not importable.

    Returns the names of the stand-ins in use (empty when the real packages are there).
    Idempotent; announces the stand-ins once.
    """
    if _state.standins is not None:
        return list(_state.standins)
    in_use = []
    for top, module_name in STANDIN_PACKAGES.items():
        if getattr(sys.modules.get(top), "STANDIN", False):
            in_use.append(top)
        elif not _real_importable(module_name):
            _load_standin(top)
            importlib.import_module(module_name)
            in_use.append(top)
    _state.standins = in_use
    if in_use:
        message = (
            f"threestudio tests use stand-ins for {', '.join(in_use)} "
            f"({STUBS_DIR}): placeholders for tests only, which raise if ever instantiated "
            "or called; the real packages are not importable here"
        )
        print(f"[threestudio_support] {message}", file=sys.stderr)
        warnings.warn(message, ThreestudioStandInWarning, stacklevel=2)
    return list(in_use)


def standins_in_use() -> list[str]:
    """The stand-ins loaded so far (empty before ``import_threestudio``)."""
    return list(_state.standins or [])


# ------------------------------------------------------------------------- the import


def _failure_reason(root: Path, exc: BaseException) -> str:
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        try:
            rel = Path(frame.filename).resolve().relative_to(root)
        except ValueError:
            continue
        where = f" (raised from {rel}:{frame.lineno})"
        break
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        return (
            f"threestudio from {ENV_VAR}={root} could not be imported: module '{top}' is "
            f"missing ({exc}){where}; pip install {_PIP_NAMES.get(top, top)} (and the other "
            "packages threestudio imports at module level, see the README)"
        )
    hint = ""
    if isinstance(exc, ImportError) and exc.name:
        top = exc.name.split(".")[0]
        hint = f"; the installed '{top}' may be the wrong version"
        if top in _PIP_NAMES:
            hint += f" (pip install {_PIP_NAMES[top]})"
    return (
        f"threestudio from {ENV_VAR}={root} could not be imported: "
        f"{type(exc).__name__}: {exc}{where}{hint}"
    )


def import_threestudio() -> types.ModuleType:
    """Import threestudio from ``THREESTUDIO_ROOT`` and return the module.

    Skips the calling test (``pytest.skip``) with a precise reason when the variable is
    unset, names no threestudio checkout, or threestudio's own imports fail (a missing
    package is named). The result, or the reason to skip, is cached for the session.
    """
    if _state.module is not None:
        return _state.module
    if _state.skip_reason is not None:
        pytest.skip(_state.skip_reason)
    root = threestudio_root()

    version = checkout_version(root)
    if version != EXPECTED_VERSION:
        warnings.warn(
            f"{ENV_VAR}={root} holds threestudio {version!r}; these tests are written "
            f"against v{EXPECTED_VERSION} (commit {EXPECTED_COMMIT})",
            stacklevel=2,
        )

    loaded = sys.modules.get("threestudio")
    if loaded is not None and not _is_under(getattr(loaded, "__file__", None), root):
        _state.skip_reason = (
            f"a threestudio was already imported from {loaded.__file__}, not from {ENV_VAR}={root}"
        )
        pytest.skip(_state.skip_reason)

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    install_standins()

    started = time.perf_counter()
    try:
        module = importlib.import_module("threestudio")
    except (ImportError, OSError) as exc:
        # Drop the half-imported submodules so no later import sees a partial registry.
        _drop_modules("threestudio")
        _drop_modules("extern")
        _state.skip_reason = _failure_reason(root, exc)
        pytest.skip(_state.skip_reason)
    _state.import_seconds = time.perf_counter() - started

    if not _is_under(getattr(module, "__file__", None), root):
        _state.skip_reason = (
            f"threestudio was imported from {module.__file__}, not from {ENV_VAR}={root}"
        )
        pytest.skip(_state.skip_reason)
    _state.module = module
    _state.root = root
    return module


def import_seconds() -> float | None:
    """How long the ``import threestudio`` of this session took (None if not imported)."""
    return _state.import_seconds


def _is_under(path: str | None, root: Path) -> bool:
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(root)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------ cwd and subprocess


@contextlib.contextmanager
def threestudio_cwd(root: Path | str | None = None) -> Iterator[Path]:
    """Run the block with the threestudio checkout as the current directory.

    threestudio resolves ``custom/`` (``launch.py``'s ``load_custom_modules``), ``load/``
    (prompt libraries, shapes) and relative config paths against the cwd.
    """
    target = Path(root) if root is not None else threestudio_root()
    previous = os.getcwd()
    os.chdir(target)
    try:
        yield target
    finally:
        os.chdir(previous)


def threestudio_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a subprocess (e.g. ``python launch.py``) that sees threestudio.

    ``PYTHONPATH`` gets the checkout and, when stand-ins are in use, a temporary folder
    holding only those stand-ins (so a real package that is importable is never shadowed).
    Call after ``import_threestudio()``.
    """
    env = dict(os.environ if base is None else base)
    root = _state.root or threestudio_root()
    paths = [str(root)]
    standins = standins_in_use()
    if standins:
        shim = Path(tempfile.mkdtemp(prefix="threestudio-standins-"))
        for top in standins:
            (shim / top).symlink_to(STUBS_DIR / top, target_is_directory=True)
        paths.append(str(shim))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def threestudio_module() -> types.ModuleType:
    """threestudio, imported from ``THREESTUDIO_ROOT`` (the test is skipped otherwise)."""
    return import_threestudio()


@pytest.fixture
def in_threestudio_root(
    threestudio_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """chdir into the threestudio checkout for the test (restored afterwards)."""
    root = _state.root or threestudio_root()
    monkeypatch.chdir(root)
    return root
