"""The design card's ``configs/`` presets (issue 14): ``extends:`` in the config loader,
the bench and test presets, and each of the paper's ablations run on the tiny prior for a
few steps with a check that the ablation took effect."""

from pathlib import Path

import pytest
import torch
import yaml

from gaussianip.engine.config import load_run_config, parse_run_config
from gaussianip.errors import ConfigError
from gaussianip.paths import REPO_ROOT

CONFIGS = REPO_ROOT / "configs"
MAIN = REPO_ROOT / "custom/gaussianip/configs/gaussianip.yaml"
ABLATIONS = ("sds-3600", "hds-uniform", "hds-linear", "ahds", "vcr-off")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------ extends


def test_extends_merges_parents_in_order_then_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "base.yaml", "a: 1\nb: {c: 2, d: [1, 2]}\nsteps: 10\n"
                                   "total: ${add:${steps},5}\n")  # fmt: skip
    _write(tmp_path / "sub" / "mid.yaml", "b: {c: 3}\ne: mid\n")
    child = _write(tmp_path / "sub" / "child.yaml",
                   "extends: [../base.yaml, mid.yaml]\nb: {d: [9]}\nsteps: 20\n")  # fmt: skip
    cfg = load_run_config(child, ["e=cli"])
    assert cfg.a == 1 and cfg.b.c == 3 and list(cfg.b.d) == [9]  # lists are replaced
    assert cfg.e == "cli" and "extends" not in cfg
    assert cfg.total == 25  # references resolve after the merge: the child's steps count


