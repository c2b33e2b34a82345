"""The model weights a run needs: which, whether they are on this machine, and fetching them.

A run never downloads anything: ``check_weights`` looks only at local folders and the
Hugging Face cache (no network call, well under a second) and, before any model is built,
names every missing model and the one command that fetches them all,
``python -m gaussianip download`` (run it once, online). A model that is neither a local
folder nor in the cache therefore counts as missing even when the hub could be reached:
the check must give the same answer on- and offline, and fast.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gaussianip.errors import AssetError, ConfigError
from gaussianip.prior.human_prior import PriorConfig

log = logging.getLogger(__name__)

HUB = "hf"
INSIGHTFACE = "insightface"
STAND_IN = "stand-in"  # the test-only face analyser: no weights
DOWNLOAD_COMMAND = "python -m gaussianip download"

# The single-file weights diffusers / transformers load, and their safetensors twins; a
# download keeps only the safetensors file where the repository has one (they are equal).
_SAFETENSORS_TWIN = {
    "diffusion_pytorch_model.bin": "diffusion_pytorch_model.safetensors",
    "pytorch_model.bin": "model.safetensors",
}
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class WeightSource:
    """One model to fetch: ``repo_id`` is a hub id or a local folder (for insightface, the
    pack name). ``allow_patterns`` is what ``snapshot_download`` fetches; ``needs`` the key
    files that must be there, each a tuple of alternatives (safetensors or .bin)."""

    role: str
    repo_id: str
    allow_patterns: tuple[str, ...] = ()
    needs: tuple[tuple[str, ...], ...] = ()
    config_key: str = ""  # the setting that points at a local copy
    kind: str = HUB

    @property
    def label(self) -> str:
        return f"{self.role} '{self.repo_id}'"


def _diffusers_files(folder: str = "") -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Patterns and key files of a diffusers model (config + weights) in ``folder``."""
    p = f"{folder}/" if folder else ""
    weights = (f"{p}diffusion_pytorch_model.safetensors", f"{p}diffusion_pytorch_model.bin")
    return (f"{p}config.json", *weights), ((f"{p}config.json",), weights)


