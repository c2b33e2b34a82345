import pytest
import torch

import gaussianip
from gaussianip.errors import ConfigError
from gaussianip.guidance import (
    AdaptiveTimestepSchedule,
    LinearSchedule,
    UniformSchedule,
    build_timestep_schedule,
)
from gaussianip.guidance.schedule import keep_last_nonzero


@pytest.fixture(scope="module")
def schedule() -> AdaptiveTimestepSchedule:
    return gaussianip.AdaptiveTimestepSchedule()


def test_fitted_masses_and_parameters(schedule):
    masses = schedule.phase_masses()
    assert masses == pytest.approx([0.41, 0.21, 0.375], abs=0.01)
    peak, s1, s2 = schedule.fitted_params
    # method.md: "T about 258, s1 about 62, s2 about 279".
    assert peak == pytest.approx(258, abs=3)
    assert s1 == pytest.approx(62, abs=3)
    assert s2 == pytest.approx(279, abs=6)


def test_plan_values_and_monotone(schedule):
    assert schedule.planned(0) == 799
    assert schedule.planned(900) == pytest.approx(450, abs=2)
    assert schedule.planned(1400) == pytest.approx(353, abs=3)
    assert schedule.planned(2399) == pytest.approx(68, abs=5)
    plan = [schedule.planned(i) for i in range(2400)]
    assert all(a >= b for a, b in zip(plan, plan[1:], strict=False))
    assert min(plan) > 0
    assert schedule.planned(5000) == plan[-1]


@pytest.mark.parametrize(
    ("step", "low"),
    [(0, 500), (699, 500), (700, 400), (899, 400), (900, 150), (1399, 150), (1400, 20), (2399, 20)],
)
def test_sampling_ranges_per_phase(schedule, step, low):
    high = 800 if step < 700 else schedule.planned(step) + 50
    t = schedule.sample(step, 4000, generator=torch.Generator().manual_seed(step))
    assert t.dtype == torch.long and t.shape == (4000,)
    assert t.min() >= low and t.max() < high
    # Uniform over the range: both ends are reached with 4000 draws.
    assert t.min() <= low + (high - low) // 20 and t.max() >= high - 1 - (high - low) // 20


def test_sampling_is_deterministic_with_a_seed(schedule):
    a = schedule.sample(1000, 8, generator=torch.Generator().manual_seed(3))
    b = schedule.sample(1000, 8, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_phases_follow_the_planned_timestep(schedule):
    assert schedule.phase(0) == 1 and schedule.phase(899) == 1
    assert schedule.phase(1000) == 2
    assert schedule.phase(2000) == 3


def test_planned_zero_falls_back_to_last_non_zero():
    assert keep_last_nonzero([799, 400, 3, 0, 0]) == [799, 400, 3, 3, 3]
    assert keep_last_nonzero([5, 1]) == [5, 1]


def test_ablation_schedules():
    lin = LinearSchedule()
    assert lin.planned(0) == 980 and lin.planned(3600) == 20
    t = lin.sample(1800, 1000, generator=torch.Generator().manual_seed(0))
    assert t.min() >= lin.planned(1800) - 50 and t.max() < lin.planned(1800) + 50
    uni = UniformSchedule()
    t = uni.sample(0, 1000, generator=torch.Generator().manual_seed(0))
    assert t.min() >= 20 and t.max() < 980
    assert isinstance(build_timestep_schedule("linear", {"total_steps": 10}), LinearSchedule)


@pytest.mark.parametrize(
    ("name", "cfg", "message"),
    [
        ("cosine", None, "Unknown timestep schedule 'cosine'"),
        ("adaptive", {"total_steps": 0}, "total_steps must be >= 1"),
        ("adaptive", {"target_masses": [0.5, 0.5, 0.5]}, "add up to about 1"),
        ("adaptive", {"phase_bounds": [500, 400]}, "phase_bounds"),
        ("uniform", {"t_max": 2000}, "t_max"),
        ("adaptive", {"totl_steps": 5}, "Did you mean 'total_steps'"),
    ],
)
def test_config_errors(name, cfg, message):
    with pytest.raises(ConfigError, match=message):
        build_timestep_schedule(name, cfg)
