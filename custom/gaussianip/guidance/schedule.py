"""Diffusion-timestep schedules for distillation.

``AdaptiveTimestepSchedule`` is GaussianIP's human-specific schedule (method.md, "Adaptive
timestep schedule"). A two-piece Gaussian over the integer timesteps 0..t_max-1 is fitted
once so that the coarse / intermediate / fine phases get the prescribed mass; step i of N is
planned at the t whose upper-tail mass is closest to i / N, and each view's timestep is
drawn between a per-phase lower bound and the planned t + 50.

``LinearSchedule`` and ``UniformSchedule`` are the usual baselines, for ablations. All three
share ``planned(step)``, ``sample(step, n)`` and ``phase(step)`` (``TimestepSchedule``).

Convention: every ``t_max`` is exclusive, i.e. timesteps lie in [t_min, t_max).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from omegaconf import DictConfig
from scipy.optimize import least_squares, minimize
from torch import Tensor

from gaussianip.config import parse_config
from gaussianip.errors import ConfigError

NUM_TRAIN_TIMESTEPS = 1000  # SD 1.5's DDIM schedule: valid timesteps are 0..999


class TimestepSchedule(Protocol):
    """What the distillation loop needs from a schedule."""

    def planned(self, step: int) -> int: ...

    def sample(self, step: int, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def phase(self, step: int) -> int: ...


# --------------------------------------------------------------------------------------
# The two-piece Gaussian
# --------------------------------------------------------------------------------------


def two_piece_gaussian(t_max: int, peak: float, s1: float, s2: float) -> np.ndarray:
    """Probabilities [t_max] of the timesteps 0..t_max-1: ``exp(-(t-T)^2 / (2 s^2))`` with
    ``s = s1`` for t <= T and ``s = s2`` above, normalised to sum to 1.

    The integer grid (not the continuous density) because timesteps are integers and it is
    the definition of the authors' code, so its fitted numbers can be compared one to one.
    """
    t = np.arange(t_max, dtype=np.float64)
    width = np.where(t <= peak, s1, s2)
    weights = np.exp(-((t - peak) ** 2) / (2.0 * width**2))
    return weights / weights.sum()


def phase_masses_of(probs: np.ndarray, phase_bounds: tuple[int, int]) -> np.ndarray:
    """Mass [3] of ``probs`` on [0, b0), [b0, b1) and [b1, t_max)."""
    low, high = phase_bounds
    return np.array([probs[:low].sum(), probs[low:high].sum(), probs[high:].sum()])


FITS = ("reference", "least_squares")


def phase_mass_error(params: np.ndarray, cfg: AdaptiveScheduleConfig) -> float:
    """The reference's objective: the sum over the three phases of the squared difference
    between the density's mass and the target mass."""
    probs = two_piece_gaussian(cfg.t_max, *params)
    return float(np.sum((phase_masses_of(probs, cfg.phase_bounds) - cfg.target_masses) ** 2))


def fit_two_piece_gaussian(cfg: AdaptiveScheduleConfig) -> tuple[float, float, float]:
    """(T, s1, s2) whose phase masses best match ``cfg.target_masses``, from ``cfg.init``
    within the bounds (a few milliseconds).

    ``cfg.fit = "reference"``: the reference implementation's choice, its scalar objective
    (``phase_mass_error``) minimised by L-BFGS-B. It stops early, near (257.7, 62.2,
    279.1), and that point defines the reference's plan. ``"least_squares"``: the residual
    vector by bounded least squares, which converges further, to (256.4, 63.1, 282.9).
    The masses always sum to 1, so three targets are only two equations for three
    unknowns: the optimum is a curve and each solver returns the point its start leads to.
    """
    x0 = np.asarray(cfg.init, dtype=np.float64)
    if cfg.fit == "reference":
        bounds = list(zip(cfg.bounds_low, cfg.bounds_high, strict=True))
        result = minimize(phase_mass_error, x0, args=(cfg,), method="L-BFGS-B", bounds=bounds)
    else:

        def residuals(params: np.ndarray) -> np.ndarray:
            probs = two_piece_gaussian(cfg.t_max, *params)
            return phase_masses_of(probs, cfg.phase_bounds) - np.asarray(cfg.target_masses)

        result = least_squares(residuals, x0=x0, bounds=(cfg.bounds_low, cfg.bounds_high))
    peak, s1, s2 = (float(v) for v in result.x)
    return peak, s1, s2


