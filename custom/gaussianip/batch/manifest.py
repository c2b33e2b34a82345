"""The rows of a batch: a manifest (CSV or JSONL, one avatar a row) or the grid shorthand
(``--prompts FILE --portraits DIR --configs A.yaml B.yaml``), each row checked and turned
into the resolved config its worker runs.

A row has ``name`` (its run folder: ``DIR/runs/<name>``), ``prompt``, ``config`` (a YAML,
as ``gaussianip run --config`` takes it), and optionally ``portrait`` (else the config's
``system.face_image``), ``seed`` (the run's ``seed`` and the seeds of stage 1, refinement
and reconstruction; else the config's) and ``key=value`` overrides: an ``overrides``
column (space-separated, quoted as in a shell) or columns named by a dotted config key
(``system.stage1.steps``). Relative paths are looked up next to the manifest first.

``check_rows`` checks every row before any work starts (portrait readable, config parsed,
overrides valid, names unique) and raises one ``ManifestError`` listing every bad row
with its field.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gaussianip.errors import ConfigError, GaussianIPError

FIELDS = ("name", "prompt", "portrait", "seed", "config", "overrides")
REQUIRED = ("name", "prompt", "config")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
NAME_PATTERN = re.compile(r"^[\w][\w.+-]{0,99}$")  # a folder name on every file system
PORTRAIT_KEYS = ("system.face_image", "system.repel_face_image")
SEED_KEYS = ("seed", "system.stage1.seed", "system.vcr.seed", "system.reconstruction.seed")


class ManifestError(ConfigError):
    """Rows of a manifest that cannot run; the message lists every one with its field."""


@dataclass
class ManifestRow:
    """One row as written: text fields and the row's own ``key=value`` overrides."""

    number: int  # 1-based, the header not counted
    where: str  # "line 3 of people.csv", for messages
    name: str = ""
    prompt: str = ""
    portrait: str = ""
    seed: str = ""
    config: str = ""
    overrides: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, message)


@dataclass(frozen=True)
class AvatarJob:
    """A checked row: everything a worker needs to run it."""

    number: int
    name: str
    prompt: str
    portrait: str | None  # absolute path, or None: the config's own
    config_file: str  # as the row gave it
    config_label: str  # the grid's column title (the config file's stem)
    seed: int | None
    overrides: tuple[str, ...]  # the row's own key=value overrides
    config: dict[str, Any]  # the resolved run config (plain containers: it travels to workers)
    fingerprint: str  # of ``config``: a finished row whose settings changed is not "done"


