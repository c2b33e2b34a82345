"""A batch worker: one device, one loaded prior, rows one after another.

``AvatarWorker`` is a plain class; the batch host makes it a Ray actor (one per GPU, or
CPU workers) with ``ray.remote``. ``run_row`` runs a row through the engine's
``run_avatar`` with the worker's prior (loaded at its first row, again only when a row's
``system.prior`` differs), continuing the row's run folder from its checkpoint when it
has one. The control methods (``progress``, ``request_stop``, ``info``) run in a
concurrency group of their own, so the host reaches them while a row runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import ray

from gaussianip.batch.manifest import AvatarJob
from gaussianip.errors import GaussianIPError
from gaussianip.interrupts import RunInterrupted, StopRequests

log = logging.getLogger(__name__)

CONTROL = "control"  # the actor's concurrency group for the host's calls during a row


class AvatarWorker:
    """Runs batch rows on ``device`` ("cpu" or "cuda": the GPU Ray gave the actor), with
    ``threads`` CPU threads for torch (None: torch's default)."""

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.prior: Any = None  # gaussianip.prior.human_prior.HumanPrior
        self.prior_loads = 0
        self._stop: StopRequests | None = None
        self._stopping = False
        self._progress: dict[str, Any] = {"row": None, "phase": "idle", "done": 0, "total": 0}

    # ------------------------------------------------------------------ control
    # Retried by Ray until a restarting worker is back: the host's sign to give it rows.
    @ray.method(concurrency_group=CONTROL, max_task_retries=-1)
    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "device": self.device,
                "prior_loads": self.prior_loads}  # fmt: skip

    @ray.method(concurrency_group=CONTROL)
    def progress(self) -> dict[str, Any]:
        """The row under way, its phase and steps (``done`` of ``total``)."""
        return dict(self._progress)

    @ray.method(concurrency_group=CONTROL)
    def request_stop(self) -> None:
        """Stop the row under way at its next step boundary (with a checkpoint), and start
        no other."""
        self._stopping = True
        if self._stop is not None:
            self._stop.request()

    # ------------------------------------------------------------------ rows
    def _prior_for(self, config: dict[str, Any]) -> tuple[str, float]:
        """The worker's prior, built for ``config``'s ``system.prior`` if it has none or
        one for other settings. Returns ("loaded" or "reused", seconds)."""
        from gaussianip.engine.config import parse_run_config
        from gaussianip.prior.human_prior import HumanPrior

        wanted = parse_run_config(config).prior
        if self.prior is not None and self.prior.cfg == wanted:
            return "reused", 0.0
        self._progress.update(phase="loading the prior", done=0, total=0)
        self.prior = None  # its memory first
        t0 = time.perf_counter()
        self.prior = HumanPrior.build(wanted, self.device)
        self.prior_loads += 1
        return "loaded", time.perf_counter() - t0

    def _on_step(self, phase: str, done: int, total: int) -> None:
        self._progress.update(phase=phase, done=done, total=total)

    def run_row(self, job: AvatarJob, run_dir: str) -> dict[str, Any]:
        """Run (or continue) ``job`` in ``run_dir``; returns its outcome: ``status``
        (``done``, ``interrupted`` or ``failed``), ``error``, ``identity`` (the ArcFace
        score, where measured), ``seconds``, ``phases``, ``resumed_at`` (the step it
        continued at), ``prior`` ("loaded" / "reused") and ``prior_seconds``, and the
        worker's ``pid`` and ``host``."""
        from omegaconf import OmegaConf

        from gaussianip.engine.run import CONFIG_COPY, run_avatar

        folder = Path(run_dir)
        outcome: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(),
                                   "device": self.device}  # fmt: skip
        if self._stopping:
            return {**outcome, "status": "interrupted", "error": "the batch was stopping"}
        t0 = time.perf_counter()
        self._stop = StopRequests()
        self._progress = {"row": job.name, "phase": "starting", "done": 0, "total": 0}
        try:
            metrics_file = folder / "save" / "metrics.json"
            if not metrics_file.is_file():  # finished before the host heard of it: keep it
                prior_use, prior_seconds = self._prior_for(job.config)
                outcome.update(prior=prior_use, prior_seconds=round(prior_seconds, 3))
                self._progress.update(phase="setting up")
                hooks = {"prior": self.prior, "stop": self._stop, "progress": self._on_step}
                if (folder / CONFIG_COPY).is_file():  # started before: continue it
                    outcome["resumed"] = True
                    run_avatar(None, self.device, resume=folder, **hooks)
                else:
                    run_avatar(OmegaConf.create(job.config), self.device, run_dir=folder,
                               **hooks)  # fmt: skip
            metrics = json.loads(metrics_file.read_text())
            identity = metrics.get("identity") or {}
            outcome.update(
                status="done",
                identity=identity.get("arcface_cosine"),
                identity_note=identity.get("reason"),
                phases=metrics.get("phases"),
                run_seconds=metrics.get("total_seconds"),
                resumed_at=[r.get("at_step") for r in metrics.get("resumed", [])],
            )
        except RunInterrupted as err:
            outcome.update(status="interrupted", error=str(err))
        except GaussianIPError as err:
            outcome.update(status="failed", error=str(err))
        except Exception as err:  # a bug or a fault: its traceback goes to the worker's log
            traceback.print_exc()
            outcome.update(status="failed", error=f"{type(err).__name__}: {err}")
        finally:
            self._stop = None
            self._progress = {"row": None, "phase": "idle", "done": 0, "total": 0}
            _free_memory(self.device)  # the row's pipeline, before the next row builds one
        outcome["seconds"] = round(time.perf_counter() - t0, 3)
        return outcome


def _free_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


__all__ = ["CONTROL", "AvatarWorker"]
