"""Many avatars on Ray: ``gaussianip batch`` (a host of the engine, like threestudio_ext).

- ``manifest``: the rows (CSV / JSONL manifest, or the prompts x portraits x configs grid),
  each checked before any work starts;
- ``worker``: ``AvatarWorker``, a Ray actor per GPU that loads the prior once and runs
  rows through ``gaussianip.engine.run.run_avatar``;
- ``state``: ``DIR/batch.jsonl``, what happened to each row (resuming reads it);
- ``results`` and ``gallery``: ``DIR/results.csv`` and ``DIR/gallery.html``;
- ``runner``: ``run_batch``, Ray itself (start or join, actors, ``ray.wait``, retries,
  Ctrl-C); ``command``: the command's arguments.
"""

from gaussianip.batch.manifest import AvatarJob, ManifestError, check_rows, grid_rows, read_manifest
from gaussianip.batch.runner import BatchOptions, run_batch

__all__ = [
    "AvatarJob",
    "BatchOptions",
    "ManifestError",
    "check_rows",
    "grid_rows",
    "read_manifest",
    "run_batch",
]
