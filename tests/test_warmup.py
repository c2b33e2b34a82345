"""``gaussianip warmup``: the first steps that compile, run ahead of the first run."""

import os

import pytest

from gaussianip import cli, paths, warmup
from gaussianip.errors import AssetError, ConfigError

TINY = ["system.prior.preset=tiny"]  # after the benchmark's overrides: tiny networks


def test_warm_compile_cache_runs_a_stage1_and_a_reconstruction_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    from gaussianip.engine import reconstruction, stage1

    for cls, name in ((stage1.Stage1Trainer, "stage1"), (reconstruction.Reconstructor, "recon")):
        original = cls.step

        def spy(self, step, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, step))
            return _original(self, step, *args, **kwargs)

        monkeypatch.setattr(cls, "step", spy)
    seconds = warmup.warm_compile_cache("gaussianip-tiny.yaml", "cpu", TINY)
    assert calls == [("stage1", 0), ("recon", 0)]
    assert set(seconds) == {"build", "stage1_first_step", "reconstruction_first_step"}
    assert all(s > 0 for s in seconds.values())
    assert list(tmp_path.iterdir()) == []  # no run folder, no outputs: only the cache


def test_warm_up_checks_every_config_before_building(monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(warmup, "warm_compile_cache", lambda *a, **k: built.append(a) or {})
    with pytest.raises(AssetError, match="no-such.yaml"):
        warmup.warm_up(["gaussianip-tiny.yaml", tmp_path / "no-such.yaml"], "cpu", TINY)
    with pytest.raises(ConfigError, match="steps"):
        warmup.warm_up(["gaussianip-tiny.yaml"], "cpu", [*TINY, "system.stage1.steps=-1"])
    assert built == []


def test_warmup_on_the_cpu_is_refused_in_seconds(capsys):
    assert cli.main(["warmup", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "nothing to prepare" in err and "Traceback" not in err
    assert "use --device cuda" not in err.lower()  # no circle: cuda was refused just before


def test_the_shipped_configs_are_warmed_by_default():
    assert [p.name for p in warmup.SHIPPED_CONFIGS] == ["gaussianip.yaml", "gaussianip-fast.yaml"]
    assert all(p.is_file() for p in warmup.SHIPPED_CONFIGS)


def test_both_hosts_share_one_compile_cache_and_a_user_setting_wins(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    assert paths.use_compile_cache() == str(paths.COMPILE_CACHE)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(paths.COMPILE_CACHE)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    assert paths.use_compile_cache() == str(tmp_path)