# ---------------------------------------------------------------------- reading
def read_manifest(path: str | Path) -> list[ManifestRow]:
    """The rows of a ``.csv`` (header row: the field names) or ``.jsonl`` manifest (one JSON
    object a line; blank lines and lines starting with # are skipped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ManifestError(f"Manifest not found: '{path}'. Give a .csv or .jsonl file.")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return _read_csv(file)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(file)
    raise ManifestError(
        f"Manifest '{path}': use a .csv file (a header row: name,prompt,portrait,seed,config,"
        "...) or a .jsonl file (one JSON object a line)."
    )


def _check_columns(columns: Sequence[str], file: Path) -> None:
    unknown = [c for c in columns if c not in FIELDS and "." not in c]
    missing = [c for c in REQUIRED if c not in columns]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise ManifestError(
            f"Manifest '{file}': {'; '.join(parts)}. Columns are {', '.join(FIELDS)} "
            f"({', '.join(REQUIRED)} required), and any dotted config key as an override "
            "(e.g. system.stage1.steps)."
        )


def _row(number: int, where: str, values: dict[str, Any]) -> ManifestRow:
    row = ManifestRow(number, where)
    for name in ("name", "prompt", "portrait", "seed", "config"):
        value = values.get(name)
        setattr(row, name, "" if value is None else str(value).strip())
    overrides = values.get("overrides") or []
    if isinstance(overrides, str):
        try:
            overrides = shlex.split(overrides)
        except ValueError as err:
            row.problems.append(("overrides", f"cannot be split into key=value items ({err})."))
            overrides = []
    elif not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        row.problems.append(("overrides", f"must be key=value texts, got {overrides!r}."))
        overrides = []
    row.overrides = list(overrides)
    for key, value in values.items():
        if "." in key and value not in (None, ""):  # a config key as a column
            text = value if isinstance(value, str) else json.dumps(value)
            row.overrides.append(f"{key}={text}")
    return row


def _read_csv(file: Path) -> list[ManifestRow]:
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_columns([c.strip() for c in reader.fieldnames or []], file)
        rows = []
        for number, record in enumerate(reader, start=1):
            values = {(k or "").strip(): v for k, v in record.items()}
            if not any((v or "").strip() for v in values.values() if isinstance(v, str)):
                continue  # an empty line
            rows.append(_row(number, f"line {reader.line_num} of {file.name}", values))
    return rows


def _read_jsonl(file: Path) -> list[ManifestRow]:
    rows: list[ManifestRow] = []
    for line_number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"line {line_number} of {file.name}"
        try:
            values = json.loads(line)
        except ValueError as err:
            raise ManifestError(f"Manifest '{file}', {where}: not a JSON object ({err}).") from None
        if not isinstance(values, dict):
            raise ManifestError(f"Manifest '{file}', {where}: not a JSON object.")
        _check_columns(list(values), file)
        rows.append(_row(len(rows) + 1, where, values))
    return rows


def grid_rows(
    prompts_file: str | Path, portraits_dir: str | Path | None, configs: Sequence[str]
) -> list[ManifestRow]:
    """Every combination of the prompts (one a line; blank lines and # comments skipped),
    the portraits (every image in the folder; None: each config's own) and the configs;
    named ``<prompt number>-<portrait>-<config>``."""
    file = Path(prompts_file).expanduser()
    if not file.is_file():
        raise ManifestError(f"--prompts '{prompts_file}': no such file (one prompt a line).")
    prompts = [p.strip() for p in file.read_text(encoding="utf-8").splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ManifestError(f"--prompts '{prompts_file}' holds no prompt (one a line).")
    portraits: list[Path | None] = [None]
    if portraits_dir is not None:
        folder = Path(portraits_dir).expanduser()
        if not folder.is_dir():
            raise ManifestError(f"--portraits '{portraits_dir}': not a folder of images.")
        portraits = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not portraits:
            raise ManifestError(
                f"--portraits '{portraits_dir}' holds no image ({', '.join(IMAGE_SUFFIXES)})."
            )
    if not configs:
        raise ManifestError("--configs needs at least one YAML config.")
    rows = []
    for p, prompt in enumerate(prompts, start=1):
        for portrait in portraits:
            for config in configs:
                parts = [f"p{p:02d}", _slug(portrait.stem) if portrait else "", _slug(config)]
                row = ManifestRow(len(rows) + 1, f"prompt {p}, config {config}")
                row.name = "-".join(x for x in parts if x)
                row.prompt, row.config = prompt, config
                row.portrait = str(portrait) if portrait else ""
                rows.append(row)
    return rows


def _slug(text: str) -> str:
    stem = Path(text).name.removesuffix(".yaml").removesuffix(".yml")
    return re.sub(r"[^\w.+-]+", "_", stem).strip("_.")[:40] or "x"


# ---------------------------------------------------------------------- checking
def _quoted(value: str) -> str:
    """A YAML single-quoted scalar: any text survives ``key=value`` parsing."""
    return "'" + value.replace("'", "''") + "'"


def _local(path: str, base: Path | None) -> str:
    """``path`` next to the manifest (``base``) where it exists there, else as given."""
    candidate = Path(path).expanduser()
    if base is not None and not candidate.is_absolute() and (base / candidate).exists():
        return str((base / candidate).resolve())
    return str(candidate.resolve()) if candidate.exists() else path


def _field_of(message: str, row: ManifestRow) -> str:
    """Which of the row's fields a config error is about."""
    for override in row.overrides:
        if override.split("=", 1)[0] in message:
            return "overrides"
    if "face_image" in message or "portrait" in message:
        return "portrait"
    if "prompt_processor.prompt" in message:
        return "prompt"
    if re.search(r"\bseed\b", message) and row.seed:
        return "seed"
    return "config"


def check_row(
    row: ManifestRow, base: Path | None, command_overrides: Sequence[str]
) -> AvatarJob | None:
    """The row's ``AvatarJob``, or None with its problems added to ``row.problems``."""
    from gaussianip.engine.config import check_seed, load_run_config, parse_run_config
    from gaussianip.faces.identity import check_portrait
    from gaussianip.paths import resolve_asset

    problems = row.problems
    for name in REQUIRED:
        if not getattr(row, name):
            problems.append((name, "is empty."))
    if row.name and not NAME_PATTERN.match(row.name):
        problems.append(("name", f"'{row.name}' names a folder: use letters, digits, . + - _ "
                                 "(up to 100), starting with a letter or digit."))  # fmt: skip
    seed = None
    if row.seed:
        try:
            seed = check_seed(row.seed, "seed")
        except ConfigError as err:
            problems.append(("seed", str(err)))
    portrait = _local(row.portrait, base) if row.portrait else None
    if portrait is not None and not Path(portrait).exists():
        places = " and ".join(dict.fromkeys(str(p) for p in (base, Path.cwd()) if p is not None))
        problems.append(("portrait", f"'{row.portrait}' not found (looked in {places})."))
    elif portrait is not None:
        try:
            check_portrait(portrait)
        except GaussianIPError as err:
            problems.append(("portrait", str(err)))
    bad_overrides = [o for o in row.overrides if "=" not in o]
    if bad_overrides:
        problems.append(("overrides", f"must be key=value, got {bad_overrides}."))
    if problems and not row.config:
        return None
    overrides = [*command_overrides, f"name={_quoted(row.name or 'avatar')}"]
    if row.prompt:
        overrides.append(f"system.prompt_processor.prompt={_quoted(row.prompt)}")
    portrait_ok = portrait is not None and not any(f == "portrait" for f, _ in problems)
    if portrait_ok:
        overrides.append(f"system.face_image={_quoted(str(portrait))}")
    elif portrait is not None:
        overrides.append("system.face_image=null")  # reported already; check the rest
    if seed is not None:
        overrides += [f"{key}={seed}" for key in SEED_KEYS]
    overrides += [o for o in row.overrides if "=" in o]
    config_file = _local(row.config, base)
    try:
        config = load_run_config(config_file, overrides)
        parse_run_config(config)
        for key in PORTRAIT_KEYS:  # absolute: workers run elsewhere (another folder, node)
            if OmegaConf.select(config, key):
                OmegaConf.update(config, key, str(resolve_asset(OmegaConf.select(config, key))))
    except GaussianIPError as err:
        message = str(err)
        field_name = "config" if message.startswith("Config file") else _field_of(message, row)
        problems.append((field_name, message))
    if problems:
        return None
    container = OmegaConf.to_container(config, resolve=True)
    assert isinstance(container, dict)
    return AvatarJob(
        number=row.number,
        name=row.name,
        prompt=row.prompt,
        portrait=portrait,
        config_file=row.config,
        config_label=_slug(row.config),
        seed=seed,
        overrides=tuple(row.overrides),
        config=container,
        fingerprint=fingerprint(container),
    )


def fingerprint(config: dict[str, Any] | DictConfig) -> str:
    """A short hash of a resolved config (what a finished row was run with)."""
    if isinstance(config, DictConfig):
        config = OmegaConf.to_container(config, resolve=True)  # type: ignore[assignment]
    kept = {k: v for k, v in config.items() if k not in ("exp_root_dir", "name")}
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_rows(
    rows: Sequence[ManifestRow], source: str, base: Path | None = None,
    command_overrides: Sequence[str] = (),
) -> list[AvatarJob]:  # fmt: skip
    """Every row checked; ``ManifestError`` listing every bad row (its number, name, where
    it was written, the field and the problem) when any is bad."""
    if not rows:
        raise ManifestError(f"{source} has no rows.")
    first_of: dict[str, ManifestRow] = {}
    for row in rows:
        if row.name and row.name in first_of:
            other = first_of[row.name]
            message = (f"'{row.name}' is also the name of row {other.number} (names are the "
                       "run folders: make them unique).")  # fmt: skip
            row.problems.append(("name", message))
        first_of.setdefault(row.name, row)
    jobs = [check_row(row, base, command_overrides) for row in rows]
    bad = [row for row in rows if row.problems]
    if bad:
        lines = [f"{len(bad)} of {len(rows)} rows of {source} cannot run; nothing was started:"]
        for row in bad:
            label = f"row {row.number} '{row.name}'" if row.name else f"row {row.number}"
            for field_name, message in row.problems:
                lines.append(f"  {label} ({row.where}), {field_name}: {message}")
        raise ManifestError("\n".join(lines))
    return [job for job in jobs if job is not None]


__all__ = [
    "AvatarJob",
    "ManifestError",
    "ManifestRow",
    "check_rows",
    "fingerprint",
    "grid_rows",
    "read_manifest",
]
