"""GaussianIP: identity-preserving 3D Gaussian human generation.

Everything here runs without threestudio. When threestudio is importable, importing this
package also registers our threestudio modules (names prefixed ``gaussianip-``).
"""

import importlib.util
import warnings

from gaussianip.errors import BodyModelError, ConfigError, GaussianIPError
from gaussianip.guidance.hds import hds_gradient
from gaussianip.guidance.schedule import AdaptiveTimestepSchedule

__version__ = "0.1.0"

__all__ = [
    "AdaptiveTimestepSchedule",
    "BodyModelError",
    "ConfigError",
    "GaussianIPError",
    "__version__",
    "hds_gradient",
]


def _threestudio_available() -> bool:
    try:
        return importlib.util.find_spec("threestudio") is not None
    except (ImportError, ValueError):  # a broken or blocked entry in sys.modules
        return False


if _threestudio_available():
    try:
        from gaussianip import threestudio_ext  # noqa: F401  (registers the modules)
    except ImportError as err:  # threestudio present but its own imports fail
        warnings.warn(
            f"threestudio was found but could not be imported ({err}); the gaussianip-* "
            "threestudio modules are not registered. Everything else works.",
            stacklevel=2,
        )