def _transformers_files(folder: str = "") -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Patterns and key files of a transformers model (config + weights) in ``folder``."""
    p = f"{folder}/" if folder else ""
    weights = (f"{p}model.safetensors", f"{p}pytorch_model.bin")
    return (f"{p}config.json", *weights), ((f"{p}config.json",), weights)


def _source(role: str, repo_id: str, key: str, files: tuple) -> WeightSource:
    patterns, needs = files
    return WeightSource(role, repo_id, patterns, needs, f"system.prior.{key}")


def required_weights(
    cfg: PriorConfig, face_analyser: str | None = "buffalo_l"
) -> list[WeightSource]:
    """Exactly what ``_pretrained_parts`` loads for ``cfg`` (only the ``full`` preset loads
    weights; parts set to None are skipped), plus the insightface pack ``face_analyser``
    (none for ``stand-in`` or None: the face analyser is built whatever the preset)."""
    if cfg.preset not in ("full", "tiny", "random"):
        raise ConfigError(f"Unknown prior preset '{cfg.preset}'; use 'full', 'tiny' or 'random'.")
    sources: list[WeightSource] = []
    if cfg.preset == "full":
        unet, unet_needs = _diffusers_files("unet")
        text, text_needs = _transformers_files("text_encoder")
        patterns = ("model_index.json", *unet, *text, "tokenizer/*")
        needs = (*unet_needs, *text_needs, ("tokenizer/vocab.json",), ("tokenizer/merges.txt",))
        if not cfg.vae:  # the base model's own VAE
            vae, vae_needs = _diffusers_files("vae")
            patterns, needs = (*patterns, *vae), (*needs, *vae_needs)
        sources.append(_source("base model", cfg.base_model, "base_model", (patterns, needs)))
        if cfg.vae:
            sources.append(_source("VAE", cfg.vae, "vae", _diffusers_files()))
        if cfg.controlnet:
            sources.append(
                _source("OpenPose ControlNet", cfg.controlnet, "controlnet", _diffusers_files())
            )
        if cfg.ip_adapter:
            file = cfg.ip_adapter_file
            sources.append(
                _source("IP-Adapter", cfg.ip_adapter, "ip_adapter", ((file,), ((file,),)))
            )
            sources.append(
                _source(
                    "CLIP image encoder", cfg.image_encoder, "image_encoder", _transformers_files()
                )
            )
    if face_analyser and face_analyser != STAND_IN:
        sources.append(
            WeightSource(
                "insightface face pack",
                face_analyser,
                config_key="system.face_analyser_root",
                kind=INSIGHTFACE,
            )
        )
    return sources


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, from the environment as it is now (HF_HUB_CACHE, then
    HF_HOME/hub, then huggingface_hub's default)."""
    env = os.environ
    if env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env.get("HF_HUB_CACHE") or env["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE is set to a true value (as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def insightface_root(root: str | Path | None = None) -> Path:
    """insightface's root folder (the pack lives in ``root/models/<name>``)."""
    return Path(root or Path.home() / ".insightface").expanduser()


def _local_path(source: WeightSource) -> Path | None:
    """``repo_id`` as a local folder (or IP-Adapter file), by the rules its loader applies:
    diffusers / transformers take a folder only as written; ``resolve_checkpoint`` also
    expands ``~`` and accepts a file. None for a hub id."""
    if source.config_key == "system.prior.ip_adapter":
        local = Path(source.repo_id).expanduser()
        return local if local.is_file() or local.is_dir() else None
    return Path(source.repo_id) if os.path.isdir(source.repo_id) else None


def _why_missing(source: WeightSource, face_root: str | Path | None = None) -> str | None:
    """Why ``source`` is not on this machine, or None when it is. Looks at files only."""
    if source.kind == INSIGHTFACE:
        pack = insightface_root(face_root) / "models" / source.repo_id
        return None if any(pack.glob("*.onnx")) else f"no *.onnx files in '{pack}'"
    local = _local_path(source)
    if local is not None and local.is_file():  # an IP-Adapter checkpoint given as a file
        return None
    if local is not None:
        lacking = [alts for alts in source.needs if not any((local / f).is_file() for f in alts)]
        return f"the local folder lacks {_names(lacking)}" if lacking else None
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache_dir()
    lacking = [
        alts
        for alts in source.needs
        if not any(
            isinstance(try_to_load_from_cache(source.repo_id, f, cache_dir=cache), str)
            for f in alts
        )
    ]
    if not lacking:
        return None
    if len(lacking) == len(source.needs):
        return f"not a local folder and not in the Hugging Face cache '{cache}'"
    return f"incomplete in the Hugging Face cache '{cache}': no {_names(lacking)}"


def _names(lacking: list[tuple[str, ...]]) -> str:
    return ", ".join(" or ".join(alts) for alts in lacking)


def missing_weights(
    cfg: PriorConfig,
    face_analyser: str | None = "buffalo_l",
    face_analyser_root: str | Path | None = None,
) -> list[WeightSource]:
    """The sources of ``required_weights`` that are neither a complete local folder nor in
    the local Hugging Face cache. Never touches the network."""
    return [
        s
        for s in required_weights(cfg, face_analyser)
        if _why_missing(s, face_analyser_root) is not None
    ]


def check_weights(
    cfg: PriorConfig,
    face_analyser: str | None = "buffalo_l",
    face_analyser_root: str | Path | None = None,
    config_path: str | None = None,
) -> None:
    """Raise ``AssetError`` naming every missing model and the command that fetches them
    all, so a run fails in a second instead of deep inside model loading (or a download)."""
    sources = required_weights(cfg, face_analyser)
    reasons = [(s, _why_missing(s, face_analyser_root)) for s in sources]
    missing = [(s, why) for s, why in reasons if why is not None]
    if not missing:
        return
    lines = [f"{len(missing)} model(s) missing; a run never downloads weights:"]
    lines += [f"  - {s.label} ({s.config_key}): {why}" for s, why in missing]
    if hub_offline():
        lines.append(
            "HF_HUB_OFFLINE is set: nothing can be fetched from the Hugging Face hub "
            "in this environment; download on a machine (or shell) that is online."
        )
    else:
        lines.append(
            "HF_HUB_OFFLINE is not set, but models are only fetched by the download "
            "command, never during a run."
        )
    command = DOWNLOAD_COMMAND + (f" --config {config_path}" if config_path else "")
    lines.append(
        f"Fix: run `{command}` once, online (into the Hugging Face cache and "
        f"'{insightface_root(face_analyser_root)}'); or `{command} --dir FOLDER` and then set "
        "system.prior.* (and system.face_analyser_root) to the folders it prints."
    )
    raise AssetError("\n".join(lines))


def _prefer_safetensors(patterns: tuple[str, ...], repo_files: list[str]) -> list[str]:
    """Drop a .bin weight pattern when the repository has its safetensors twin."""
    files = set(repo_files)
    kept = []
    for pattern in patterns:
        name = pattern.rsplit("/", 1)[-1]
        twin = _SAFETENSORS_TWIN.get(name)
        if twin is not None and pattern[: -len(name)] + twin in files:
            continue
        kept.append(pattern)
    return kept


def _network_error(source: WeightSource, err: BaseException) -> AssetError:
    from gaussianip.network import is_timeout, network_timeout, timeout_error

    if is_timeout(err):
        import huggingface_hub.constants

        where = (huggingface_hub.constants.ENDPOINT if source.kind == HUB
                 else "insightface's download server")  # fmt: skip
        return timeout_error(f"the {source.label}", where, network_timeout())
    return AssetError(
        f"Could not download the {source.label}: {type(err).__name__}: {err}. Check the "
        "network connection (and the id), then run the download command again."
    )


def _download_hub(source: WeightSource, target_dir: Path | None) -> Path:
    import huggingface_hub

    try:
        files = huggingface_hub.list_repo_files(source.repo_id)
        patterns = _prefer_safetensors(source.allow_patterns, files)
        if target_dir is None:
            path = huggingface_hub.snapshot_download(
                source.repo_id, allow_patterns=patterns, cache_dir=hub_cache_dir()
            )
        else:
            local = target_dir / source.repo_id.rstrip("/").rsplit("/", 1)[-1]
            path = huggingface_hub.snapshot_download(
                source.repo_id, allow_patterns=patterns, local_dir=local
            )
    except (OSError, ValueError, RuntimeError) as err:  # requests and hub errors included
        raise _network_error(source, err) from err
    return Path(path)


def _download_insightface(source: WeightSource, root: Path) -> Path:
    pack = root / "models" / source.repo_id
    if any(pack.glob("*.onnx")):
        return pack
    try:
        storage = importlib.import_module("insightface.utils.storage")
    except ImportError as err:
        raise AssetError(
            f"Fetching the {source.label} needs the insightface package "
            f"(pip install insightface): {err}"
        ) from err
    try:  # force: an empty or partial pack folder would otherwise be taken as done
        storage.download("models", source.repo_id, force=True, root=str(root))
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile) as err:
        raise _network_error(source, err) from err
    if not any(pack.glob("*.onnx")):  # some zips hold a folder named after the pack
        for onnx in pack.rglob("*.onnx"):
            shutil.move(str(onnx), pack / onnx.name)
    if not any(pack.glob("*.onnx")):
        raise AssetError(f"The {source.label} was downloaded but '{pack}' has no *.onnx files.")
    return pack


