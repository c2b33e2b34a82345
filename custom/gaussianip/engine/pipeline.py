"""The whole method as one engine: stage 1, View-Consistent Refinement, reconstruction.

``GaussianIPPipeline(config, device, save_dir, prior=None)`` checks the config, builds
everything (taking ``prior``, a ``HumanPrior`` already loaded for the config's
``system.prior``, instead of loading one: a worker running many avatars loads it once), and
is then driven one step at a time by a host (our CLI's ``run`` or threestudio's
``gaussianip-system``): ``train_step(step)`` for ``step`` in ``range(total_steps)``, then
``finish()``. Steps ``[0, stage1_steps)`` are stage 1; the first step after it runs the
refinement (all views, one call) before its reconstruction step. Files appear in
``save_dir`` as soon as they exist:

- after stage 1: ``stage1.ply``, ``stage1_views.png`` (thumbnails);
- after refinement: ``vcr/view_XX.png`` (every refined view, full size) and
  ``vcr_views.png`` (thumbnails);
- at the end: ``gaussians.ply``, ``turntable.mp4`` (H.264), ``metrics.json``,
  ``summary.png``, ``avatar_rig.npz`` (its binding to the body, for ``gaussianip animate``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import Tensor

from gaussianip.data import HumanCameraConfig, HumanCameraSampler, select_views
from gaussianip.engine.config import RunSettings, parse_run_config
from gaussianip.engine.metrics import identity_check, run_metrics
from gaussianip.engine.reconstruction import Reconstructor
from gaussianip.engine.stage1 import Stage1Trainer
from gaussianip.errors import ConfigError
from gaussianip.faces.identity import read_portrait
from gaussianip.gaussians import GaussianModel, load_ply, save_ply
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.images import (
    BackgroundPngWriter,
    image_grid,
    image_row,
    load_png,
    save_json,
    save_mp4,
    save_png,
)
from gaussianip.memory_plan import follow_plan, memory_budget_gib, plan_memory
from gaussianip.pictures import thumbnails, write_summary
from gaussianip.prior.human_prior import HumanPrior, PriorConfig
from gaussianip.render.views import render_views

log = logging.getLogger(__name__)

VCR_DIR = "vcr"


def vcr_view_name(view: int) -> str:
    return f"view_{view:02d}.png"


def check_loaded_prior(prior: HumanPrior, wanted: PriorConfig, device: torch.device) -> None:
    """``ConfigError`` unless ``prior`` was built from ``wanted`` (a config's
    ``system.prior``) on ``device``: a run never takes another config's networks."""
    if prior.cfg != wanted:
        differ = [f.name for f in dataclasses.fields(wanted)
                  if getattr(prior.cfg, f.name) != getattr(wanted, f.name)]  # fmt: skip
        raise ConfigError(
            f"The loaded prior was built for other system.prior settings ({', '.join(differ)} "
            "differ); build one for this config (HumanPrior.build(settings.prior, device))."
        )
    if not _same_device(prior.device, device):
        raise ConfigError(f"The loaded prior is on {prior.device}, the run on {device}.")


def _same_device(a: torch.device, b: torch.device) -> bool:
    index = (a.index or 0, b.index or 0) if a.type == "cuda" else (0, 0)
    return a.type == b.type and index[0] == index[1]


