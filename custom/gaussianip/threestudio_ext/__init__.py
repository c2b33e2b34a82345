"""The thin threestudio layer: registers our modules under ``gaussianip-*`` names.

Everything here only adapts the threestudio-free engine (``gaussianip.data``,
``gaussianip.gaussians``, ``gaussianip.render``) to threestudio's base classes, config
parsing and update hooks. Importing this module needs threestudio.
"""

from gaussianip.paths import use_compile_cache

# launch.py compiles into the same kernel cache as our CLI (and `gaussianip warmup`).
use_compile_cache()

from gaussianip.threestudio_ext import data, geometry, guidance, renderer, system  # noqa: E402

__all__ = ["data", "geometry", "guidance", "renderer", "system"]
