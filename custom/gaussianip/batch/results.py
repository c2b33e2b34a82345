"""``DIR/results.csv``: one line a row (its settings, status, identity score, times and
files), from the rows' records in ``batch.jsonl``; and each finished row's front view
(``DIR/gallery/<name>.png``, the turntable's first frame) for the gallery."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gaussianip.batch.manifest import AvatarJob
from gaussianip.batch.state import RUNS_DIR

RESULTS_FILE = "results.csv"
FRONT_DIR = "gallery"  # DIR/gallery/<name>.png: the front views
COLUMNS = (
    "row", "name", "status", "prompt", "portrait", "config", "seed", "overrides",
    "identity_arcface", "stage1_seconds", "vcr_seconds", "reconstruction_seconds",
    "run_seconds", "attempts", "resumed_at_step", "prior", "worker", "started", "finished",
    "run_dir", "summary", "turntable", "gaussians", "error",
)  # fmt: skip
FILES = {"summary": "summary.png", "turntable": "turntable.mp4", "gaussians": "gaussians.ply"}


def row_files(out_dir: Path, name: str) -> dict[str, str]:
    """{summary, turntable, gaussians: path relative to ``out_dir``} of the files the row
    has written so far."""
    save = Path(RUNS_DIR) / name / "save"
    return {key: (save / file).as_posix() for key, file in FILES.items()
            if (out_dir / save / file).is_file()}  # fmt: skip


def result_line(out_dir: Path, job: AvatarJob, record: dict[str, Any]) -> dict[str, Any]:
    """The ``results.csv`` line of ``job`` (``record``: its state; empty if never run)."""
    phases = record.get("phases") or {}
    resumed = record.get("resumed_at") or []
    worker = f"{record['host']}:{record['pid']}" if record.get("pid") else ""
    identity = record.get("identity")
    line = {
        "row": job.number, "name": job.name, "status": record.get("status", "pending"),
        "prompt": job.prompt, "portrait": job.portrait or "", "config": job.config_file,
        "seed": "" if job.seed is None else job.seed,
        "overrides": " ".join(job.overrides),
        "identity_arcface": "" if identity is None else f"{identity:.4f}",
        "stage1_seconds": phases.get("stage1", {}).get("seconds", ""),
        "vcr_seconds": phases.get("vcr", {}).get("seconds", ""),
        "reconstruction_seconds": phases.get("reconstruction", {}).get("seconds", ""),
        "run_seconds": record.get("run_seconds", ""),
        "attempts": record.get("attempts", 0),
        "resumed_at_step": " ".join(str(s) for s in resumed),
        "prior": record.get("prior", ""), "worker": worker,
        "started": record.get("started", ""), "finished": record.get("finished", ""),
        "run_dir": (Path(RUNS_DIR) / job.name).as_posix(),
        "error": (record.get("error") or "") if record.get("status") != "done" else "",
    }  # fmt: skip
    line.update({key: "" for key in FILES})
    line.update(row_files(out_dir, job.name))
    return line


def write_results(out_dir: Path, jobs: Sequence[AvatarJob], records: dict[str, dict]) -> Path:
    """``out_dir/results.csv`` for ``jobs`` (written whole, then renamed into place)."""
    path = out_dir / RESULTS_FILE
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for job in jobs:
            writer.writerow(result_line(out_dir, job, records.get(job.name, {})))
    tmp.replace(path)
    return path


def front_view(out_dir: Path, name: str) -> str | None:
    """The row's front view as ``gallery/<name>.png`` (relative to ``out_dir``), taken
    from its turntable's first frame (azimuth 0: the front) once; None without one."""
    import imageio_ffmpeg
    import numpy as np
    from PIL import Image

    video = out_dir / RUNS_DIR / name / "save" / FILES["turntable"]
    picture = out_dir / FRONT_DIR / f"{name}.png"
    if not video.is_file():
        return None
    if not picture.is_file() or picture.stat().st_mtime < video.stat().st_mtime:
        reader = imageio_ffmpeg.read_frames(str(video))
        meta = next(reader)
        width, height = meta["size"]
        frame = np.frombuffer(next(reader), np.uint8).reshape(height, width, 3)
        reader.close()
        picture.parent.mkdir(parents=True, exist_ok=True)
        tmp = picture.with_name(picture.name + ".tmp")
        Image.fromarray(frame).save(tmp, format="PNG")
        tmp.replace(picture)
    return (Path(FRONT_DIR) / picture.name).as_posix()


__all__ = ["COLUMNS", "FRONT_DIR", "RESULTS_FILE", "front_view", "result_line", "write_results"]
