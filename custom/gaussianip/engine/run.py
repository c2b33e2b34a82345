"""``gaussianip run``: the whole method from one YAML config (the threestudio layout).

Reads the ``data`` and ``system`` sections of a config such as
``custom/gaussianip/configs/gaussianip.yaml``, then runs stage 1, the View-Consistent
Refinement and the reconstruction with progress bars that name the phase, writing every
output into ``<exp_root_dir>/<name>@<timestamp>/save/`` (a new folder each run, so
nothing is overwritten).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gaussianip.checkpoints import load_latest_checkpoint, save_checkpoint
from gaussianip.engine.config import load_run_config, parse_run_config
from gaussianip.errors import AssetError, ConfigError, GaussianIPError
from gaussianip.interrupts import StopRequests
from gaussianip.prior.human_prior import HumanPrior
from gaussianip.run_lock import LOCK_FILE, RunLock

# progress(phase, done, total): phase "stage1", "vcr" or "reconstruction"
Progress = Callable[[str, int, int], None]


def new_run_dir(root: Path, name: str) -> Path:
    """``root/name@<timestamp>``, created; never an existing folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        run_dir = root / (f"{name}@{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            (run_dir / "save").mkdir(parents=True, exist_ok=False)
            return run_dir
        except FileExistsError:
            continue
    raise ConfigError(f"Could not create a new run folder under '{root}'.")


def new_run_dir_at(run_dir: Path) -> Path:
    """``run_dir`` (a host's own choice of folder) made ready for a new run: created, or
    taken as it is when it holds nothing but an empty ``save/`` (a run killed before it
    wrote its config); never a folder with a run in it."""
    if run_dir.exists() and not (run_dir / CONFIG_COPY).exists():
        leftovers = [p for p in run_dir.rglob("*") if p.name != LOCK_FILE and not p.is_dir()]
        if not leftovers:
            (run_dir / "save").mkdir(exist_ok=True)
            return run_dir
    try:
        (run_dir / "save").mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ConfigError(
            f"The run folder '{run_dir}' already holds files; continue it with --resume or "
            "choose another folder."
        ) from None
    return run_dir


def check_writable(root: Path) -> None:
    """Fail in seconds, before any model is built, where run folders cannot be made."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"Cannot create the output folder '{root}' ({err.strerror}); set --out or "
            "exp_root_dir to a folder you can write to."
        ) from None
    if not os.access(root, os.W_OK):
        raise ConfigError(
            f"The output folder '{root}' is not writable; set --out or exp_root_dir to a "
            "folder you can write to."
        )


CHECKPOINT_DIR = "ckpts"  # last.pt and prev.pt (gaussianip.checkpoints)
CONFIG_COPY = "config.yaml"


def resume_config(run_dir: str | Path) -> tuple[Path, DictConfig]:
    """The run folder and the config it was started with (read as untrusted YAML)."""
    from gaussianip.safe_load import load_yaml

    folder = Path(run_dir)
    if (folder / "save").is_dir() is False and folder.name == "save":
        folder = folder.parent
    config_file = folder / CONFIG_COPY
    if not config_file.exists():
        raise AssetError(
            f"--resume '{run_dir}': no {CONFIG_COPY} there. Give the folder of an earlier "
            "`gaussianip run` (outputs/<name>@<time>, the one holding save/ and ckpts/)."
        )
    return folder, load_yaml(config_file, "run's config")


def run_avatar(
    config: DictConfig | None,
    device: str = "cpu",
    out_root: str | None = None,
    resume: str | Path | None = None,
    prior: HumanPrior | None = None,
    run_dir: str | Path | None = None,
    stop: StopRequests | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Run the whole method for one avatar: ``config`` (resolved, as ``load_run_config``
    gives it) into a new folder ``<out_root>/<name>@<time>`` (or exactly ``run_dir``, which
    must not hold a run yet), or continue the run folder ``resume`` from its checkpoint.
    Returns the written files. The one entry every host shares (``gaussianip run``, the
    batch workers):

    - ``prior``: a ``HumanPrior`` already loaded for this config's ``system.prior`` on
      ``device`` (a worker running many avatars loads it once); None builds one.
    - ``stop``: a host's stop requests (``StopRequests.request()`` from another thread);
      by default Ctrl-C and SIGTERM. Either stops at the next step boundary with a
      checkpoint and raises ``RunInterrupted``.
    - ``progress``: called as ``progress(phase, done, total)`` after every step (phase
      ``stage1``, ``vcr`` or ``reconstruction``) instead of drawing progress bars.
    """
    from gaussianip.engine.faults import OOM_HINT, out_of_memory_message

    hooks = _Hooks(prior, stop, progress)
    try:
        if resume is None:
            return _run_locked(config, device, out_root, None, run_dir, hooks)
        folder, config = resume_config(resume)
        with RunLock(folder):  # one writer per folder: a second --resume stops here
            return _run_locked(config, device, out_root, resume, folder, hooks)
    except torch.OutOfMemoryError as err:
        raise GaussianIPError(out_of_memory_message(OOM_HINT)) from err


run = run_avatar  # its earlier name


@dataclass
class _Hooks:
    """What a host hands ``run_avatar`` besides the config (see there)."""

    prior: HumanPrior | None
    stop: StopRequests | None
    progress: Progress | None


def _run_locked(config, device, out_root, resume, run_dir, hooks: _Hooks) -> dict[str, Path]:
    from gaussianip.disk_space import check_free_space
    from gaussianip.engine.pipeline import GaussianIPPipeline
    from gaussianip.paths import absolute_inputs
    from gaussianip.run_folder import missing_outputs
    from gaussianip.size_limits import run_disk_bytes

    if resume is None:
        absolute_inputs(config)  # every input found once, recorded in config.yaml
    settings = parse_run_config(config)  # user errors surface here, in seconds
    from gaussianip.animate import parse_animation

    animation = parse_animation(settings.system.animation)
    if resume is not None:
        missing = missing_outputs(run_dir / "save", settings.stage1_ply is None,
                                  bool(animation.motion))  # fmt: skip
        if not missing:
            raise ConfigError(
                f"--resume '{resume}': that run is finished (every output is in save/); "
                "its outputs are left as they are. Start a new run instead."
            )
        if (run_dir / "save" / "metrics.json").exists():  # finished before, files lost
            print(f"gaussianip: completing the outputs missing from {run_dir / 'save'}: "
                  + ", ".join(missing))  # fmt: skip
    if resume is None and run_dir is None:
        root = Path(out_root or config.get("exp_root_dir", "outputs"))
        check_writable(root)
    elif resume is None:
        root = Path(run_dir).parent
        check_writable(root)
    check_free_space(root if resume is None else run_dir, run_disk_bytes(settings), "This run")
    # Read (and checked) before any model is built: a damaged checkpoint fails in seconds.
    latest = load_latest_checkpoint(run_dir / CHECKPOINT_DIR) if resume is not None else None
    # Built before the run folder exists: a portrait whose face the analyser rejects (or
    # any other failure while building) leaves no empty run folder behind.
    pipeline = GaussianIPPipeline(settings, device, prior=hooks.prior)
    if resume is None:
        if run_dir is None:
            run_dir = new_run_dir(root, str(config.get("name", "gaussianip")))
        else:
            run_dir = new_run_dir_at(Path(run_dir))
        with RunLock(run_dir):
            OmegaConf.save(config, run_dir / CONFIG_COPY)
            return _loop(pipeline, config, run_dir, device, None, animation, hooks)
    return _loop(pipeline, config, run_dir, device, latest, animation, hooks)


def _postfix(pipeline, step: int, logs: dict[str, float]) -> dict[str, object]:
    postfix: dict[str, object] = {"loss": f"{logs['loss']:.3g}"}
    if step < pipeline.stage1_steps and pipeline.guidance is not None and "timestep" in logs:
        postfix.update(phase=pipeline.guidance.schedule.phase(step), t=int(logs["timestep"]),
                       n=int(logs["num_gaussians"]))  # fmt: skip
    return postfix


def _loop(pipeline, config, run_dir: Path, device: str, latest, animation,
          hooks: _Hooks) -> dict[str, Path]:  # fmt: skip
    """Train from the checkpoint (if any) to the end and write the outputs; Ctrl-C or
    SIGTERM (or ``hooks.stop``) stops at the next step boundary with a checkpoint
    (``RunInterrupted``)."""
    from tqdm import tqdm

    from gaussianip.interrupts import RunInterrupted, resume_command

    settings = pipeline.settings
    save = run_dir / "save"
    pipeline.save_dir = save
    every = int(OmegaConf.select(config, "checkpoint.every_n_train_steps", default=200) or 0)
    start = 0
    checkpoints = run_dir / CHECKPOINT_DIR
    if latest is not None:  # (state, file) of a resumed run's newest readable checkpoint
        start = pipeline.load_state_dict(latest[0]) + 1
        print(f"gaussianip: resuming {run_dir} at step {start} of {pipeline.total_steps}")
    quiet = hooks.progress is not None  # the host shows progress its own way

    def bar_for(step: int) -> tqdm:
        if step < pipeline.stage1_steps:
            return tqdm(total=pipeline.stage1_steps, initial=step, desc="stage 1", unit="step",
                        disable=quiet)  # fmt: skip
        return tqdm(total=settings.reconstruction.steps, initial=step - pipeline.stage1_steps,
                    desc="reconstruction", unit="step", disable=quiet)  # fmt: skip

    def report(step: int) -> None:
        if hooks.progress is None:
            return
        if step < pipeline.stage1_steps:
            hooks.progress("stage1", step + 1, pipeline.stage1_steps)
        else:
            hooks.progress("reconstruction", step + 1 - pipeline.stage1_steps,
                           settings.reconstruction.steps)  # fmt: skip

    # The reconstruction's bar starts after the refinement, which runs inside the first
    # reconstruction step with a bar of its own (its time is not the reconstruction's).
    bar: tqdm | None = None if start == pipeline.stage1_steps else bar_for(start)
    vcr_bar: tqdm | None = None
    saved_step = start - 1 if start else None  # the step the newest checkpoint continues
    again = resume_command(run_dir, str(device))

    def stopped(note: str, signum: int | None = None) -> RunInterrupted:
        where = (f"continues after step {saved_step + 1} of {pipeline.total_steps}"
                 if saved_step is not None else "starts it again from the beginning")  # fmt: skip
        return RunInterrupted(f"gaussianip: {note}; `{again}` {where}.",
                              signum or signal.SIGINT)  # fmt: skip

    def on_refine_step(i: int, n: int) -> None:
        nonlocal vcr_bar
        if stop.requested:  # refined views are saved as they come: stopping here is safe
            raise stopped("stopped during the refinement (refined views kept)", stop.signum)
        if vcr_bar is None:
            vcr_bar = tqdm(total=n, desc="VCR", unit="step", disable=quiet)
        vcr_bar.update(1)
        if hooks.progress is not None:
            hooks.progress("vcr", i + 1, n)

    try:
        with hooks.stop or StopRequests() as stop:
            for step in range(start, pipeline.total_steps):
                if step == pipeline.stage1_steps and bar is not None:
                    bar.close()
                    bar = None
                logs = pipeline.train_step(step, on_refine_step=on_refine_step)
                if vcr_bar is not None:
                    vcr_bar.close()
                    vcr_bar = None
                if bar is None:
                    bar = bar_for(step)
                bar.set_postfix(_postfix(pipeline, step, logs))
                bar.update(1)
                report(step)
                last = step == pipeline.total_steps - 1
                due = (every and (step + 1) % every == 0) or step == pipeline.stage1_steps - 1
                # The last step's checkpoint lets --resume redo only the outputs.
                if last or due or stop.requested:
                    save_checkpoint(checkpoints, pipeline.state_dict(step))
                    saved_step = step
                if stop.requested and not last:
                    bar.close()
                    raise stopped(f"stopped after step {step + 1} of {pipeline.total_steps} "
                                  "(checkpoint saved)", stop.signum)  # fmt: skip
            if bar is not None:
                bar.close()
            from gaussianip.animate import animate_run

            def animate_result(folder: Path) -> dict[str, Path]:  # before the record
                video = folder / "animation.mp4"
                if video.is_file() and video.stat().st_size:  # a completed run's own
                    return {}
                video.unlink(missing_ok=True)  # an empty name a killed run had claimed
                return animate_run(folder, animation, device, video)

            files = pipeline.finish(before_record=animate_result)
    except RunInterrupted:
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: stopped inside a step
        if bar is not None:
            bar.close()
        raise stopped("stopped at once (second interrupt), without a new checkpoint") from None
    phases = pipeline.metrics["phases"]
    timing = ", ".join(f"{name} {p['seconds']:.0f} s" for name, p in phases.items())
    print(f"gaussianip: done ({timing}); outputs in {save}: " + ", ".join(sorted(files)))
    return files


__all__ = ["Progress", "load_run_config", "new_run_dir", "resume_config", "run", "run_avatar"]
