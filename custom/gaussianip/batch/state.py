"""``DIR/batch.jsonl``: what happened to each row, kept across runs of the batch command.

One JSON object a line, appended (and flushed to disk) each time a row changes: its
status, run folder, attempts, times, identity score, error, and which worker ran it. A
row's state is its newest line; a line cut short by a kill is skipped. Only the batch's
driver writes the file (workers report to it), so lines never interleave.

Statuses: ``running`` (a worker has it; after a kill of the whole batch, the next run
continues it from its checkpoint), ``interrupted`` (stopped at a step boundary with a
checkpoint, or its worker died), ``failed`` (an error, after its retries) and ``done``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATE_FILE = "batch.jsonl"
RUNS_DIR = "runs"  # DIR/runs/<name>: each row's run folder
STATUSES = ("running", "interrupted", "failed", "done")


class BatchState:
    """The rows' states in ``out_dir/batch.jsonl``: ``rows[name]`` is a row's newest
    record (a dict with at least ``name``, ``status`` and ``time``)."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / STATE_FILE
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # the last line of a killed batch
                if isinstance(record, dict) and "name" in record:
                    self.rows[record["name"]] = record

    def get(self, name: str) -> dict[str, Any]:
        return self.rows.get(name, {})

    def record(self, name: str, **changes: Any) -> dict[str, Any]:
        """The row's record updated with ``changes``, appended to the file at once."""
        record = {**self.rows.get(name, {}), "name": name, **changes,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
        self.rows[name] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return record


def run_dir_of(out_dir: Path, name: str) -> Path:
    """The run folder of the row ``name``."""
    return out_dir / RUNS_DIR / name


__all__ = ["RUNS_DIR", "STATE_FILE", "STATUSES", "BatchState", "run_dir_of"]
