"""Structured configs without threestudio.

Every configurable class has a ``Config`` dataclass, as in threestudio. ``parse_config``
builds one from a dict / DictConfig, rejecting unknown keys with a suggestion, so that a
typo in YAML or on the command line fails at once instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gaussianip.errors import ConfigError

T = TypeVar("T")


def _checked_values(cls: type, cfg: dict | DictConfig | None, where: str) -> dict[str, Any]:
    """``cfg`` as a plain dict, after rejecting keys that ``cls`` does not have."""
    values: dict[str, Any] = {}
    if cfg is not None:
        values = (
            OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        )
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            prefix = f"{where}." if where else ""
            raise ConfigError(
                f"Unknown config key '{prefix}{key}'.{hint} Valid keys: {', '.join(names)}."
            )
    return values


def parse_config(cls: type[T], cfg: dict | DictConfig | T | None = None, where: str = "") -> T:
    """Return an instance of the dataclass ``cls`` filled from ``cfg``, with OmegaConf's
    type checks. ``where`` is the dotted config path used in error messages."""
    if isinstance(cfg, cls):
        return cfg
    values = _checked_values(cls, cfg, where)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise ConfigError(f"Invalid value in config '{where or cls.__name__}': {err}") from None


def construct_config(cls: type[T], cfg: dict | DictConfig | T | None = None, where: str = "") -> T:
    """Like ``parse_config`` for dataclasses whose annotations OmegaConf cannot handle
    (gsplat's strategies use ``Literal``): unknown keys are rejected, values passed as is."""
    if isinstance(cfg, cls):
        return cfg
    try:
        return cls(**_checked_values(cls, cfg, where))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"Invalid value in config '{where or cls.__name__}': {err}") from None
