"""Stand-in for ``nvdiffrast``, for tests only.

threestudio v0.2.3 imports ``nvdiffrast.torch`` at module level
(``threestudio/utils/rasterize.py``, ``threestudio/models/materials/pbr_material.py``) though
a Gaussian-splat pipeline never uses it. The real package is compiled from git and cannot be
installed on the test machines. ``tests/threestudio_support.py`` loads this package only
when the real one is not importable. See ``nvdiffrast.torch`` for the placeholders.
"""

STANDIN = True
