"""``DIR/gallery.html``: a static page that opens from disk (every link relative, no
script, no server): per row its summary picture, its turntable, the identity score, the
times, the status and links to its files; when the rows form a grid of prompts x configs
(``--prompts ... --configs A.yaml B.yaml``, or any manifest that does), first a table with
one column a config and each cell the avatar's front view: the ablation figure."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gaussianip.batch.manifest import AvatarJob
from gaussianip.batch.results import front_view, row_files
from gaussianip.batch.state import RUNS_DIR

GALLERY_FILE = "gallery.html"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } .meta { color: #666; margin-bottom: 20px; }
table.grid { border-collapse: collapse; margin-bottom: 28px; }
table.grid th, table.grid td { border: 1px solid #ccc; padding: 6px; vertical-align: top;
  text-align: center; background: #fff; }
table.grid td.prompt { text-align: left; max-width: 260px; }
table.grid img { width: 160px; display: block; margin: 0 auto 4px; background: #eee; }
table.grid img.portrait { width: 64px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 12px;
  margin-bottom: 16px; }
.card h2 { font-size: 17px; margin: 0 0 6px; }
.pictures { display: flex; gap: 12px; align-items: flex-start; flex-wrap: wrap; }
.pictures img.summary { max-width: 100%; height: 200px; object-fit: contain; }
.pictures video { height: 200px; background: #000; }
.status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px;
  color: #fff; background: #888; }
.status.done { background: #2e7d32; } .status.failed { background: #c62828; }
.status.running { background: #1565c0; } .status.interrupted { background: #ef6c00; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 8px 0; }
dt { color: #666; } dd { margin: 0; } pre { white-space: pre-wrap; color: #c62828; }
.missing { width: 160px; height: 160px; line-height: 160px; background: #eee; color: #888; }
"""


def _url(path: str) -> str:
    """A relative path made a URL; a ``file://`` URI (already escaped) as it is."""
    return path if path.startswith("file:") else quote(path, safe="/")


def _status(record: dict[str, Any]) -> str:
    status = record.get("status", "pending")
    return f'<span class="status {html.escape(status)}">{html.escape(status)}</span>'


def _score(record: dict[str, Any]) -> str:
    score = record.get("identity")
    if score is not None:
        return f"{score:.3f}"
    note = record.get("identity_note")
    return f"not measured ({html.escape(note)})" if note else "not measured"


def _times(record: dict[str, Any]) -> str:
    phases = record.get("phases") or {}
    parts = [f"{name} {p['seconds']:.0f} s" for name, p in phases.items() if "seconds" in p]
    total = record.get("run_seconds")
    return ", ".join(parts) + (f" (total {total:.0f} s)" if total is not None else "") or "-"


def grid_of(jobs: Sequence[AvatarJob]) -> tuple[list[tuple[str, str | None]], list[str]] | None:
    """(rows: (prompt, portrait), columns: config labels) when every (prompt, portrait)
    has exactly one row per config and there are at least two configs; else None."""
    columns = list(dict.fromkeys(job.config_label for job in jobs))
    rows = list(dict.fromkeys((job.prompt, job.portrait) for job in jobs))
    cells = {(job.prompt, job.portrait, job.config_label) for job in jobs}
    if len(columns) < 2 or len(cells) != len(jobs) or len(jobs) != len(rows) * len(columns):
        return None
    return rows, columns


def _grid_table(out_dir: Path, jobs: Sequence[AvatarJob], records: dict[str, dict],
                base: Path) -> str:  # fmt: skip
    grid = grid_of(jobs)
    if grid is None:
        return ""
    rows, columns = grid
    by_cell = {(job.prompt, job.portrait, job.config_label): job for job in jobs}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for prompt, portrait in rows:
        first = f"<td class='prompt'>{html.escape(prompt)}"
        if portrait:
            first += f"<img class='portrait' src='{_url(_relative(portrait, base))}' alt=''>"
        cells = [first + "</td>"]
        for column in columns:
            job = by_cell[(prompt, portrait, column)]
            record = records.get(job.name, {})
            front = front_view(out_dir, job.name) if record.get("status") == "done" else None
            picture = (f"<img src='{_url(front)}' alt='{html.escape(job.name)}'>" if front
                       else "<div class='missing'>no result yet</div>")  # fmt: skip
            score = record.get("identity")
            score_text = f"identity {score:.3f}" if score is not None else ""
            cells.append(f"<td><a href='#{quote(job.name)}'>{picture}</a>{_status(record)} "
                         f"{score_text}</td>")  # fmt: skip
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<h2>Prompts x configs</h2><table class='grid'><tr><th>prompt</th>{head}</tr>"
            + "".join(body) + "</table>")  # fmt: skip


