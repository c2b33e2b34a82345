"""The run configuration: threestudio's YAML layout (``data``, ``system``, ``trainer``),
read by both hosts, and every check that can run before a model is built."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gaussianip.body import BodyConfig
from gaussianip.config import construct_config, parse_config
from gaussianip.data import HumanCameraConfig
from gaussianip.engine.reconstruction import ReconstructionConfig, check_lpips_weights
from gaussianip.engine.stage1 import Stage1Config
from gaussianip.errors import AssetError, BodyModelError, ConfigError
from gaussianip.faces.identity import check_portrait
from gaussianip.gaussians import GaussianConfig, HumanDensifyStrategy
from gaussianip.guidance.hds_guidance import HDSGuidanceConfig
from gaussianip.memory_plan import MemoryConfig
from gaussianip.paths import CONFIG_DIR, REPO_ROOT
from gaussianip.pictures import OutputsConfig
from gaussianip.prior.human_prior import PriorConfig
from gaussianip.prior.weights import check_weights
from gaussianip.refine import VCRConfig
from gaussianip.safe_load import regular_file
from gaussianip.size_limits import check_sizes, run_sizes


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
    outputs: dict = field(default_factory=dict)  # gaussianip.pictures.OutputsConfig
    memory: dict = field(default_factory=dict)  # gaussianip.memory_plan.MemoryConfig
    # A finished stage 1 to start from (a run's save/ folder, or its stage1.ply): stage 1
    # is skipped; refined views already in that folder's vcr/ are reused.
    stage2_from: str | None = None
    # gaussianip.animate.AnimationConfig: animate the result with a motion at the end
    # (system.animation.motion=load/motions/walk.npz), also in threestudio's test stage.
    animation: dict = field(default_factory=dict)
    # Sizes far above the method's (steps, views, frames) are refused with an estimate of
    # their time (gaussianip.size_limits); true runs them anyway.
    allow_long_run: bool = False


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
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)


ARITHMETIC_RESOLVERS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
                        "mul": lambda a, b: a * b}  # fmt: skip


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# What OmegaConf and its YAML parser raise for text that is not a valid config.
PARSE_ERRORS = (OmegaConfBaseException, yaml.YAMLError, ValueError, TypeError)


def resolve_with_threestudio_resolvers(config: DictConfig) -> DictConfig:
    """Resolve ``${add:...}`` and co. (threestudio's resolvers, so one YAML reads the same
    in both hosts) without leaving them registered: threestudio registers them itself on
    import and refuses names that already exist."""
    ours = [name for name in ARITHMETIC_RESOLVERS if not OmegaConf.has_resolver(name)]
    for name in ours:
        OmegaConf.register_new_resolver(name, ARITHMETIC_RESOLVERS[name])
    try:
        OmegaConf.resolve(config)
    except PARSE_ERRORS as err:
        err.failing_node = _failing_interpolation(config)  # type: ignore[attr-defined]
        raise
    finally:
        for name in ours:
            OmegaConf.clear_resolver(name)
    return config


def _failing_interpolation(config: DictConfig) -> tuple[str, str] | None:
    """(dotted key, ``${...}`` text) of the first value that does not resolve."""

    def walk(node: Any, prefix: str) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{prefix}{key}.")
        elif isinstance(node, str) and "${" in node:
            yield prefix[:-1], node

    for key, text in walk(OmegaConf.to_container(config, resolve=False), ""):
        try:
            OmegaConf.select(config, key, throw_on_resolution_failure=True)
        except PARSE_ERRORS:
            return key, text
    return None


EXTENDS = "extends"


def load_config_file(file: Path, chain: tuple[Path, ...] = ()) -> DictConfig:
    """The YAML mapping in ``file``, on top of the files its top-level ``extends:`` names.

    ``extends`` is one path or a list of paths, each relative to the file that names it;
    they are merged in order, then the file's own keys on top (lists are replaced, not
    appended). ``${...}`` references stay unresolved until the whole config is merged, so
    a preset that changes ``system.stage1.steps`` also changes ``trainer.max_steps``.
    A missing file or a cycle is a ``ConfigError`` naming the chain of files.
    """
    try:
        config = OmegaConf.load(file)
    except (*PARSE_ERRORS, OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Config file '{file}' is not valid YAML: {_first_line(err)}") from None
    if not isinstance(config, DictConfig):
        raise ConfigError(f"Config file '{file}' must hold a mapping (data:, system:, ...).")
    if EXTENDS not in config:
        return config
    parents = config.pop(EXTENDS)
    names = [parents] if isinstance(parents, str) else parents
    if not isinstance(names, ListConfig | list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(
            f"'{EXTENDS}' in '{file}' must be a path or a list of paths (relative to that "
            f"file), got {parents!r}."
        )
    chain = (*chain, file.resolve())
    merged = OmegaConf.create()
    for name in names:
        parent = (file.parent / name).resolve()
        shown = " -> ".join(str(f) for f in (*chain, parent))
        if parent in chain:
            raise ConfigError(f"'{EXTENDS}' makes a cycle: {shown}. Remove one of them.")
        if not parent.is_file():
            raise ConfigError(
                f"'{EXTENDS}: {name}' in '{file}' names no file ({parent}). Paths are "
                "relative to the file that names them."
            )
        merged = OmegaConf.merge(merged, load_config_file(parent, chain))
    return OmegaConf.merge(merged, config)  # type: ignore[return-value]


def load_run_config(path: str | Path, overrides: list[str]) -> DictConfig:
    """The YAML at ``path`` (or a name in our configs folder, or a path from the
    repository root such as ``configs/bench/paper.yaml``) with ``key=value`` overrides,
    resolved; ``extends:`` presets are merged first (``load_config_file``).
    ``AssetError`` / ``ConfigError`` naming the file or the override at fault."""
    file = Path(path)
    if not file.exists() and (CONFIG_DIR / file.name).exists():
        file = CONFIG_DIR / file.name
    elif not file.exists() and not file.is_absolute() and (REPO_ROOT / file).exists():
        file = REPO_ROOT / file
    if file.exists() and not file.is_file() and not file.is_dir():
        regular_file(file, "config file")  # a FIFO or device: refused unopened
    if not file.is_file():
        names = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
        state = "is a folder" if file.is_dir() else "not found"
        raise AssetError(f"Config file {state}: '{path}'. Configs ship in '{CONFIG_DIR}': {names}.")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"Overrides must be key=value (e.g. system.stage1.steps=600), got {bad}.")
    merged = load_config_file(file)
    for override in overrides:
        key = override.split("=", 1)[0]
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([override]))
        except PARSE_ERRORS as err:
            raise ConfigError(
                f"The override '{override}' cannot be applied: {_first_line(err)}. Write "
                f"key=value with a dotted key that matches the config's layout (here "
                f"'{key}'), and quote values with YAML characters ([ ] {{ }} : , $), e.g. "
                "system.prompt_processor.prompt='a photo of a man, smiling'."
            ) from None
    try:
        return resolve_with_threestudio_resolvers(merged)  # type: ignore[arg-type]
    except PARSE_ERRORS as err:
        raise ConfigError(_resolve_error(overrides, err)) from None


def _resolve_error(overrides: list[str], err: Exception) -> str:
    """Which ``${...}`` failed, what it reads, and which overrides set those values."""
    failing = getattr(err, "failing_node", None)
    if failing is None:
        return (
            f"The config cannot be resolved: {_first_line(err)}. Check the ${{...}} "
            f"references and the values they read (overrides: {overrides})."
        )
    where, text = failing
    reads = re.findall(r"\$\{([A-Za-z_][\w.]*)\}", text)
    involved = [o for o in overrides if o.split("=", 1)[0] in reads]
    if involved:
        fix = (
            f"It reads {', '.join(reads)}: check the value(s) given by {involved} (a whole "
            "number where steps are counted)."
        )
    else:
        fix = (
            "Check that each ${key} names an existing key and each ${name:...} is one of "
            f"{', '.join(ARITHMETIC_RESOLVERS)}."
        )
    return f"{where} = {text} cannot be resolved: {_first_line(err)}. {fix}"


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


# threestudio's ExperimentConfig: the top-level keys a config may have.
TOP_LEVEL_KEYS = (
    "name", "description", "tag", "seed", "use_timestamp", "timestamp", "exp_root_dir",
    "exp_dir", "trial_name", "trial_dir", "n_gpus", "resume", "data_type", "data",
    "system_type", "system", "trainer", "checkpoint",
)  # fmt: skip


MAX_NAME_BYTES = 200  # + "@YYYYmmdd-HHMMSS-NN" stays under 255


def _check_top_level(config: DictConfig) -> None:
    for key in config:
        if key not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"Unknown config key '{key}'.{hint} Valid top-level keys: "
                f"{', '.join(TOP_LEVEL_KEYS)}."
            )
    name = config.get("name", "gaussianip")
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\\0"):
        raise ConfigError(
            f"name names the run folder (<exp_root_dir>/<name>@<time>): a non-empty text "
            f"without slashes, got {name!r}."
        )
    if len(name.encode()) > MAX_NAME_BYTES:  # file systems take 255 bytes a name
        raise ConfigError(
            f"name is {len(name.encode())} bytes long; a run folder's name (<name>@<time>) "
            f"must fit the file system's 255 bytes, so name takes at most {MAX_NAME_BYTES}. "
            "Choose a shorter name."
        )
    root = config.get("exp_root_dir", "outputs")
    if not isinstance(root, str) or not root or "\0" in root:
        raise ConfigError(f"exp_root_dir must be a folder path, got {root!r}.")
    for key in ("data", "system"):
        value = config.get(key)
        if value is not None and not isinstance(value, DictConfig):
            raise ConfigError(
                f"'{key}' must be a section of key: value settings, got {value!r}. "
                f"Set its keys instead, e.g. {key}.<name>=<value>."
            )


def _check_finite(value: Any, key: str) -> None:
    """``ConfigError`` for a NaN or infinite number anywhere in ``value`` (a config value,
    list, dict or dataclass)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _check_finite(getattr(value, f.name), f"{key}.{f.name}")
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key}.{name}")
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{key} must hold finite numbers, got {list(value)}.")
            _check_finite(item, key)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value}.")


MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes 64 bits


def check_seed(value: Any, key: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{key} must be an integer in [0, 2**63 - 1], got {value!r}.")
    return value


def _at_least(value: float, low: float, key: str, what: str = "") -> None:
    if not value >= low:
        raise ConfigError(f"{key} must be >= {low}{what}, got {value}.")


def _check_ranges(s: RunSettings) -> None:
    """What no section's own config checks: the seeds, and gsplat's strategy values."""
    for name in ("stage1", "vcr", "reconstruction"):
        check_seed(getattr(s, name).seed, f"system.{name}.seed")
    _check_densify(s.densify)


def _check_densify(cfg: HumanDensifyStrategy) -> None:
    """Types and ranges: ``construct_config`` passes gsplat's strategy values unchecked."""
    key = "system.geometry.densify"
    defaults = HumanDensifyStrategy()
    for f in dataclasses.fields(cfg):
        value, default, where = getattr(cfg, f.name), getattr(defaults, f.name), f"{key}.{f.name}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, got {value!r}.")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be an integer (a step), got {value!r}.")
            _at_least(value, 1 if f.name.endswith("_every") else 0, where)
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where} must be a number, got {value!r}.")
            _at_least(value, 0.0, where)
    if cfg.key_for_gradient not in ("means2d", "gradient_2dgs"):
        raise ConfigError(
            f"{key}.key_for_gradient must be means2d or gradient_2dgs, got "
            f"{cfg.key_for_gradient!r}."
        )
    centres = cfg.no_grow_centers
    if centres is not None and not (
        isinstance(centres, list | tuple)
        and all(isinstance(c, list | tuple) and len(c) == 3 for c in centres)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for c in centres for v in c)
    ):
        raise ConfigError(
            f"{key}.no_grow_centers must be a list of [x, y, z] points in metres, or null; "
            f"got {centres!r}."
        )
    if not 0.0 <= cfg.prune_opa <= 1.0:
        raise ConfigError(f"{key}.prune_opa is an opacity in [0, 1], got {cfg.prune_opa}.")


