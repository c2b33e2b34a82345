"""Stand-in for ``nvdiffrast.torch``, for tests only.

Every attribute (``RasterizeGLContext``, ``RasterizeCudaContext``, ``rasterize``,
``interpolate``, ``antialias``, ``texture``, ...) is a placeholder class that raises
``RuntimeError`` when instantiated or called. threestudio only names them in annotations
and function bodies at import time.
"""

STANDIN = True
_REAL = "nvdiffrast (https://github.com/NVlabs/nvdiffrast)"
_PLACEHOLDERS: dict = {}


def _fail(qualname: str):
    raise RuntimeError(
        f"{qualname} was used, but this `nvdiffrast` is a stand-in for tests only "
        f"(tests/threestudio_stubs). Install the real {_REAL} to use it."
    )


class _PlaceholderMeta(type):
    def __call__(cls, *args, **kwargs):
        _fail(f"nvdiffrast.torch.{cls.__name__}")

    def __repr__(cls):
        return f"<stand-in nvdiffrast.torch.{cls.__name__} (tests only)>"


def __getattr__(name: str):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    if name not in _PLACEHOLDERS:
        _PLACEHOLDERS[name] = _PlaceholderMeta(
            name,
            (),
            {
                "__module__": __name__,
                "__doc__": f"Stand-in for nvdiffrast.torch.{name} (tests only).",
            },
        )
    return _PLACEHOLDERS[name]