class GaussianIPPipeline:
    """Stage 1 -> VCR -> reconstruction on one device (see the module docstring)."""

    def __init__(
        self,
        config: DictConfig | dict | RunSettings,
        device: str | torch.device = "cpu",
        save_dir: str | Path | None = None,
        prior: HumanPrior | None = None,
    ) -> None:
        from gaussianip.body import build_body_model
        from gaussianip.faces import build_face_analyser, extract_identity
        from gaussianip.guidance.hds_guidance import HDSGuidance, body_pose_images

        # Everything a user can get wrong is checked before any model is built.
        s = config if isinstance(config, RunSettings) else parse_run_config(config)
        self.settings, self.device = s, torch.device(device)
        if prior is not None:
            check_loaded_prior(prior, s.prior, self.device)
        # Speed-for-memory switches left null in the config follow the GPU's free memory
        # (a loaded prior's own memory counts as free: a new prior would take as much).
        budget = memory_budget_gib(self.device)
        if budget is not None and prior is not None:
            budget = round(budget + prior.device_gib(), 2)
        self.memory_plan = plan_memory(budget, s.memory)
        follow_plan(self.memory_plan, s.guidance, s.vcr, s.reconstruction)
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.body = build_body_model(**vars(s.body))

        t0 = time.perf_counter()
        self.analyser = build_face_analyser(s.system.face_analyser, s.system.face_analyser_root)
        portraits = (s.system.face_image, s.system.repel_face_image)
        self.identity, repel = (extract_identity(p, self.analyser) if p else None
                                for p in portraits)  # fmt: skip
        if prior is None:
            prior = HumanPrior.build(s.prior, self.device)
        else:
            prior.prepare_run()  # after an earlier avatar: back on the device, fast path back
        self.prior = prior
        # Seeded after the prior exists, so that a loaded prior and a new one (whose random
        # initialisation draws from the same generator) give the same run.
        torch.manual_seed(s.seed)
        body_on_device = self.body.to(self.device)
        self.pose_images = body_pose_images(body_on_device)
        self.guidance: HDSGuidance | None = HDSGuidance(
            self.prior, s.guidance, self.identity, repel, self.pose_images
        )
        self.sampler = HumanCameraSampler(s.data)
        if s.stage1_ply is not None:
            self.model = GaussianModel(load_ply(s.stage1_ply), s.gaussians).to(self.device)
            self.stage1_steps = 0
            log.info("Starting at stage 2 from %s (%d Gaussians).", s.stage1_ply,
                     self.model.num_gaussians)  # fmt: skip
        else:
            generator = torch.Generator().manual_seed(0)
            self.model = gaussians_from_body(self.body, s.gaussians, generator).to(self.device)
            self.stage1_steps = s.stage1.steps
        self.stage1: Stage1Trainer | None = (
            Stage1Trainer(self.model, self.sampler, self.guidance, s.stage1, s.densify)
            if self.stage1_steps
            else None
        )
        self.reconstructor: Reconstructor | None = None
        self.refined: Tensor | None = None
        self.metrics: dict[str, Any] = {"setup_seconds": time.perf_counter() - t0, "phases": {}}
        self._phase_start = time.perf_counter()

    # ------------------------------------------------------------------ the schedule
    @property
    def total_steps(self) -> int:
        return self.stage1_steps + self.settings.reconstruction.steps

    def phase(self, step: int) -> str:
        return "stage1" if step < self.stage1_steps else "reconstruction"

    def use_camera_config(self, cfg: HumanCameraConfig) -> None:
        """Take a host's camera settings (threestudio's ``data`` section)."""
        self.sampler = HumanCameraSampler(cfg)
        if self.stage1 is not None:
            self.stage1.sampler = self.sampler

    # ------------------------------------------------------------------ steps
    def train_step(
        self,
        step: int,
        batch: dict[str, Any] | None = None,
        on_refine_step: Callable[[int, int], None] | None = None,
    ) -> dict[str, float]:
        """One step of the run. ``batch``: the host's camera batch (stage 1 only)."""
        if step < self.stage1_steps:
            assert self.stage1 is not None
            logs = self.stage1.step(step, batch)
            if step == self.stage1_steps - 1:
                self.finish_stage1()
            return logs
        if self.reconstructor is None:
            self.refine(on_refine_step)
        assert self.reconstructor is not None
        return self.reconstructor.step(step - self.stage1_steps)

    def _end_phase(self, name: str, **values: Any) -> None:
        now = time.perf_counter()
        if name in self.metrics["phases"]:  # ended before a resume: its record stands
            self._phase_start = now
            return
        self.metrics["phases"][name] = {"seconds": round(now - self._phase_start, 3), **values}
        self._phase_start = now

    def finish_stage1(self) -> None:
        """Save stage 1's result and free what only stage 1 needed."""
        self._end_phase("stage1", steps=self.stage1_steps)
        if self.save_dir is not None:
            save_ply(self.save_dir / "stage1.ply", dict(self.model.params))
            views = self.render_turntable(self.sampler.cfg.n_val_views)
            small = thumbnails(views, self.settings.outputs.thumbnail_size)
            save_png(self.save_dir / "stage1_views.png", image_row(small, gap=4))
        if self.stage1 is not None:
            self.metrics.setdefault("skipped", {})["stage1"] = self.stage1.guard.skipped
        self.stage1 = None  # optimisers, densification state
        self.guidance = None  # stage-1 conditions; the prior itself is shared with VCR
        self.prior.release_fast_path()  # compiled graphs and CUDA-graph memory: stage 1 only
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @torch.no_grad()
    def render_turntable(self, n_views: int | None = None) -> Tensor:
        """[N, H, W, 3] evaluation turntable renders of the current Gaussians."""
        return self.render_each(self.sampler.turntable(n_views))

    @torch.no_grad()
    def turntable_frames(self, n_views: int) -> Iterator[Tensor]:
        """The evaluation turntable's [H, W, 3] renders, one at a time (a 120-frame
        1024-px turn would hold 1.5 GB of floats at once)."""
        cameras = self.sampler.turntable(n_views)
        for i in range(n_views):
            yield self.render_each(select_views(cameras, [i]))[0]

    @torch.no_grad()
    def render_each(self, cameras: dict[str, Any]) -> Tensor:
        """[N, H, W, 3] renders (on the CPU) of the N views of ``cameras``, one at a time
        (1024-px rings stay small in memory)."""
        backend = self.settings.stage1.backend
        n_views = cameras["c2w"].shape[0]
        return torch.cat([
            render_views(self.model, select_views(cameras, [i]),
                         backend=backend)["comp_rgb"].cpu()  # type: ignore[arg-type]
            for i in range(n_views)
        ])  # fmt: skip

    def _existing_views(self, n_views: int) -> dict[int, Tensor]:
        """Refined views already on disk (a restarted stage 2)."""
        found: dict[int, Tensor] = {}
        folders = [self.save_dir / VCR_DIR] if self.save_dir is not None else []
        if self.settings.stage1_ply is not None:
            folders.append(self.settings.stage1_ply.parent / VCR_DIR)
        for folder in folders:
            for view in range(n_views):
                file = folder / vcr_view_name(view)
                if view not in found and file.is_file():
                    found[view] = load_png(file)
        return found

    def refine(self, on_step: Callable[[int, int], None] | None = None) -> Tensor:
        """Render the ring, refine every view (reusing views already refined), save them
        and set up the reconstruction. Returns the refined views [N, H, W, 3]."""
        from gaussianip.refine import ViewConsistentRefiner

        s = self.settings
        cameras = self.sampler.refinement_ring()
        n_views = cameras["c2w"].shape[0]
        start = time.perf_counter()
        before = self.render_each(cameras)
        parts = {"ring_render": time.perf_counter() - start}  # seconds, for benchmarks
        refined = self._existing_views(n_views)
        missing = [v for v in range(n_views) if v not in refined]
        if missing:
            refiner = ViewConsistentRefiner(self.prior, s.vcr, s.prompt, self.identity,
                                            self.pose_images)  # fmt: skip

            with BackgroundPngWriter() as writer:

                def keep(view: int, image: Tensor) -> None:
                    # 8-bit like the saved PNGs, so a restarted stage 2 fits the same
                    # targets; saved as it comes (on a writer thread, overlapping the next
                    # view's decoding), so a run killed here redoes only the views not on disk.
                    image = image.cpu()
                    refined[view] = (image * 255).round() / 255
                    if self.save_dir is not None:
                        writer.save(self.save_dir / VCR_DIR / vcr_view_name(view), image)

                refiner.refine(before, cameras, views=missing, on_step=on_step, on_view=keep)
                parts.update(refiner.seconds)
                start = time.perf_counter()
            parts["png_wait"] = time.perf_counter() - start  # PNGs still queued after decoding
        start = time.perf_counter()
        after = torch.stack([refined[v] for v in range(n_views)])
        if self.save_dir is not None:
            for view in range(n_views):  # views reused from an earlier run: every view here
                file = self.save_dir / VCR_DIR / vcr_view_name(view)
                if not file.exists():
                    save_png(file, after[view])
            # Rows of 8 views: stage-1 renders above, refined views below.
            size = s.outputs.thumbnail_size  # full-size views stay in vcr/
            rows = torch.cat([thumbnails(torch.cat([before[i : i + 8], after[i : i + 8]]), size)
                              for i in range(0, n_views, 8)])  # fmt: skip
            save_png(self.save_dir / "vcr_views.png", image_grid(rows, columns=8, gap=4))
        parts["outputs"] = time.perf_counter() - start
        self._end_phase("vcr", views=n_views, reused_views=n_views - len(missing),
                        denoising_steps=s.vcr.refine_steps,
                        parts={k: round(v, 3) for k, v in parts.items()})  # fmt: skip
        self.refined = after
        if self.device.type == "cuda":
            self.prior.offload()  # reconstruction needs no diffusion model: free its memory
        self.reconstructor = Reconstructor(self.model, cameras, after, s.reconstruction,
                                           self.body.to(self.device))  # fmt: skip
        return after

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self, step: int) -> dict[str, Any]:
        """Everything needed to continue after ``step``: tensors, numbers and lists only,
        so that it loads with ``torch.load(weights_only=True)``."""
        state: dict[str, Any] = {
            "step": step,
            "params": {k: v.detach().cpu() for k, v in self.model.params.items()},
            "torch_rng": torch.get_rng_state(),
            "skipped": self.skipped_steps(),
            "phases": self.metrics["phases"],
            # seconds of the phase under way, so a resumed run's metrics count them too
            "phase_seconds": time.perf_counter() - self._phase_start,
            "resumed": self.metrics.get("resumed", []),
        }
        if self.stage1 is not None:
            state["stage1"] = {
                "optimizers": {k: o.state_dict() for k, o in self.stage1.optimizers.items()},
                "strategy": self.stage1.strategy_state,
                "generator": self.stage1.generator.get_state(),
                "guidance_generator": self.guidance.generator.get_state(),  # type: ignore[union-attr]
            }
        if self.reconstructor is not None:
            r = self.reconstructor
            state["reconstruction"] = {
                "optimizers": {k: o.state_dict() for k, o in r.optimizers.items()},
                "generator": r.generator.get_state(),
                "order": list(r._order),
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> int:
        """Restore a ``state_dict``; returns its step (the run continues at step + 1)."""
        step = int(state["step"])
        for name, value in state["params"].items():
            self.model.params[name] = torch.nn.Parameter(value.to(self.device))
        torch.set_rng_state(state["torch_rng"])
        self.metrics["phases"] = dict(state.get("phases", {}))
        self.metrics["skipped"] = dict(state.get("skipped", {}))
        self.metrics["resumed"] = [*state.get("resumed", []), {
            "at_step": step + 1, "phase": self.phase(step + 1),
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        }]  # fmt: skip
        if step < self.stage1_steps - 1:
            assert self.stage1 is not None and self.guidance is not None
            s1 = state["stage1"]
            self.stage1.optimizers = self.model.make_optimizers()
            for k, optimizer in self.stage1.optimizers.items():
                optimizer.load_state_dict(s1["optimizers"][k])
            self.stage1.strategy_state = {
                k: (v.to(self.device) if isinstance(v, Tensor) else v)
                for k, v in s1["strategy"].items()
            }
            self.stage1.generator.set_state(s1["generator"])
            self.guidance.generator.set_state(s1["guidance_generator"])
            self.stage1.guard.skipped = int(state["skipped"].get("stage1", 0))
        elif step == self.stage1_steps - 1:
            self.finish_stage1()  # stage 1 is done; its files are rewritten identically
        if "reconstruction" in state:
            self.refine()  # every refined view is on disk: nothing is denoised again
            assert self.reconstructor is not None
            r, saved = self.reconstructor, state["reconstruction"]
            for k, optimizer in r.optimizers.items():
                optimizer.load_state_dict(saved["optimizers"][k])
            r.generator.set_state(saved["generator"])
            r._order = list(saved["order"])
            r.guard.skipped = int(state["skipped"].get("reconstruction", 0))
        # The interrupted phase goes on counting from the seconds it had run.
        self._phase_start = time.perf_counter() - float(state.get("phase_seconds", 0.0))
        return step

    def skipped_steps(self) -> dict[str, int]:
        """Steps skipped for NaN/Inf loss or gradients, per phase."""
        skipped = dict(self.metrics.get("skipped", {}))
        for phase, trainer in (("stage1", self.stage1), ("reconstruction", self.reconstructor)):
            if trainer is not None:
                skipped[phase] = trainer.guard.skipped
        return skipped

    # ------------------------------------------------------------------ the end
    def finish(
        self,
        n_turntable: int | None = None,
        before_record: Callable[[Path], dict[str, Path]] | None = None,
    ) -> dict[str, Path]:
        """Write the final outputs; returns {name: path}. ``metrics.json``, the record
        that the run is finished, comes last: after ``before_record(save_dir)`` (a host's
        own outputs, e.g. the animation), so a run killed before it is not finished."""
        if self.reconstructor is not None:
            self._end_phase("reconstruction", steps=self.settings.reconstruction.steps)
        files: dict[str, Path] = {}
        if self.save_dir is None:
            return files
        save = self.save_dir
        files["gaussians.ply"] = save_ply(save / "gaussians.ply", dict(self.model.params))
        from gaussianip.rig import write_run_rig  # every result can be animated later

        if (rig := write_run_rig(save, self.model.params["means"], self.body)) is not None:
            files[rig.name] = rig
        outputs = self.settings.outputs
        frames = self.turntable_frames(n_turntable or outputs.turntable_frames)
        files["turntable.mp4"] = save_mp4(save / "turntable.mp4", frames, outputs.turntable_fps)
        for name in ("stage1.ply", "stage1_views.png", "vcr_views.png"):
            if (save / name).exists():
                files[name] = save / name
        if (save / VCR_DIR).is_dir():
            files[VCR_DIR] = save / VCR_DIR
        self.metrics["identity"] = identity_check(
            self.model, self.body.head_center, self.identity, self.analyser,
            self.settings.stage1.backend,
        )  # fmt: skip
        files["summary.png"] = self.write_summary(save / "summary.png")
        if before_record is not None:
            files.update(before_record(save))
        metrics = run_metrics(self.settings, self.metrics, self.model.num_gaussians, self.device,
                              self.skipped_steps(), self.stage1_steps,
                              self.memory_plan.as_dict())  # fmt: skip
        files["metrics.json"] = save_json(save / "metrics.json", metrics)
        return files

    @torch.no_grad()
    def write_summary(self, path: Path) -> Path:
        """``summary.png`` (``pictures.write_summary``): portrait, stage-1 front view,
        refined front view, final front / side / back (the evaluation camera), and the
        identity score where it exists."""
        s = self.settings
        # read as the identity was (a relative path also from the repository root)
        portrait = read_portrait(s.system.face_image) if s.system.face_image else None
        front = select_views(self.sampler.turntable(4), [0])  # azimuth 0, 90, 180, 270
        stage1_ply = s.stage1_ply or (path.parent / "stage1.ply")
        stage1 = None
        if stage1_ply.is_file():
            final = self.model
            self.model = GaussianModel(load_ply(stage1_ply), s.gaussians).to(self.device)
            try:
                stage1 = self.render_each(front)[0]
            finally:
                self.model = final
        if self.refined is not None:  # the ring starts behind (-180 deg): front is halfway
            refined = self.refined[self.refined.shape[0] // 2]
        else:
            file = path.parent / VCR_DIR / vcr_view_name(self.sampler.cfg.ring_size // 2)
            refined = load_png(file) if file.is_file() else None
        final_views = self.render_each(select_views(self.sampler.turntable(4), [0, 1, 2]))
        return write_summary(path, portrait, stage1, refined, final_views,
                             self.metrics.get("identity"), s.outputs.summary_size)  # fmt: skip