def download_weights(
    cfg: PriorConfig,
    target_dir: Path | None = None,
    face_analyser: str | None = "buffalo_l",
    face_analyser_root: str | Path | None = None,
    include_faces: bool = True,
) -> list[Path]:
    """Fetch every source of ``required_weights`` (the faces pack unless ``include_faces``
    is False) into the Hugging Face cache, or into ``target_dir/<repo name>`` (the pack
    into ``target_dir/insightface``). Returns where each went, in ``required_weights``
    order; local folders are left as they are. Raises ``AssetError`` on a network error."""
    sources = required_weights(cfg, face_analyser if include_faces else None)
    target = target_dir.expanduser().resolve() if target_dir is not None else None
    hub = [s for s in sources if s.kind == HUB and _local_path(s) is None]
    if hub and hub_offline():
        raise AssetError(
            "HF_HUB_OFFLINE is set, so nothing can be downloaded from the Hugging Face hub: "
            + ", ".join(s.label for s in hub)
            + ". Run the download command without HF_HUB_OFFLINE, online."
        )
    paths = []
    for source in sources:
        if source.kind == INSIGHTFACE:
            root = target / "insightface" if target else insightface_root(face_analyser_root)
            log.info("fetching the %s into '%s'", source.label, root)
            paths.append(_download_insightface(source, root))
        elif source in hub:
            log.info("fetching the %s", source.label)
            paths.append(_download_hub(source, target))
        else:
            log.info("the %s is on this machine; nothing to fetch", source.label)
            paths.append(_local_path(source) or Path(source.repo_id))
    return paths


def local_overrides(sources: list[WeightSource], paths: list[Path]) -> str:
    """The YAML that points a config at the local copies ``download_weights`` made."""
    system: dict[str, str] = {}
    prior: dict[str, str] = {}
    for source, path in zip(sources, paths, strict=True):
        if source.kind == INSIGHTFACE:
            system["face_analyser_root"] = str(path.parent.parent)  # root/models/<name>
        else:
            prior[source.config_key.rsplit(".", 1)[-1]] = str(path)
    lines = ["system:"] + [f"  {k}: {yaml_str(v)}" for k, v in system.items()]
    if prior:
        lines += ["  prior:"] + [f"    {k}: {yaml_str(v)}" for k, v in prior.items()]
    return "\n".join(lines)


def yaml_str(value: str) -> str:
    """A path as a YAML scalar: plain when safe, else double-quoted (JSON is valid YAML)."""
    return value if re.fullmatch(r"[\w./~+-]+", value) else json.dumps(value)
