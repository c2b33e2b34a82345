"""``gaussianip-system``: the method inside threestudio's launch loop (stage 1 for now).

Each training step is the engine's ``Stage1Trainer.step`` on threestudio's camera batch.
The Gaussians keep their own per-parameter Adam optimisers (gsplat's densification needs
them), so Lightning runs in manual optimisation; a parameter-free optimiser is returned
to Lightning only so that its step counter advances once per training step.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from threestudio.systems.base import BaseSystem

from gaussianip.engine.run import SystemConfig, build_stage1
from gaussianip.gaussians import save_ply
from gaussianip.render.views import render_views
from gaussianip.threestudio_ext.registry import register


@register("gaussianip-system")
class GaussianIPSystem(BaseSystem):
    @dataclass
    class Config(SystemConfig, BaseSystem.Config):
        """threestudio's system settings plus ours: the ``system`` section that
        ``gaussianip run`` reads (``gaussianip.engine.run.SystemConfig``)."""

    cfg: Config

    def configure(self) -> None:
        self.automatic_optimization = False
        system = {f.name: getattr(self.cfg, f.name) for f in fields(SystemConfig)}
        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.engine, self.guidance = build_stage1({"system": system, "data": {}}, device)
        self.gaussians = self.engine.model  # a submodule: checkpoints hold the Gaussians
        self._step_counter = torch.nn.Parameter(torch.zeros(()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self._step_counter], lr=0.0)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        step = self.true_global_step
        logs = self.engine.step(step, batch)
        self.optimizers().step()  # advances Lightning's global step by one
        for key, value in logs.items():
            self.log(f"train/{key}", value, prog_bar=key in ("loss", "timestep"))
        self.log("train/phase", float(self.guidance.schedule.phase(step)), prog_bar=True)

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

    def on_test_epoch_end(self) -> None:
        save_ply(self.get_save_path("stage1.ply"), dict(self.gaussians.params))
        self.save_img_sequence(
            f"it{self.true_global_step}-test", f"it{self.true_global_step}-test", r"(\d+)\.png",
            save_format="mp4", fps=30, name="test", step=self.true_global_step,
        )  # fmt: skip