def test_extends_errors_name_the_files(tmp_path):
    a = _write(tmp_path / "a.yaml", "extends: b.yaml\nx: 1\n")
    _write(tmp_path / "b.yaml", "extends: a.yaml\ny: 2\n")
    with pytest.raises(ConfigError, match=r"cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_run_config(a, [])
    missing = _write(tmp_path / "m.yaml", "extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"'extends: nowhere.yaml' in .*m\.yaml.* names no file"):
        load_run_config(missing, [])
    bad = _write(tmp_path / "bad.yaml", "extends: {a: 1}\n")
    with pytest.raises(ConfigError, match="must be a path or a list of paths"):
        load_run_config(bad, [])


def test_presets_load_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths from the repository root still work
    paper = load_run_config("configs/bench/paper.yaml", [])
    assert paper.system.prior.preset == "random" and paper.data.height == 1024
    assert load_run_config("configs/bench/render512.yaml", []).data.height == 512
    fast = load_run_config("configs/bench/fast.yaml", [])
    assert fast.system.stage1.steps == 1200 and fast.system.prior.preset == "random"
    assert load_run_config("configs/test/tiny.yaml", []).system.prior.preset == "tiny"
    onepass = parse_run_config(load_run_config("configs/bench/onepass.yaml", []))
    assert onepass.guidance.micro_batch == 0 and onepass.prior.vae_checkpoint_blocks == 2
    assert onepass.prior.compile_networks == ["vae", "unet", "controlnet"]
    assert onepass.stage1.steps == 2400 and onepass.prior.preset == "random"


@pytest.mark.parametrize("name", ["paper.yaml", "fast.yaml"])
def test_shipped_configs_replay_the_unet_as_cuda_graphs_over_compiled_networks(name):
    """Round 5's measured configuration (BENCHMARKS.md): all three networks compiled, the
    UNet + ControlNet call replayed as CUDA graphs of our own, not inductor's. (The bench
    presets are the shipped configs with the random-weight prior: no weights here.)"""
    prior = parse_run_config(load_run_config(CONFIGS / "bench" / name, [])).prior
    assert prior.compile and prior.compile_networks == ["vae", "unet", "controlnet"]
    assert prior.cuda_graphs and prior.compile_mode == "default"


def test_bench_defaults_to_the_paper_preset():
    import argparse

    from omegaconf import OmegaConf

    from gaussianip.engine.bench import BENCH_OVERRIDES, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert args.config == "configs/bench/paper.yaml"
    preset = load_run_config(args.config, [])
    for override in BENCH_OVERRIDES:  # the preset holds the bench's own settings
        key, value = override.split("=")
        assert str(OmegaConf.select(preset, key)).lower() == value, key


# ------------------------------------------------------------------ ablations


def _own_keys(name: str) -> dict:
    """The keys an ablation preset sets itself (not the ones it extends)."""
    values = yaml.safe_load((CONFIGS / "ablations" / f"{name}.yaml").read_text())
    assert values.pop("extends") == "../../custom/gaussianip/configs/gaussianip.yaml"
    return values


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_presets_change_only_their_keys(name):
    from omegaconf import OmegaConf

    preset = _flatten(OmegaConf.to_container(load_run_config(CONFIGS / "ablations" /
                                                             f"{name}.yaml", [])))  # fmt: skip
    main = _flatten(OmegaConf.to_container(load_run_config(MAIN, [])))
    changed = {k for k in preset.keys() | main.keys() if preset.get(k) != main.get(k)}
    own = _flatten(_own_keys(name))
    derived = {"trainer.max_steps"} if "system.stage1.steps" in changed else set()
    assert changed == {k for k in own if own[k] != main.get(k)} | derived


def _tiny_ablation(name: str, tmp_path: Path, extra: list[str]):
    """The ablation's own keys on top of the CI preset, shortened to a few steps. An
    ablation that names another schedule replaces the tiny preset's adaptive-schedule
    settings (a merge would keep keys the other schedule does not have)."""
    from omegaconf import OmegaConf

    from gaussianip.engine.config import load_config_file

    own = _own_keys(name)
    base = load_config_file(CONFIGS / "test" / "tiny.yaml")
    steps = ["system.stage1.steps=3"]
    if "timestep_schedule_cfg" in own.get("system", {}).get("guidance", {}):
        base.system.guidance.timestep_schedule_cfg = {}
        steps.append("system.guidance.timestep_schedule_cfg.total_steps=3")
    file = tmp_path / f"{name}.yaml"
    OmegaConf.save(OmegaConf.merge(base, own), file)
    return parse_run_config(load_run_config(file, steps + extra))


def _spy(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.parametrize(
    ("name", "mode", "schedule"),
    [
        ("sds-3600", "sds", "UniformSchedule"),
        ("hds-uniform", "hds", "UniformSchedule"),
        ("hds-linear", "hds", "LinearSchedule"),
        ("ahds", "hds", "AdaptiveTimestepSchedule"),
    ],
)
def test_distillation_ablations_run_on_the_tiny_prior(name, mode, schedule, tmp_path,
                                                      monkeypatch):  # fmt: skip
    from gaussianip.engine.pipeline import GaussianIPPipeline
    from gaussianip.guidance import hds_guidance

    settings = _tiny_ablation(name, tmp_path, [])
    pipeline = GaussianIPPipeline(settings, "cpu")
    timesteps = pipeline.guidance.schedule
    assert type(timesteps).__name__ == schedule
    hds_calls = _spy(monkeypatch, hds_guidance, "hds_gradient")
    sds_calls = _spy(monkeypatch, hds_guidance, "sds_gradient")
    seen = []
    for step in range(2):  # of 3: stage 1 stays open
        logs = pipeline.train_step(step)
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values()), logs
        seen.append(timesteps.sample(step, 64, torch.Generator().manual_seed(0)))
    views, per_pass = settings.data.batch_size, settings.guidance.micro_batch
    calls = 2 * (-(-views // per_pass) if per_pass else 1)  # 2 steps, one gradient a pass
    assert (len(hds_calls), len(sds_calls)) == ((calls, 0) if mode == "hds" else (0, calls))
    t = torch.cat(seen)
    if schedule == "UniformSchedule":  # t over [20, 980) at every step
        assert int(t.min()) < 200 and int(t.max()) > 800
    if name == "sds-3600":
        assert load_run_config(CONFIGS / "ablations/sds-3600.yaml", []).trainer.max_steps == 4400


def test_vcr_off_ablation_refines_every_view_alone(tmp_path, monkeypatch):
    from gaussianip.engine.pipeline import GaussianIPPipeline
    from gaussianip.refine import vcr

    short = ["system.vcr.refine_steps=1", "data.ring_size=8"]
    settings = _tiny_ablation("vcr-off", tmp_path, short)
    assert settings.vcr.mutual_attention is False
    pipeline = GaussianIPPipeline(settings, "cpu")
    shared = _spy(monkeypatch, vcr, "vcr_processors")
    calls = _spy(monkeypatch, vcr.ViewConsistentRefiner, "_guided_noise")
    for step in range(3):
        pipeline.train_step(step)
    refined = pipeline.refine()
    assert refined.shape[0] == 8 and torch.isfinite(refined).all()
    assert shared == []  # no attention sharing
    assert len(calls) == 8 // settings.vcr.chunk_size  # one group: all views, in chunks
