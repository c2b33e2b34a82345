"""The memory plan: the speed-for-memory switches follow the GPU's free memory (or a cap)."""

from __future__ import annotations

import pytest
import torch

from gaussianip import memory_plan
from gaussianip.engine.reconstruction import ReconstructionConfig
from gaussianip.errors import ConfigError
from gaussianip.guidance.hds_guidance import HDSGuidanceConfig
from gaussianip.memory_plan import (
    PLANS,
    MemoryConfig,
    follow_plan,
    memory_budget_gib,
    plan_memory,
)
from gaussianip.refine import VCRConfig

GIB = 2**30


def test_the_rule_picks_large_from_the_threshold_up_and_small_below_it():
    cfg = MemoryConfig(large_min_gib=24)
    assert plan_memory(24.0, cfg).mode == "large"
    assert plan_memory(139.5, cfg).mode == "large"
    assert plan_memory(23.99, cfg).mode == "small"
    assert plan_memory(7.5, cfg).mode == "small"
    assert plan_memory(None, cfg).mode == "small"  # the CPU
    assert "23.99 GiB free < 24 GiB" in plan_memory(23.99, cfg).reason


def test_a_mode_overrides_the_rule_whatever_the_budget():
    assert plan_memory(139.0, MemoryConfig(mode="small")).mode == "small"
    assert plan_memory(2.0, MemoryConfig(mode="large")).mode == "large"
    assert plan_memory(None, MemoryConfig(mode="large")).reason == "system.memory.mode=large"


def test_each_plan_sets_the_four_switches():
    small, large = plan_memory(4.0), plan_memory(100.0)
    assert (small.micro_batch, small.vcr_chunk_size, small.lpips_checkpoint) == (2, 4, True)
    assert (large.micro_batch, large.vcr_chunk_size, large.lpips_checkpoint) == (0, 32, False)
    assert (small.lpips_target_cache, large.lpips_target_cache) == (False, True)
    assert large.as_dict()["budget_gib"] == 100.0 and set(PLANS) == {"small", "large"}


def test_values_set_in_the_config_stay_and_nulls_follow_the_plan():
    guidance, vcr = HDSGuidanceConfig(micro_batch=1), VCRConfig()
    reconstruction = ReconstructionConfig(lpips_target_cache=False)
    assert (vcr.chunk_size, reconstruction.lpips_checkpoint) == (None, None)
    follow_plan(plan_memory(100.0), guidance, vcr, reconstruction)
    assert guidance.micro_batch == 1 and reconstruction.lpips_target_cache is False  # the user's
    assert (vcr.chunk_size, reconstruction.lpips_checkpoint) == (32, False)
    reconstruction = ReconstructionConfig()
    follow_plan(plan_memory(4.0), HDSGuidanceConfig(), VCRConfig(), reconstruction)
    assert (reconstruction.lpips_checkpoint, reconstruction.lpips_target_cache) == (True, False)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"mode": "huge"}, "auto, small, large"),
        ({"large_min_gib": 0}, "GiB > 0"),
        ({"large_min_gib": float("nan")}, "GiB > 0"),
    ],  # fmt: skip
)
def test_bad_memory_settings_are_refused_with_the_fix(values, match):
    with pytest.raises(ConfigError, match=match):
        MemoryConfig(**values)


def test_the_budget_is_the_free_memory_or_the_cap_where_lower(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=0: (130 * GIB, 139 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index=0: 1 * GIB)
    monkeypatch.setattr(memory_plan, "_caps_gib", {})
    assert memory_budget_gib(torch.device("cpu")) is None
    assert memory_budget_gib(torch.device("cuda")) == 130.0
    memory_plan.record_cap(0, 8.0)  # what --memory-cap-gib 8 records
    assert memory_budget_gib(torch.device("cuda:0")) == 7.0  # 8 GiB less 1 already reserved
    assert plan_memory(memory_budget_gib(torch.device("cuda"))).mode == "small"


def test_shipped_configs_leave_the_switches_to_the_plan():
    from gaussianip.engine.bench import BENCH_OVERRIDES
    from gaussianip.engine.config import load_run_config, parse_run_config
    from gaussianip.paths import CONFIG_DIR

    for name in ("gaussianip.yaml", "gaussianip-fast.yaml"):
        config = load_run_config(CONFIG_DIR / name, BENCH_OVERRIDES)
        settings = parse_run_config(config)
        assert settings.memory.mode == "auto", name
        assert settings.guidance.micro_batch is None and settings.vcr.chunk_size is None
        assert settings.reconstruction.lpips_checkpoint is None
        assert settings.reconstruction.lpips_target_cache is None


def test_unknown_memory_key_names_the_closest(tmp_path):
    from gaussianip.engine.config import load_run_config, parse_run_config
    from gaussianip.paths import CONFIG_DIR

    config = load_run_config(CONFIG_DIR / "gaussianip-tiny.yaml", ["system.memory.mod=large"])
    with pytest.raises(ConfigError, match="Did you mean 'mode'"):
        parse_run_config(config)