def check_body(cfg: BodyConfig) -> None:
    """The body model's files, read and checked (``BodyModelError``) without building it."""
    from gaussianip.body import BODY_MODELS

    if cfg.name not in BODY_MODELS:
        close = difflib.get_close_matches(str(cfg.name), BODY_MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise BodyModelError(
            f"Unknown body model system.body.name='{cfg.name}'.{hint} Choose one of: "
            f"{', '.join(BODY_MODELS)} (default: the free body shipped in load/body/)."
        )
    if cfg.name == "smplx":
        from gaussianip.body.smplx_body import check_smplx_file, find_smplx_file

        check_smplx_file(find_smplx_file(cfg.model_path, cfg.gender))
    else:
        from gaussianip.body.template import DEFAULT_TEMPLATE, load_template

        load_template(cfg.model_path or DEFAULT_TEMPLATE)  # a small .npz: read and checked


def parse_run_config(config: DictConfig | dict) -> RunSettings:
    """Parse and check every section; raises our errors before anything heavy is built.

    Checked here, in seconds: unknown keys (with the closest valid one), types and ranges
    of every value, the prompt, the portraits (readable images large enough for a face),
    the body model's files and the model weights. Face detection itself needs the face
    analyser and runs when the pipeline is built, still before the diffusion models."""
    if isinstance(config, dict):
        config = OmegaConf.create(config)
    if not isinstance(config, DictConfig):
        raise ConfigError(f"A run config is a mapping (data:, system:, ...), got {config!r}.")
    _check_top_level(config)
    system = parse_config(SystemConfig, config.get("system"), "system")
    data = parse_config(HumanCameraConfig, config.get("data"), "data")
    prompt = parse_config(PromptConfig, system.prompt_processor, "system.prompt_processor")
    if not prompt.prompt or not prompt.prompt.strip():
        given = "" if prompt.prompt is None else f" ({prompt.prompt!r})"
        raise ConfigError(
            f"system.prompt_processor.prompt is empty{given}; describe the "
            "person, e.g. system.prompt_processor.prompt='a photo of a woman in an orange "
            "space suit'."
        )
    guidance_values = dict(system.guidance, prompt=prompt.prompt)
    if prompt.negative_prompt is not None:
        guidance_values["negative_prompt"] = prompt.negative_prompt
    geometry = dict(system.geometry)
    unknown = set(geometry) - {"gaussians", "densify"}
    if unknown:
        raise ConfigError(
            f"Unknown keys in system.geometry: {sorted(unknown)}; use gaussians, densify."
        )
    for name in ("gaussians", "densify"):
        if geometry.get(name) is not None and not isinstance(geometry[name], dict):
            raise ConfigError(
                f"system.geometry.{name} must be a section of key: value settings, got "
                f"{geometry[name]!r}."
            )
    seed = check_seed(config.get("seed", 0), "seed")
    settings = RunSettings(
        system=system,
        data=data,
        prompt=prompt.prompt,
        guidance=parse_config(HDSGuidanceConfig, guidance_values, "system.guidance"),
        prior=parse_config(PriorConfig, system.prior, "system.prior"),
        stage1=parse_config(Stage1Config, system.stage1, "system.stage1"),
        gaussians=parse_config(
            GaussianConfig, geometry.get("gaussians"), "system.geometry.gaussians"
        ),
        densify=construct_config(
            HumanDensifyStrategy, geometry.get("densify"), "system.geometry.densify"
        ),
        body=parse_config(BodyConfig, system.body, "system.body"),
        vcr=parse_config(VCRConfig, system.vcr, "system.vcr"),
        reconstruction=parse_config(
            ReconstructionConfig, system.reconstruction, "system.reconstruction"
        ),
        stage1_ply=resolve_stage1_ply(system.stage2_from) if system.stage2_from else None,
        seed=seed,
        outputs=parse_config(OutputsConfig, system.outputs, "system.outputs"),
        memory=parse_config(MemoryConfig, system.memory, "system.memory"),
    )
    for name in ("data", "guidance", "prior", "stage1", "gaussians", "densify", "vcr",
                 "reconstruction"):  # fmt: skip
        section = {"data": "data", "gaussians": "system.geometry.gaussians",
                   "densify": "system.geometry.densify"}.get(name, f"system.{name}")  # fmt: skip
        _check_finite(getattr(settings, name), section)
    _check_ranges(settings)
    check_sizes(run_sizes(settings), system.allow_long_run)  # hours of work: refused here
    check_body(settings.body)
    for key in ("face_image", "repel_face_image"):
        portrait = getattr(system, key)
        if portrait is not None:
            check_portrait(portrait, f"system.{key}")
    check_weights(settings.prior, system.face_analyser, system.face_analyser_root)
    check_lpips_weights(settings.reconstruction)
    return settings
