"""``gaussianip batch``: the checked rows on Ray, one worker per GPU (or CPU workers).

``run_batch`` starts Ray on this machine (or joins the cluster at ``address``, or at
``RAY_ADDRESS``), makes one ``AvatarWorker`` actor per GPU (``num_gpus=1``; on a machine
without GPUs, CPU workers of ``num_cpus`` each), hands each idle worker the next row and
waits on the rows' futures (``ray.wait``). Each outcome goes into ``DIR/batch.jsonl``,
``results.csv`` and ``gallery.html`` at once.

- A row that fails is tried again, up to ``retries`` times; so is a row whose worker
  died (SIGKILL, a GPU fault): Ray restarts the actor, and the next free worker continues
  the row from its checkpoint.
- Running the same command again skips finished rows and continues the others from their
  checkpoints.
- Ctrl-C asks every worker to stop at its next step boundary (with a checkpoint), records
  the rows as interrupted and ends with one line naming the command that continues; a
  second Ctrl-C stops at once (the rows keep their last checkpoints).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaussianip.batch.gallery import write_gallery
from gaussianip.batch.manifest import AvatarJob, ManifestError
from gaussianip.batch.results import write_results
from gaussianip.batch.state import BatchState, run_dir_of
from gaussianip.batch.worker import CONTROL, AvatarWorker
from gaussianip.errors import ConfigError
from gaussianip.interrupts import RunInterrupted
from gaussianip.run_lock import RunLock

OBJECT_STORE_BYTES = 100 * 2**20  # rows and outcomes are small; Ray's minimum is 75 MiB
POLL_SECONDS = 1.0  # how often the progress lines are refreshed


@dataclass
class BatchOptions:
    """How to run the rows (the command's options)."""

    # a Ray cluster ("auto", "ray://host:10001"); None: RAY_ADDRESS, else Ray on this machine
    address: str | None = None
    retries: int = 1  # more tries of a row that failed or whose worker died
    workers: int | None = None  # None: one per GPU, or CPU workers for every CPU
    cpus_per_worker: int = 1  # CPU workers only: each one's torch threads
    device: str = "auto"  # "auto": GPUs where the cluster has them, else the CPU
    command: str = ""  # the command line that continues the batch, for messages


def continue_command(argv: Sequence[str] | None = None) -> str:
    """The command line that ran (and so continues) this batch."""
    python = Path(sys.executable).name or "python3"
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join([python, "-m", "gaussianip", *args])


def check_resumable(out_dir: Path, jobs: Sequence[AvatarJob], state: BatchState) -> None:
    """``ManifestError`` listing rows that ran in ``out_dir`` with other settings: their
    folders hold a run of the old settings, which a rerun would silently keep."""
    changed = []
    for job in jobs:
        before = state.get(job.name).get("fingerprint")
        if before is not None and before != job.fingerprint:
            changed.append(f"  row {job.number} '{job.name}': its settings changed since it "
                           f"ran in {run_dir_of(out_dir, job.name)}")  # fmt: skip
    if changed:
        raise ManifestError(
            "\n".join(
                [
                    f"{len(changed)} rows ran in '{out_dir}' with other settings; nothing was "
                    "started (their finished or checkpointed runs would not match):",
                    *changed,
                    "  Give them new names, or use another --out.",
                ]
            )  # fmt: skip
        )


def todo_jobs(out_dir: Path, jobs: Sequence[AvatarJob], state: BatchState) -> list[AvatarJob]:
    """The rows that still need work: all but those done (with their metrics on disk)."""

    def finished(job: AvatarJob) -> bool:
        metrics = run_dir_of(out_dir, job.name) / "save" / "metrics.json"
        return state.get(job.name).get("status") == "done" and metrics.is_file()

    return [job for job in jobs if not finished(job)]


def start_ray(address: str | None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start Ray here."""
    import ray

    logging.getLogger("ray").setLevel(logging.WARNING)
    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:  # a local instance: small, no dashboard
        options.update(include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(
            f"Cannot reach the Ray cluster at '{address}': {err}. Start it with `ray start "
            "--head` (and `ray start --address=HEAD:6379` on each GPU node), or leave out "
            "--address and RAY_ADDRESS to run on this machine."
        ) from None


def make_workers(options: BatchOptions, rows: int) -> tuple[list[Any], str]:
    """The worker actors and their device ("cuda" or "cpu")."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    use_gpu = options.device == "cuda" or (options.device == "auto" and gpus > 0)
    if use_gpu and gpus == 0:
        raise ConfigError("--device cuda: the Ray cluster has no GPU. Leave out --device to "
                          "run CPU workers.")  # fmt: skip
    if use_gpu:
        count = options.workers or min(rows, gpus)
        actor = {"num_gpus": 1, "num_cpus": 1}
        device, threads = "cuda", None
    else:
        cpus = int(resources.get("CPU", 1))
        count = options.workers or min(rows, max(1, cpus // options.cpus_per_worker))
        actor = {"num_cpus": options.cpus_per_worker}
        device, threads = "cpu", options.cpus_per_worker
    remote = ray.remote(
        max_restarts=-1,  # a killed worker comes back (loading the prior again)
        max_task_retries=0,  # its row is the host's to hand out again, from its checkpoint
        concurrency_groups={CONTROL: 1},  # progress / stop while a row runs
        **actor,
    )(AvatarWorker)
    return [remote.remote(device, threads) for _ in range(count)], device


class Progress:
    """One bar over the rows (done / total, ETA) and one line per worker (row, phase)."""

    def __init__(self, total: int, done: int, workers: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=done, desc="avatars", unit="avatar", position=0,
                        dynamic_ncols=True)  # fmt: skip
        self.lines = [tqdm(total=0, position=i + 1, bar_format="{desc}", dynamic_ncols=True)
                      for i in range(workers)]  # fmt: skip
        for i, line in enumerate(self.lines):
            line.set_description_str(f"worker {i + 1}: starting", refresh=True)

    def show(self, worker: int, state: dict[str, Any]) -> None:
        row, phase = state.get("row"), state.get("phase", "idle")
        steps = f" {state['done']}/{state['total']}" if state.get("total") else ""
        text = (
            f"worker {worker + 1}: {row} - {phase}{steps}" if row else f"worker {worker + 1}: idle"
        )
        if self.lines[worker].desc != text:  # unchanged lines are not drawn again
            self.lines[worker].set_description_str(text, refresh=True)

    def advance(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        for line in self.lines:
            line.close()
        self.bar.close()


def run_batch(jobs: Sequence[AvatarJob], out_dir: Path, options: BatchOptions) -> int:
    """Run ``jobs`` into ``out_dir`` (see the module docstring). Returns the exit status:
    0 when every row is done, 1 when some failed; ``RunInterrupted`` after Ctrl-C."""
    out_dir = out_dir.expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(out_dir):  # one batch at a time in a folder
        state = BatchState(out_dir)
        check_resumable(out_dir, jobs, state)
        return _run_locked(jobs, out_dir, options, state)


def _run_locked(jobs: Sequence[AvatarJob], out_dir: Path, options: BatchOptions,
                state: BatchState) -> int:  # fmt: skip
    import ray

    todo = todo_jobs(out_dir, jobs, state)

    def publish() -> None:
        write_results(out_dir, jobs, state.rows)
        write_gallery(out_dir, jobs, state.rows)

    done_before = len(jobs) - len(todo)
    if not todo:
        publish()
        print(f"gaussianip batch: all {len(jobs)} rows are done already; results in "
              f"{out_dir / 'results.csv'}, gallery {out_dir / 'gallery.html'}")  # fmt: skip
        return 0
    t_start = time.perf_counter()
    start_ray(options.address)
    try:
        workers, device = make_workers(options, len(todo))
        print(f"gaussianip batch: {len(todo)} of {len(jobs)} rows to run on {len(workers)} "
              f"{device.upper()} worker(s)" + (f" ({done_before} done before)" if done_before
                                               else ""), flush=True)  # fmt: skip
        failed = _dispatch(jobs, todo, workers, out_dir, options, state, publish)
    finally:
        ray.shutdown()
    publish()
    done = sum(state.get(job.name).get("status") == "done" for job in jobs)
    minutes, seconds = divmod(int(time.perf_counter() - t_start), 60)
    print(f"gaussianip batch: {done} of {len(jobs)} rows done in {minutes}:{seconds:02d}; "
          f"results in {out_dir / 'results.csv'}, gallery {out_dir / 'gallery.html'}")  # fmt: skip
    if failed:
        print(f"gaussianip batch: {_rows(len(failed))} failed after {options.retries + 1} "
              f"tries (`{options.command}` tries them again):", file=sys.stderr)  # fmt: skip
        for job in failed:
            error = (state.get(job.name).get("error") or "").splitlines() or ["?"]
            print(f"  row {job.number} '{job.name}': {error[0]}", file=sys.stderr)
        return 1
    return 0


def _dispatch(
    jobs: Sequence[AvatarJob],
    todo: list[AvatarJob],
    workers: list[Any],
    out_dir: Path,
    options: BatchOptions,
    state: BatchState,
    publish: Callable[[], None],
) -> list[AvatarJob]:
    """Hand the rows to the workers until each is done or out of tries; returns the rows
    that failed."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    queue = deque(todo)
    tries = {job.name: 0 for job in todo}
    running: dict[Any, tuple[int, AvatarJob]] = {}  # future -> (worker, row)
    idle = deque(range(len(workers)))
    failed: list[AvatarJob] = []
    progress = Progress(len(jobs), len(jobs) - len(todo), len(workers))
    polls: dict[Any, int] = {}  # progress future -> worker
    reviving: dict[Any, int] = {}  # a restarting worker's first answer -> worker

    def settle(worker: int, job: AvatarJob, outcome: dict[str, Any]) -> None:
        tries[job.name] += 1
        status = outcome.get("status", "failed")
        attempts = int(state.get(job.name).get("attempts", 0)) + 1
        retry = status == "failed" or outcome.get("worker_died", False)
        again = retry and tries[job.name] <= options.retries and not stopping
        if retry and not again and not stopping:
            status = "failed"  # out of tries (its checkpoint stays for a rerun)
        record = {k: v for k, v in outcome.items() if k not in ("status", "worker_died")}
        record.update(status=status, attempts=attempts, finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                      error=outcome.get("error") if status != "done" else None)  # fmt: skip
        state.record(job.name, **record)
        if again:
            queue.appendleft(job)  # the next free worker continues it from its checkpoint
        elif status == "done":
            progress.advance()
        elif status == "failed":
            failed.append(job)
        publish()

    stopping = False
    try:
        while running or (queue and (idle or reviving)):
            while queue and idle and not stopping:
                worker, job = idle.popleft(), queue.popleft()
                folder = run_dir_of(out_dir, job.name)
                state.record(job.name, status="running", fingerprint=job.fingerprint,
                             run_dir=str(folder), started=time.strftime("%Y-%m-%dT%H:%M:%S"),
                             worker=worker + 1)  # fmt: skip
                running[workers[worker].run_row.remote(job, str(folder))] = (worker, job)
            waiting = [*running, *reviving]
            ready, _ = ray.wait(waiting, num_returns=1, timeout=POLL_SECONDS)
            for future in ready:
                if future in reviving:  # a restarted worker answers: it takes rows again
                    worker = reviving.pop(future)
                    try:
                        ray.get(future)
                        idle.append(worker)
                    except RayError:  # not back yet: ask again
                        reviving[workers[worker].info.remote()] = worker
                    continue
                worker, job = running.pop(future)
                try:
                    outcome = ray.get(future)
                except RayTaskError as err:  # a bug in the worker's own code
                    outcome = {"status": "failed", "error": str(err).splitlines()[-1]}
                except RayError as err:  # the worker died (killed, a GPU fault, its node)
                    outcome = _worker_died(err)
                settle(worker, job, outcome)
                if outcome.get("worker_died"):
                    # Ray restarts it (loading the prior again); rows go to it once it is back.
                    reviving[workers[worker].info.remote()] = worker
                else:
                    idle.append(worker)
            _show_progress(workers, running, polls, progress, set(reviving.values()))
    except KeyboardInterrupt:
        stopping = True  # each worker saves a checkpoint at its next step; Ctrl-C again: now
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for actor in workers:
            actor.request_stop.remote()
        try:
            for future, (worker, job) in list(running.items()):
                try:
                    outcome = ray.get(future)
                except RayError as err:
                    outcome = _worker_died(err)
                settle(worker, job, outcome)
        except KeyboardInterrupt:
            pass  # at once: the rows still marked running continue from their checkpoints
        progress.close()
        done = sum(state.get(job.name).get("status") == "done" for job in jobs)
        raise RunInterrupted(
            f"gaussianip batch: stopped with {done} of {len(jobs)} rows done (the others keep "
            f"their checkpoints); `{options.command}` continues."
        ) from None
    progress.close()
    return failed


def _rows(n: int) -> str:
    return f"{n} row" + ("" if n == 1 else "s")


def _worker_died(err: BaseException) -> dict[str, Any]:
    """The outcome of a row whose worker died: interrupted, to be tried again."""
    lines = str(err).strip().splitlines()
    reason = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    error = f"its worker died ({reason}); the row keeps its last checkpoint"
    return {"status": "interrupted", "worker_died": True, "error": error}


def _show_progress(
    workers: list[Any],
    running: dict[Any, tuple[int, AvatarJob]],
    polls: dict[Any, int],
    progress: Progress,
    reviving: set[int],
) -> None:
    """Ask the busy workers where they are (answers come back on a later call)."""
    import ray

    if polls:
        answered, _ = ray.wait(list(polls), num_returns=len(polls), timeout=0)
        for future in answered:
            worker = polls.pop(future)
            try:
                progress.show(worker, ray.get(future))
            except Exception:  # a worker restarting: its line updates on the next poll
                pass
    busy = {worker for worker, _ in running.values()}
    for worker in range(len(workers)):
        if worker in reviving:
            progress.show(worker, {"row": "-", "phase": "restarting"})
        elif worker not in busy:
            progress.show(worker, {})
        elif worker not in polls.values():
            polls[workers[worker].progress.remote()] = worker


__all__ = ["BatchOptions", "check_resumable", "continue_command", "run_batch", "todo_jobs"]