def plan_timesteps(probs: np.ndarray, total_steps: int) -> np.ndarray:
    """Planned timestep [total_steps] of each step: the t whose upper-tail mass
    ``P(t' >= t)`` is closest to step / total_steps (an exact inverse CDF on the grid).

    A planned 0 (possible only when t = 0 has a large probability) is replaced by the last
    non-zero planned t, because t = 0 adds no noise and so distils nothing.
    """
    t_max = len(probs)
    tail = np.cumsum(probs[::-1])[::-1]  # tail[t] = P(t' >= t): falls from 1 to probs[-1]
    wanted = np.arange(total_steps) / total_steps
    # The tail falls as t rises, so the last t with tail >= wanted and the t after it
    # bracket the wanted mass; keep the closer one.
    above = np.searchsorted(-tail, -wanted, side="right") - 1  # tail[0] = 1, so above >= 0
    below = np.minimum(above + 1, t_max - 1)
    closer_above = tail[above] - wanted <= wanted - tail[below]
    plan = np.where(closer_above, above, below)
    return np.asarray(keep_last_nonzero(plan.tolist()), dtype=np.int64)


def keep_last_nonzero(plan: list[int]) -> list[int]:
    """Replace each planned 0 by the last non-zero planned t before it."""
    out = list(plan)
    for i in range(1, len(out)):
        if out[i] == 0:
            out[i] = out[i - 1]
    return out


# --------------------------------------------------------------------------------------
# GaussianIP's adaptive schedule
# --------------------------------------------------------------------------------------


@dataclass
class AdaptiveScheduleConfig:
    total_steps: int = 2400
    t_max: int = 800  # planned and sampled timesteps lie in [0, t_max)
    phase_bounds: tuple[int, int] = (350, 450)  # phases [0, 350), [350, 450), [450, t_max)
    target_masses: tuple[float, float, float] = (0.41, 0.21, 0.375)
    init: tuple[float, float, float] = (260.0, 60.0, 280.0)  # (T, s1, s2) where the fit starts
    bounds_low: tuple[float, float, float] = (200.0, 20.0, 100.0)
    bounds_high: tuple[float, float, float] = (400.0, 100.0, 300.0)
    fit: str = "reference"  # or "least_squares" (fit_two_piece_gaussian says how they differ)
    # (T, s1, s2) to use as they are instead of fitting.
    params: tuple[float, float, float] | None = None
    # Sampling rows: from step phase_start_steps[k] on, t is drawn from
    # [phase_lower_t[k], t_max) for k = 0 and [phase_lower_t[k], planned + margin) after.
    phase_start_steps: tuple[int, int, int, int] = (0, 700, 900, 1400)
    phase_lower_t: tuple[int, int, int, int] = (500, 400, 150, 20)
    margin: int = 50

    def __post_init__(self) -> None:
        _check_adaptive(self)


