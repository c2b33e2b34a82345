"""Errors a user can fix. Each message names the offending value and the fix.

The CLI prints these without a traceback (``--verbose`` shows it); everything else is a bug.
"""


class GaussianIPError(Exception):
    """Base class for every error caused by user input, files or settings."""


class ConfigError(GaussianIPError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class BodyModelError(GaussianIPError):
    """A body model name is unknown, or its files are missing or malformed."""


class AssetError(GaussianIPError, FileNotFoundError):
    """A file the run needs (portrait, PLY, asset) is missing or unreadable."""


class DiskFullError(GaussianIPError):
    """A file could not be written: the disk (or the user's quota) is full."""
