"""``gaussianip-system``: the whole method inside threestudio's launch loop.

Each training step is one step of the engine's ``GaussianIPPipeline`` (stage 1 on
threestudio's camera batch, then, at the first step after stage 1, the View-Consistent
Refinement followed by the reconstruction steps). The run's length is the pipeline's,
``system.stage1.steps + system.reconstruction.steps`` (0 stage-1 steps when starting from
``system.stage2_from``): a larger ``trainer.max_steps`` is lowered to it. Outputs go to the trial's
``save/`` folder, as with ``gaussianip run``; ``launch.py --export ... resume=.../last.ckpt``
writes the checkpoint's avatar as a rigged, textured GLB (``gaussianip export --format glb``)
into ``save/it<step>-export/avatar.glb``.

The Gaussians keep their own per-parameter Adam optimisers (gsplat's densification needs
them), so Lightning runs in manual optimisation; a parameter-free optimiser is returned to
Lightning only so that its step counter advances once per training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import threestudio
import torch
from threestudio.systems.base import BaseSystem

from gaussianip.animate import animate_run, parse_animation
from gaussianip.data import HumanCameraConfig
from gaussianip.engine.config import SystemConfig
from gaussianip.engine.pipeline import GaussianIPPipeline
from gaussianip.render.views import render_views
from gaussianip.threestudio_ext.export import export_trial_glb
from gaussianip.threestudio_ext.registry import register


@register("gaussianip-system")
class GaussianIPSystem(BaseSystem):
    @dataclass
    class Config(SystemConfig, BaseSystem.Config):
        """threestudio's system settings plus ours: the ``system`` section that
        ``gaussianip run`` reads (``gaussianip.engine.config.SystemConfig``), and the
        options of ``launch.py --export``'s GLB (``gaussianip.export.MeshExportOptions``:
        ``system.export.faces``, ``texture_size``, ``motion``, ...)."""

        export: dict = field(default_factory=dict)

    cfg: Config

    def configure(self) -> None:
        self.automatic_optimization = False
        system = {f.name: getattr(self.cfg, f.name) for f in fields(SystemConfig)}
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.animation = parse_animation(self.cfg.animation)  # a bad motion fails here
        self.pipeline = GaussianIPPipeline({"system": system, "data": {}}, device)
        self.gaussians = self.pipeline.model  # a submodule: checkpoints hold the Gaussians
        self._step_counter = torch.nn.Parameter(torch.zeros(()))
        self._finished = False

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self._step_counter], lr=0.0)

    def _use_trial(self) -> None:
        """The trial's camera settings (ring and turntable) and save/ folder."""
        datamodule = getattr(getattr(self, "_trainer", None), "datamodule", None)
        if isinstance(getattr(datamodule, "cfg", None), HumanCameraConfig):
            self.pipeline.use_camera_config(datamodule.cfg)
        self.pipeline.save_dir = Path(self.get_save_dir())

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self._use_trial()
        total = self.pipeline.total_steps
        if self.trainer.max_steps > total or self.trainer.max_steps < 0:
            threestudio.info(f"trainer.max_steps set to {total} (stage 1 + reconstruction).")
            self.trainer.fit_loop.epoch_loop.max_steps = total
        elif self.trainer.max_steps < total:
            threestudio.warn(f"trainer.max_steps={self.trainer.max_steps} stops the run before "
                             f"the method's {total} steps (stage 1 + reconstruction).")  # fmt: skip

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        step = self.true_global_step
        stage1 = step < self.pipeline.stage1_steps
        logs = self.pipeline.train_step(step, batch if stage1 else None)
        self.optimizers().step()  # advances Lightning's global step by one
        for key, value in logs.items():
            self.log(f"train/{key}", value, prog_bar=key in ("loss", "timestep"))
        self.log("train/stage", 1.0 if stage1 else 2.0, prog_bar=True)

    # threestudio's `resume=ckpts/last.ckpt`: Lightning restores its step counter; the
    # engine's own state (Gaussians of any count, Adam moments, densification statistics,
    # random generators, the phase) travels in the checkpoint beside it.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["gaussianip"] = self.pipeline.state_dict(self.true_global_step - 1)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("gaussianip")
        if state is None:
            return
        # Called before Lightning loads the module's weights: the Gaussians are resized to
        # the checkpoint's count first, so that its tensors fit. A checkpoint taken in the
        # reconstruction rebuilds it from the trial's refined views, hence _use_trial.
        self._use_trial()
        self.pipeline.load_state_dict(state)

    def on_train_end(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            files = self.pipeline.finish()
            self._finished = True
            threestudio.info("gaussianip: wrote " + ", ".join(str(p) for p in files.values()))

    def _render(self, batch: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad():
            return render_views(self.gaussians, batch)["comp_rgb"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        rgb = self._render(batch)[0]
        self.save_image_grid(
            f"it{self.true_global_step}-{int(batch['index'][0])}.png",
            [{"type": "rgb", "img": rgb, "kwargs": {"data_format": "HWC"}}],
            name="validation_step",
            step=self.true_global_step,
        )

    def on_validation_epoch_end(self) -> None:
        pass

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        rgb = self._render(batch)[0]
        self.save_image_grid(
            f"it{self.true_global_step}-test/{int(batch['index'][0])}.png",
            [{"type": "rgb", "img": rgb, "kwargs": {"data_format": "HWC"}}],
            name="test_step",
            step=self.true_global_step,
        )

    # threestudio's `launch.py --export ... resume=.../last.ckpt` (Lightning's predict loop).
    def on_predict_start(self) -> None:
        self._use_trial()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        return None  # the export is one file, written once the loop ends

    def on_predict_epoch_end(self) -> None:
        path = export_trial_glb(self.pipeline, self.cfg.body, self.true_global_step,
                                self.cfg.export)  # fmt: skip
        threestudio.info(f"gaussianip: wrote {path}")

    def on_test_epoch_end(self) -> None:
        # The turntable video is the engine's turntable.mp4 (OpenCV, no ffmpeg needed);
        # a --test run from a checkpoint writes the final outputs here.
        if self.pipeline.save_dir is None:
            self.pipeline.save_dir = Path(self.get_save_dir())
        self._finish()
        # system.animation.motion: `launch.py --test ... resume=...` animates the trial.
        files = animate_run(self.pipeline.save_dir, self.animation, str(self.pipeline.device))
        if files:
            threestudio.info("gaussianip: wrote " + ", ".join(str(p) for p in files.values()))