class AdaptiveTimestepSchedule:
    """GaussianIP's adaptive human-specific timestep schedule.

    With the defaults (the reference's fit) (T, s1, s2) = (257.72, 62.16, 279.11), and the
    plan falls from 799 at step 0 to 450 at step 900, 353 at step 1400 and 68 at step 2399
    (method.md), the reference's per-step Nelder-Mead plan at every step. The fit and the
    plan (an inverse CDF, not a per-step optimiser) are computed once, here, in
    milliseconds.
    """

    def __init__(self, cfg: AdaptiveScheduleConfig | None = None) -> None:
        self.cfg = cfg = cfg or AdaptiveScheduleConfig()  # checked when it is made
        params = fit_two_piece_gaussian(cfg) if cfg.params is None else cfg.params
        self.fitted_params: tuple[float, float, float] = tuple(float(v) for v in params)
        self.probs = two_piece_gaussian(cfg.t_max, *self.fitted_params)  # [t_max]
        self.plan = plan_timesteps(self.probs, cfg.total_steps)  # [total_steps]

    def phase_masses(self) -> np.ndarray:
        """Mass [3] of the fitted density on the coarse, intermediate and fine ranges."""
        return phase_masses_of(self.probs, self.cfg.phase_bounds)

    def planned(self, step: int) -> int:
        """Planned timestep of ``step``; steps outside [0, total_steps) take the nearest."""
        return int(self.plan[min(max(step, 0), len(self.plan) - 1)])

    def sample_range(self, step: int) -> tuple[int, int]:
        """[low, high) from which the views' timesteps at ``step`` are drawn.

        If planned + margin falls to the row's lower bound or below (not with the
        defaults), the range shrinks to the lower bound alone rather than being empty.
        """
        cfg = self.cfg
        row = max(k for k, start in enumerate(cfg.phase_start_steps) if step >= start)
        low = cfg.phase_lower_t[row]
        high = cfg.t_max if row == 0 else min(cfg.t_max, self.planned(step) + cfg.margin)
        return low, max(high, low + 1)

    def sample(self, step: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Timesteps [n] (long, CPU), uniform in ``sample_range(step)``."""
        low, high = self.sample_range(step)
        return torch.randint(low, high, (n,), generator=generator)

    def phase(self, step: int) -> int:
        """1 (coarse), 2 (intermediate) or 3 (fine): where the planned t lies."""
        t = self.planned(step)
        low, high = self.cfg.phase_bounds
        return 1 if t >= high else (2 if t >= low else 3)


# --------------------------------------------------------------------------------------
# Baselines for ablations
# --------------------------------------------------------------------------------------


def _phase_by_thirds(step: int, total_steps: int) -> int:
    """1, 2 or 3 for the first, second and last third of the steps (display only)."""
    return 1 + min(2, 3 * max(step, 0) // total_steps)


@dataclass
class LinearScheduleConfig:
    total_steps: int = 3600
    t_min: int = 20
    t_max: int = 980  # exclusive
    window: int = 50  # views draw t in [planned - window, planned + window]

    def __post_init__(self) -> None:
        _check_common(self.total_steps, self.t_min, self.t_max)
        if self.window < 0:
            raise ConfigError(f"window must be >= 0, got {self.window}; use e.g. 50.")


class LinearSchedule:
    """Planned t falls linearly from t_max - 1 at the first step to t_min at the last; the
    views draw t uniformly within ``window`` of it, clamped to [t_min, t_max)."""

    def __init__(self, cfg: LinearScheduleConfig | None = None) -> None:
        self.cfg = cfg or LinearScheduleConfig()  # checked when it is made

    def planned(self, step: int) -> int:
        cfg = self.cfg
        frac = min(max(step, 0), cfg.total_steps - 1) / max(cfg.total_steps - 1, 1)
        return round(cfg.t_max - 1 - frac * (cfg.t_max - 1 - cfg.t_min))

    def sample(self, step: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        t = self.planned(step)
        low = max(self.cfg.t_min, t - self.cfg.window)
        high = min(self.cfg.t_max, t + self.cfg.window + 1)
        return torch.randint(low, high, (n,), generator=generator)

    def phase(self, step: int) -> int:
        return _phase_by_thirds(step, self.cfg.total_steps)


@dataclass
class UniformScheduleConfig:
    total_steps: int = 3600
    t_min: int = 20
    t_max: int = 980  # exclusive

    def __post_init__(self) -> None:
        _check_common(self.total_steps, self.t_min, self.t_max)


class UniformSchedule:
    """t uniform in [t_min, t_max) at every step (DreamFusion); ``planned`` is the middle."""

    def __init__(self, cfg: UniformScheduleConfig | None = None) -> None:
        self.cfg = cfg or UniformScheduleConfig()  # checked when it is made

    def planned(self, step: int) -> int:
        return (self.cfg.t_min + self.cfg.t_max - 1) // 2

    def sample(self, step: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randint(self.cfg.t_min, self.cfg.t_max, (n,), generator=generator)

    def phase(self, step: int) -> int:
        return _phase_by_thirds(step, self.cfg.total_steps)


# --------------------------------------------------------------------------------------
# Construction by name, and config checks
# --------------------------------------------------------------------------------------

SCHEDULES: dict[str, tuple[type, type]] = {
    "adaptive": (AdaptiveTimestepSchedule, AdaptiveScheduleConfig),
    "linear": (LinearSchedule, LinearScheduleConfig),
    "uniform": (UniformSchedule, UniformScheduleConfig),
}


def build_timestep_schedule(
    name: str, cfg: dict[str, Any] | DictConfig | None = None, **overrides: Any
) -> TimestepSchedule:
    """A schedule by name ("adaptive", "linear", "uniform"), its config from ``cfg`` and
    keyword overrides, e.g. ``build_timestep_schedule("adaptive", total_steps=1200)``.
    Unknown names and keys raise ``ConfigError``."""
    if name not in SCHEDULES:
        raise ConfigError(
            f"Unknown timestep schedule '{name}'. Choose one of: {', '.join(SCHEDULES)}."
        )
    cls, config_cls = SCHEDULES[name]
    values = {**dict(cfg or {}), **overrides}
    return cls(parse_config(config_cls, values, "timestep_schedule_cfg"))


def _check_common(total_steps: int, t_min: int, t_max: int) -> None:
    if total_steps < 1:
        raise ConfigError(
            f"total_steps must be >= 1, got {total_steps}; set it to the number of steps."
        )
    if not 0 <= t_min < t_max <= NUM_TRAIN_TIMESTEPS:
        raise ConfigError(
            f"Timesteps must lie in [0, {NUM_TRAIN_TIMESTEPS}): need 0 <= t_min < t_max <= "
            f"{NUM_TRAIN_TIMESTEPS} (t_max exclusive), got t_min={t_min}, t_max={t_max}."
        )


def _check_length(name: str, values: Any, length: int) -> None:
    if len(values) != length:
        raise ConfigError(f"{name} needs {length} values, got {list(values)}.")


def _check_adaptive(cfg: AdaptiveScheduleConfig) -> None:
    _check_common(cfg.total_steps, 0, cfg.t_max)
    for name, length in [
        ("phase_bounds", 2), ("target_masses", 3), ("init", 3), ("bounds_low", 3),
        ("bounds_high", 3), ("phase_start_steps", 4), ("phase_lower_t", 4),
    ]:  # fmt: skip
        _check_length(name, getattr(cfg, name), length)
    low, high = cfg.phase_bounds
    if not 0 < low < high < cfg.t_max:
        raise ConfigError(
            f"phase_bounds must satisfy 0 < low < high < t_max={cfg.t_max}, got {[low, high]}."
        )
    masses = list(cfg.target_masses)
    if min(masses) < 0 or abs(sum(masses) - 1.0) > 0.02:
        raise ConfigError(
            f"target_masses must be >= 0 and add up to about 1 (within 0.02), got {masses} "
            f"(sum {sum(masses):.3f})."
        )
    if cfg.fit not in FITS:
        raise ConfigError(f"fit must be one of {list(FITS)}, got {cfg.fit!r}.")
    lo, hi, init = list(cfg.bounds_low), list(cfg.bounds_high), list(cfg.init)
    if lo[1] <= 0 or lo[2] <= 0 or any(a >= b for a, b in zip(lo, hi, strict=True)):
        raise ConfigError(
            f"bounds_low must be below bounds_high, with positive widths s1, s2; got "
            f"bounds_low={lo}, bounds_high={hi}."
        )
    if any(not a <= x <= b for a, x, b in zip(lo, init, hi, strict=True)):
        raise ConfigError(f"init={init} must lie within bounds_low={lo} and bounds_high={hi}.")
    if cfg.params is not None:
        _check_length("params", cfg.params, 3)
        if min(cfg.params[1:]) <= 0:
            raise ConfigError(f"params (T, s1, s2) need positive widths, got {list(cfg.params)}.")
    starts = list(cfg.phase_start_steps)
    if starts[0] != 0 or starts != sorted(starts):
        raise ConfigError(f"phase_start_steps must start at 0 and not decrease, got {starts}.")
    if any(not 0 <= t < cfg.t_max for t in cfg.phase_lower_t):
        raise ConfigError(
            f"phase_lower_t must lie in [0, t_max={cfg.t_max}), got {list(cfg.phase_lower_t)}."
        )
    if cfg.margin < 0:
        raise ConfigError(f"margin must be >= 0, got {cfg.margin}; the method uses 50.")
