"""GaussianIP: identity-preserving 3D Gaussian human generation.

Everything here runs without threestudio. When threestudio is importable, importing this
package also registers our threestudio modules (names prefixed ``gaussianip-``).
"""

from gaussianip.errors import BodyModelError, ConfigError, GaussianIPError

__version__ = "0.1.0"

__all__ = ["BodyModelError", "ConfigError", "GaussianIPError", "__version__"]
