"""Diffusion-timestep schedules for distillation.

``AdaptiveTimestepSchedule`` is GaussianIP's human-specific schedule (method.md, "Adaptive
timestep schedule"): a two-piece Gaussian density over t in [0, t_max), fitted once so that
the coarse / intermediate / fine phases get the prescribed mass; step i of N is planned at
the t whose upper-tail mass is i / N, and the sampled t of each view is drawn between a
per-phase lower bound and the planned t + 50. ``LinearSchedule`` and ``UniformSchedule``
are the usual baselines, for ablations. All three share ``planned``, ``sample``, ``phase``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import least_squares
from scipy.special import erf
from torch import Tensor

from gaussianip.errors import ConfigError


@dataclass
class AdaptiveScheduleConfig:
    total_steps: int = 2400
    t_max: int = 800
    phase_bounds: tuple[int, int] = (350, 450)  # phases [0,350), [350,450), [450,t_max)
    target_masses: tuple[float, float, float] = (0.41, 0.21, 0.375)
    init: tuple[float, float, float] = (260.0, 60.0, 280.0)  # (T, s1, s2) start of the fit
    bounds_low: tuple[float, float, float] = (200.0, 20.0, 100.0)
    bounds_high: tuple[float, float, float] = (400.0, 100.0, 300.0)
    # Sampling: steps before each start use that row's lower bound (and t_max as the top
    # for the first row; planned + margin for the others).
    phase_start_steps: tuple[int, int, int, int] = (0, 700, 900, 1400)
    phase_lower_t: tuple[int, int, int, int] = (500, 400, 150, 20)
    margin: int = 50


def _two_piece_cdf(t: np.ndarray, peak: float, s1: float, s2: float) -> np.ndarray:
    """Unnormalised CDF from -inf of the two-piece Gaussian (left width s1, right s2)."""
    root2 = math.sqrt(2.0)
    left = s1 * math.sqrt(math.pi / 2) * (1 + erf((np.minimum(t, peak) - peak) / (root2 * s1)))
    right = s2 * math.sqrt(math.pi / 2) * erf((np.maximum(t, peak) - peak) / (root2 * s2))
    return left + right


def phase_masses(
    params: tuple[float, float, float], t_max: int, bounds: tuple[int, int]
) -> np.ndarray:
    """Mass of the density (normalised on [0, t_max)) on the three phases."""
    edges = np.array([0.0, bounds[0], bounds[1], t_max])
    cdf = _two_piece_cdf(edges, *params)
    return np.diff(cdf) / (cdf[-1] - cdf[0])


def keep_last_nonzero(plan: list[int]) -> list[int]:
    """Replace each planned 0 by the last non-zero planned t (t = 0 distils nothing)."""
    out = list(plan)
    for i in range(1, len(out)):
        if out[i] == 0:
            out[i] = out[i - 1]
    return out


class AdaptiveTimestepSchedule:
    """GaussianIP's adaptive human-specific timestep schedule.

    With the defaults the fit gives about (T, s1, s2) = (258, 62, 279) and the plan falls
    from 799 at step 0 to 450 at step 900, about 353 at step 1400 and about 68 at the last
    step.
    """

    def __init__(self, cfg: AdaptiveScheduleConfig | None = None) -> None:
        self.cfg = cfg = cfg or AdaptiveScheduleConfig()
        _check(cfg)
        self.fitted_params = self._fit()
        self._plan = self._make_plan()

    def _fit(self) -> tuple[float, float, float]:
        cfg = self.cfg
        target = np.asarray(cfg.target_masses)
        result = least_squares(
            lambda p: phase_masses(tuple(p), cfg.t_max, cfg.phase_bounds) - target,
            x0=np.asarray(cfg.init),
            bounds=(np.asarray(cfg.bounds_low), np.asarray(cfg.bounds_high)),
        )
        return tuple(float(v) for v in result.x)  # type: ignore[return-value]

    def _make_plan(self) -> list[int]:
        """Planned t of every step by inverting the upper-tail mass on a fine grid."""
        cfg = self.cfg
        grid = np.linspace(0.0, cfg.t_max, cfg.t_max * 16 + 1)
        cdf = _two_piece_cdf(grid, *self.fitted_params)
        tail = (cdf[-1] - cdf) / (cdf[-1] - cdf[0])  # decreasing from 1 to 0
        wanted = np.arange(cfg.total_steps) / cfg.total_steps
        t = np.interp(wanted, tail[::-1], grid[::-1])
        return keep_last_nonzero(np.clip(np.floor(t), 0, cfg.t_max - 1).astype(int).tolist())

    def phase_masses(self) -> np.ndarray:
        return phase_masses(self.fitted_params, self.cfg.t_max, self.cfg.phase_bounds)

    def planned(self, step: int) -> int:
        """The planned timestep of ``step`` (steps past the end keep the last one)."""
        return self._plan[min(max(step, 0), len(self._plan) - 1)]

    def sample_range(self, step: int) -> tuple[int, int]:
        """[low, high) of the per-view timesteps at ``step``."""
        cfg = self.cfg
        row = max(i for i, start in enumerate(cfg.phase_start_steps) if step >= start)
        low = cfg.phase_lower_t[row]
        high = cfg.t_max if row == 0 else min(cfg.t_max, self.planned(step) + cfg.margin)
        return low, max(high, low + 1)

    def sample(self, step: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Timesteps [n] for the views of ``step``."""
        low, high = self.sample_range(step)
        return torch.randint(low, high, (n,), generator=generator)

    def phase(self, step: int) -> int:
        """1 (coarse), 2 (intermediate) or 3 (fine), from the planned timestep."""
        t = self.planned(step)
        low, high = self.cfg.phase_bounds
        return 1 if t >= high else (2 if t >= low else 3)


