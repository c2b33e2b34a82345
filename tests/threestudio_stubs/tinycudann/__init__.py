"""Stand-in for ``tinycudann``, for tests only.

threestudio v0.2.3 imports ``tinycudann`` at module level (``threestudio/models/networks.py``,
``threestudio/utils/misc.py``) though a Gaussian-splat pipeline never uses it. The real
package is compiled from git with CUDA and cannot be installed on the test machines.
``tests/threestudio_support.py`` loads this module only when the real one is not importable.

Every attribute is a placeholder class that raises ``RuntimeError`` when instantiated or
called. The only exception is ``free_temporary_memory()``, a no-op: threestudio's generic
``threestudio.utils.misc.cleanup()`` calls it, and in the real package it only frees a
GPU cache.
"""

STANDIN = True
_REAL = "tinycudann (https://github.com/NVlabs/tiny-cuda-nn, bindings/torch)"
_PLACEHOLDERS: dict = {}


def _fail(qualname: str):
    raise RuntimeError(
        f"{qualname} was used, but this `tinycudann` is a stand-in for tests only "
        f"(tests/threestudio_stubs). Install the real {_REAL} to use it."
    )


class _PlaceholderMeta(type):
    def __call__(cls, *args, **kwargs):
        _fail(f"tinycudann.{cls.__name__}")

    def __repr__(cls):
        return f"<stand-in tinycudann.{cls.__name__} (tests only)>"


def free_temporary_memory() -> None:
    """No-op stand-in (the real one frees tiny-cuda-nn's GPU scratch memory)."""


def __getattr__(name: str):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    if name not in _PLACEHOLDERS:
        _PLACEHOLDERS[name] = _PlaceholderMeta(
            name,
            (),
            {"__module__": __name__, "__doc__": f"Stand-in for tinycudann.{name} (tests only)."},
        )
    return _PLACEHOLDERS[name]