def _relative(path: str, base: Path) -> str:
    """``path`` relative to the gallery's folder where it lies inside it, else absolute
    (a ``file://`` page opens either)."""
    target = Path(path).resolve()
    try:
        return target.relative_to(base.resolve()).as_posix()
    except ValueError:
        return target.as_uri()


def _card(out_dir: Path, job: AvatarJob, record: dict[str, Any]) -> str:
    files = row_files(out_dir, job.name)
    pictures = []
    if "summary" in files:
        pictures.append(f"<a href='{_url(files['summary'])}'><img class='summary' "
                        f"src='{_url(files['summary'])}' alt='summary of {html.escape(job.name)}'>"
                        "</a>")  # fmt: skip
    if "turntable" in files:
        front = front_view(out_dir, job.name)
        poster = f" poster='{_url(front)}'" if front else ""
        pictures.append(f"<video src='{_url(files['turntable'])}'{poster} controls loop muted "
                        "playsinline preload='metadata'></video>")  # fmt: skip
    run_dir = (Path(RUNS_DIR) / job.name).as_posix()
    links = [f"<a href='{_url(path)}'>{Path(path).name}</a>" for path in files.values()]
    for name in ("save/metrics.json", "config.yaml"):
        if (out_dir / run_dir / name).is_file():
            links.append(f"<a href='{_url(f'{run_dir}/{name}')}'>{Path(name).name}</a>")
    links.append(f"<a href='{_url(run_dir)}/'>run folder</a>")
    facts = [
        ("prompt", html.escape(job.prompt)),
        ("portrait", html.escape(job.portrait or "the config's")),
        ("config", html.escape(job.config_file)
         + (f" {html.escape(' '.join(job.overrides))}" if job.overrides else "")),
        ("seed", "the config's" if job.seed is None else str(job.seed)),
        ("identity (ArcFace)", _score(record)),
        ("times", html.escape(_times(record))),
        ("files", " · ".join(links)),
    ]  # fmt: skip
    if record.get("resumed_at"):
        steps = ", ".join(str(s) for s in record["resumed_at"])
        facts.insert(5, ("resumed", f"from its checkpoint at step {steps}"))
    error = record.get("error") if record.get("status") != "done" else None
    return (
        f"<div class='card' id='{html.escape(job.name)}'><h2>{job.number}. "
        f"{html.escape(job.name)} {_status(record)}</h2>"
        f"<div class='pictures'>{''.join(pictures)}</div><dl>"
        + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
        + "</dl>" + (f"<pre>{html.escape(error)}</pre>" if error else "") + "</div>"
    )  # fmt: skip


def write_gallery(out_dir: Path, jobs: Sequence[AvatarJob], records: dict[str, dict]) -> Path:
    """``out_dir/gallery.html`` for ``jobs`` (their records: ``BatchState.rows``)."""
    statuses = [records.get(job.name, {}).get("status", "pending") for job in jobs]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>GaussianIP batch: {len(jobs)} avatars</title><style>{STYLE}</style></head>"
        f"<body><h1>GaussianIP batch: {len(jobs)} avatars</h1>"
        f"<div class='meta'>{html.escape(counts)} · written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} · <a href='results.csv'>results.csv</a></div>"
        + _grid_table(out_dir, jobs, records, out_dir)
        + "".join(_card(out_dir, job, records.get(job.name, {})) for job in jobs)
        + "</body></html>\n"
    )
    path = out_dir / GALLERY_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["GALLERY_FILE", "grid_of", "write_gallery"]
