"""``register`` that tolerates a second import of the extension.

threestudio's ``launch.py`` executes ``custom/gaussianip/__init__.py`` again even when the
package was imported before (it installs a fresh module object); registering a name twice
would raise there, so a name already taken by our class is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import threestudio

T = TypeVar("T")


def register(name: str) -> Callable[[T], T]:
    def decorator(cls: T) -> T:
        if name not in threestudio.__modules__:
            threestudio.register(name)(cls)
        return cls

    return decorator
