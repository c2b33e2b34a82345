"""The run configuration: threestudio's YAML layout (``data``, ``system``, ``trainer``),
read by both hosts, and every check that can run before a model is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gaussianip.body import BodyConfig
from gaussianip.config import construct_config, parse_config
from gaussianip.data import HumanCameraConfig
from gaussianip.engine.reconstruction import ReconstructionConfig, check_lpips_weights
from gaussianip.engine.stage1 import Stage1Config
from gaussianip.errors import AssetError, ConfigError
from gaussianip.gaussians import GaussianConfig, HumanDensifyStrategy
from gaussianip.guidance.hds_guidance import HDSGuidanceConfig
from gaussianip.paths import CONFIG_DIR, resolve_asset
from gaussianip.prior.human_prior import PriorConfig
from gaussianip.prior.weights import check_weights
from gaussianip.refine import VCRConfig


@dataclass
class SystemConfig:
    """The ``system`` section (also ``gaussianip-system``'s threestudio config)."""

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
    vcr: dict = field(default_factory=dict)
    reconstruction: dict = field(default_factory=dict)
    # A finished stage 1 to start from (a run's save/ folder, or its stage1.ply): stage 1
    # is skipped; refined views already in that folder's vcr/ are reused.
    stage2_from: str | None = None


@dataclass
class PromptConfig:
    prompt: str | None = "a photo of a person"
    negative_prompt: str | None = None


@dataclass
class RunSettings:
    """Every section of a run, parsed and checked."""

    system: SystemConfig
    data: HumanCameraConfig
    prompt: str
    guidance: HDSGuidanceConfig
    prior: PriorConfig
    stage1: Stage1Config
    gaussians: GaussianConfig
    densify: HumanDensifyStrategy
    body: BodyConfig
    vcr: VCRConfig
    reconstruction: ReconstructionConfig
    stage1_ply: Path | None  # from system.stage2_from
    seed: int = 0


ARITHMETIC_RESOLVERS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                        "mul": lambda a, b: a * b}  # fmt: skip


def resolve_with_threestudio_resolvers(config: DictConfig) -> DictConfig:
    """Resolve ``${add:...}`` and co. (threestudio's resolvers, so one YAML reads the same
    in both hosts) without leaving them registered: threestudio registers them itself on
    import and refuses names that already exist."""
    ours = [name for name in ARITHMETIC_RESOLVERS if not OmegaConf.has_resolver(name)]
    for name in ours:
        OmegaConf.register_new_resolver(name, ARITHMETIC_RESOLVERS[name])
    try:
        OmegaConf.resolve(config)
    finally:
        for name in ours:
            OmegaConf.clear_resolver(name)
    return config


def load_run_config(path: str | Path, overrides: list[str]) -> DictConfig:
    """The YAML at ``path`` (or a name in our configs folder) with ``key=value`` overrides,
    resolved."""
    file = Path(path)
    if not file.exists() and (CONFIG_DIR / file.name).exists():
        file = CONFIG_DIR / file.name
    if not file.exists():
        raise AssetError(f"Config file not found: '{path}'. Configs ship in '{CONFIG_DIR}'.")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"Overrides must be key=value, got {bad}.")
    merged = OmegaConf.merge(OmegaConf.load(file), OmegaConf.from_dotlist(overrides))
    return resolve_with_threestudio_resolvers(merged)  # type: ignore[arg-type]


def resolve_stage1_ply(stage2_from: str) -> Path:
    """``stage1.ply`` of a finished stage 1 given as a file, a save/ folder or a run folder."""
    path = Path(stage2_from).expanduser()
    for candidate in (path, path / "stage1.ply", path / "save" / "stage1.ply"):
        if candidate.is_file():
            return candidate
    raise AssetError(
        f"system.stage2_from='{stage2_from}': no stage1.ply there. Give the save/ folder of "
        "a run whose stage 1 finished (it holds stage1.ply), or the .ply file itself."
    )


def parse_run_config(config: DictConfig | dict) -> RunSettings:
    """Parse and check every section; raises our errors before anything heavy is built."""
    config = OmegaConf.create(config) if isinstance(config, dict) else config
    system = parse_config(SystemConfig, config.get("system"), "system")
    data = parse_config(HumanCameraConfig, config.get("data"), "data")
    prompt = parse_config(PromptConfig, system.prompt_processor, "system.prompt_processor")
    if not prompt.prompt or not prompt.prompt.strip():
        raise ConfigError("system.prompt_processor.prompt is empty; describe the person.")
    guidance_values = dict(system.guidance, prompt=prompt.prompt)
    if prompt.negative_prompt is not None:
        guidance_values["negative_prompt"] = prompt.negative_prompt
    geometry = dict(system.geometry)
    unknown = set(geometry) - {"gaussians", "densify"}
    if unknown:
        raise ConfigError(
            f"Unknown keys in system.geometry: {sorted(unknown)}; use gaussians, densify."
        )
    settings = RunSettings(
        system=system,
        data=data,
        prompt=prompt.prompt,
        guidance=parse_config(HDSGuidanceConfig, guidance_values, "system.guidance"),
        prior=parse_config(PriorConfig, system.prior, "system.prior"),
        stage1=parse_config(Stage1Config, system.stage1, "system.stage1"),
        gaussians=parse_config(GaussianConfig, geometry.get("gaussians"),
                               "system.geometry.gaussians"),  # fmt: skip
        densify=construct_config(HumanDensifyStrategy, geometry.get("densify"),
                                 "system.geometry.densify"),  # fmt: skip
        body=parse_config(BodyConfig, system.body, "system.body"),
        vcr=parse_config(VCRConfig, system.vcr, "system.vcr"),
        reconstruction=parse_config(ReconstructionConfig, system.reconstruction,
                                    "system.reconstruction"),  # fmt: skip
        stage1_ply=resolve_stage1_ply(system.stage2_from) if system.stage2_from else None,
        seed=int(config.get("seed", 0)),
    )
    for portrait in (system.face_image, system.repel_face_image):
        if portrait is not None:
            resolve_asset(portrait, "portrait")
    check_weights(settings.prior, system.face_analyser, system.face_analyser_root)
    check_lpips_weights(settings.reconstruction)
    return settings
