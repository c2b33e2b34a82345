"""Stand-in for ``wandb``, for tests and the GPU launch check only.

threestudio v0.2.3 imports ``wandb`` at module level (``threestudio/utils/saving.py``) and
uses it only with a Weights & Biases logger, which our configs never enable. The real
package pulls in a large OpenTelemetry tree that the GPU machine lacks; it is loaded only
where the real one is not importable. Every attribute is a placeholder class that raises
``RuntimeError`` when instantiated or called.
"""

STANDIN = True
_PLACEHOLDERS: dict = {}


class _PlaceholderMeta(type):
    def __call__(cls, *args, **kwargs):
        raise RuntimeError(
            f"wandb.{cls.__name__} was used, but this `wandb` is a stand-in "
            "(tests/threestudio_stubs). Install the real wandb to log to Weights & Biases."
        )


def __getattr__(name: str):
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    if name not in _PLACEHOLDERS:
        _PLACEHOLDERS[name] = _PlaceholderMeta(name, (), {"__module__": __name__})
    return _PLACEHOLDERS[name]
