"""``gaussianip-system``: the method inside threestudio's launch loop (stage 1 for now).

Each training step is the engine's ``Stage1Trainer.step`` on threestudio's camera batch.
The Gaussians keep their own per-parameter Adam optimisers (gsplat's densification needs
them), so Lightning runs in manual optimisation; a parameter-free optimiser is returned
to Lightning only so that its step counter advances once per training step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from threestudio.systems.base import BaseSystem

from gaussianip.engine.run import build_stage1
from gaussianip.gaussians import save_ply
from gaussianip.render.views import render_views
from gaussianip.threestudio_ext.registry import register


@register("gaussianip-system")
class GaussianIPSystem(BaseSystem):
    @dataclass
    class Config(BaseSystem.Config):
        # The same keys as the ``system`` section that ``gaussianip run`` reads.
        face_image: str | None = "load/portraits/eileen_collins_nasa.png"
        repel_face_image: str | None = "load/portraits/grace_hopper_us_navy.jpg"
        face_analyser: str = "buffalo_l"
        face_analyser_root: str | None = None
        body: dict = field(default_factory=dict)
        prior: dict = field(default_factory=dict)
        prompt_processor: dict = field(default_factory=dict)
        guidance: dict = field(default_factory=dict)
        geometry: dict = field(default_factory=dict)
        stage1: dict = field(default_factory=dict)

    cfg: Config

    def configure(self) -> None:
        self.automatic_optimization = False
        keys = ("face_image", "repel_face_image", "face_analyser", "face_analyser_root", "body",
                "prior", "prompt_processor", "guidance", "geometry", "stage1")  # fmt: skip
        system = {k: getattr(self.cfg, k) for k in keys}
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
