"""``gaussianip run``: the method from one YAML config (the threestudio layout).

Reads the ``data`` and ``system`` sections of a config such as
``custom/gaussianip/configs/gaussianip.yaml``, builds the body, the Gaussians, the
identity, the prior and the guidance, runs stage 1 and writes ``stage1.ply`` and
validation renders into ``<exp_root_dir>/<name>@<timestamp>/save/`` (a new folder each
run, so nothing is overwritten). Refinement and reconstruction are not part of this
version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig, OmegaConf

from gaussianip.body import BodyConfig, build_body_model
from gaussianip.config import construct_config, parse_config
from gaussianip.data import HumanCameraConfig, HumanCameraSampler
from gaussianip.engine.stage1 import Stage1Config, Stage1Trainer
from gaussianip.errors import AssetError, ConfigError
from gaussianip.gaussians import GaussianConfig, HumanDensifyStrategy, save_ply
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.images import image_row, save_png
from gaussianip.paths import CONFIG_DIR, resolve_asset

if TYPE_CHECKING:
    from gaussianip.guidance.hds_guidance import HDSGuidance


@dataclass
class SystemConfig:
    face_image: str | None = "load/portraits/eileen_collins_nasa.png"
    repel_face_image: str | None = "load/portraits/grace_hopper_us_navy.jpg"
    face_analyser: str = "buffalo_l"  # an insightface pack, or "stand-in" (tests only)
    face_analyser_root: str | None = None
    body: dict = field(default_factory=dict)
    prior: dict = field(default_factory=dict)
    prompt_processor: dict = field(default_factory=dict)
    guidance: dict = field(default_factory=dict)
    geometry: dict = field(default_factory=dict)
    stage1: dict = field(default_factory=dict)


@dataclass
class PromptConfig:
    prompt: str | None = "a photo of a person"
    negative_prompt: str | None = None


def load_run_config(path: str | Path, overrides: list[str]) -> DictConfig:
    """The YAML at ``path`` (or a name in our configs folder) with ``key=value`` overrides."""
    file = Path(path)
    if not file.exists() and (CONFIG_DIR / file.name).exists():
        file = CONFIG_DIR / file.name
    if not file.exists():
        raise AssetError(f"Config file not found: '{path}'. Configs ship in '{CONFIG_DIR}'.")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"Overrides must be key=value, got {bad}.")
    return OmegaConf.merge(OmegaConf.load(file), OmegaConf.from_dotlist(overrides))


def build_stage1(
    config: DictConfig | dict, device: str = "cpu"
) -> tuple[Stage1Trainer, HDSGuidance]:
    """Everything stage 1 needs, from the ``data`` and ``system`` sections of a config.
    User errors are raised before any model is built."""
    from gaussianip.faces import build_face_analyser, extract_identity
    from gaussianip.guidance.hds_guidance import HDSGuidance, HDSGuidanceConfig, body_pose_images
    from gaussianip.prior.human_prior import HumanPrior, PriorConfig

    config = OmegaConf.create(config) if isinstance(config, dict) else config
    # Everything a user can get wrong is checked before any model is built.
    system = parse_config(SystemConfig, config.get("system"), "system")
    data_cfg = parse_config(HumanCameraConfig, config.get("data"), "data")
    prompt = parse_config(PromptConfig, system.prompt_processor, "system.prompt_processor")
    if not prompt.prompt or not prompt.prompt.strip():
        raise ConfigError("system.prompt_processor.prompt is empty; describe the person.")
    guidance_values = dict(system.guidance, prompt=prompt.prompt)
    if prompt.negative_prompt is not None:
        guidance_values["negative_prompt"] = prompt.negative_prompt
    guidance_cfg = parse_config(HDSGuidanceConfig, guidance_values, "system.guidance")
    prior_cfg = parse_config(PriorConfig, system.prior, "system.prior")
    stage1_cfg = parse_config(Stage1Config, system.stage1, "system.stage1")
    geometry = dict(system.geometry)
    unknown = set(geometry) - {"gaussians", "densify"}
    if unknown:
        raise ConfigError(
            f"Unknown keys in system.geometry: {sorted(unknown)}; use gaussians, densify."
        )
    gaussian_cfg = parse_config(
        GaussianConfig, geometry.get("gaussians"), "system.geometry.gaussians"
    )
    strategy = construct_config(
        HumanDensifyStrategy, geometry.get("densify"), "system.geometry.densify"
    )
    body = build_body_model(**vars(parse_config(BodyConfig, system.body, "system.body")))
    portraits = [system.face_image, system.repel_face_image]
    for portrait in portraits:
        if portrait is not None:
            resolve_asset(portrait, "portrait")
    torch.manual_seed(int(config.get("seed", 0)))

    analyser = build_face_analyser(system.face_analyser, system.face_analyser_root)
    identity, repel = (extract_identity(p, analyser) if p else None for p in portraits)
    prior = HumanPrior.build(prior_cfg, device)
    body_on_device = body.to(device)
    guidance = HDSGuidance(prior, guidance_cfg, identity, repel, body_pose_images(body_on_device))
    model = gaussians_from_body(body, gaussian_cfg, torch.Generator().manual_seed(0)).to(device)
    sampler = HumanCameraSampler(data_cfg)
    trainer = Stage1Trainer(model, sampler, guidance, stage1_cfg, strategy)

    return trainer, guidance


def run(config: DictConfig, device: str = "cpu", out_root: str | None = None) -> dict[str, Path]:
    """Run stage 1 for ``config``; returns the written files."""
    trainer, guidance = build_stage1(config, device)
    model, sampler = trainer.model, trainer.sampler
    stage1_cfg = trainer.cfg
    n_val_views = sampler.cfg.n_val_views
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(out_root or config.get("exp_root_dir", "outputs"))
    save = root / f"{config.get('name', 'gaussianip')}@{stamp}" / "save"
    save.mkdir(parents=True, exist_ok=False)

    from tqdm import tqdm

    bar = tqdm(range(stage1_cfg.steps), desc="stage 1", unit="step")
    start = time.perf_counter()
    for step in bar:
        logs = trainer.step(step)
        bar.set_postfix(phase=guidance.schedule.phase(step), t=int(logs["timestep"]),
                        loss=f"{logs['loss']:.3g}", n=int(logs["num_gaussians"]))  # fmt: skip
    seconds = time.perf_counter() - start

    from gaussianip.render.views import render_views

    with torch.no_grad():
        views = render_views(model, sampler.turntable(n_val_views))["comp_rgb"]
    files = {
        "stage1.ply": save_ply(save / "stage1.ply", dict(model.params)),
        "stage1_views.png": save_png(save / "stage1_views.png", image_row(views, gap=4)),
    }
    print(f"stage 1: {stage1_cfg.steps} steps in {seconds:.1f} s; wrote "
          + ", ".join(str(p) for p in files.values()))  # fmt: skip
    return files


__all__ = ["load_run_config", "run"]