@dataclass
class LinearScheduleConfig:
    total_steps: int = 3600
    t_min: int = 20
    t_max: int = 980
    window: int = 50  # sample in [planned - window, planned + window)


class LinearSchedule:
    """t annealed linearly from t_max to t_min, sampled in a window around the plan."""

    def __init__(self, cfg: LinearScheduleConfig | None = None) -> None:
        self.cfg = cfg = cfg or LinearScheduleConfig()
        _check_common(cfg.total_steps, cfg.t_min, cfg.t_max)

    def planned(self, step: int) -> int:
        frac = min(max(step, 0), self.cfg.total_steps) / self.cfg.total_steps
        return round(self.cfg.t_max - frac * (self.cfg.t_max - self.cfg.t_min))

    def sample(self, step: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        t = self.planned(step)
        low = max(self.cfg.t_min, t - self.cfg.window)
        high = min(self.cfg.t_max, t + self.cfg.window)
        return torch.randint(low, max(high, low + 1), (n,), generator=generator)

    def phase(self, step: int) -> int:
        return 1 + min(2, 3 * step // max(1, self.cfg.total_steps))


@dataclass
class UniformScheduleConfig:
    total_steps: int = 3600
    t_min: int = 20
    t_max: int = 980


class UniformSchedule:
    """t uniform in [t_min, t_max) at every step (DreamFusion)."""

    def __init__(self, cfg: UniformScheduleConfig | None = None) -> None:
        self.cfg = cfg = cfg or UniformScheduleConfig()
        _check_common(cfg.total_steps, cfg.t_min, cfg.t_max)

    def planned(self, step: int) -> int:
        return (self.cfg.t_min + self.cfg.t_max) // 2

    def sample(self, step: int, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randint(self.cfg.t_min, self.cfg.t_max, (n,), generator=generator)

    def phase(self, step: int) -> int:
        return 1 + min(2, 3 * step // max(1, self.cfg.total_steps))


SCHEDULES = {
    "adaptive": (AdaptiveTimestepSchedule, AdaptiveScheduleConfig),
    "linear": (LinearSchedule, LinearScheduleConfig),
    "uniform": (UniformSchedule, UniformScheduleConfig),
}


def build_timestep_schedule(name: str, cfg: dict | None = None):
    """Build a schedule by name ("adaptive", "linear", "uniform") from a config dict."""
    from gaussianip.config import parse_config

    if name not in SCHEDULES:
        raise ConfigError(
            f"Unknown timestep schedule '{name}'. Choose one of: {', '.join(SCHEDULES)}."
        )
    cls, config_cls = SCHEDULES[name]
    return cls(parse_config(config_cls, cfg, "timestep_schedule"))


def _check_common(total_steps: int, t_min: int, t_max: int) -> None:
    if total_steps < 1:
        raise ConfigError(f"total_steps must be >= 1, got {total_steps}.")
    if not 0 <= t_min < t_max <= 1000:
        raise ConfigError(
            f"Timesteps must satisfy 0 <= t_min < t_max <= 1000, got t_min={t_min}, t_max={t_max}."
        )


def _check(cfg: AdaptiveScheduleConfig) -> None:
    _check_common(cfg.total_steps, 0, cfg.t_max)
    low, high = cfg.phase_bounds
    if not 0 < low < high < cfg.t_max:
        raise ConfigError(
            f"phase_bounds must satisfy 0 < low < high < t_max={cfg.t_max}, got {[low, high]}."
        )
    if abs(sum(cfg.target_masses) - 1.0) > 0.02:
        raise ConfigError(
            f"target_masses must add up to about 1, got {list(cfg.target_masses)} "
            f"(sum {sum(cfg.target_masses):.3f})."
        )
    if list(cfg.phase_start_steps) != sorted(cfg.phase_start_steps) or cfg.phase_start_steps[0]:
        raise ConfigError(
            f"phase_start_steps must start at 0 and increase, got {list(cfg.phase_start_steps)}."
        )
