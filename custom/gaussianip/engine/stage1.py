"""Stage 1: distil the Gaussian human from a 2D prior (method.md, "Stage 1").

One step: cameras -> render -> (pose images) -> guidance loss -> regularisers -> backward ->
densify / prune -> optimiser step. The guidance is any callable with the signature of
``Guidance`` (the HDS guidance of the human-centric prior, or an analytic stand-in in
tests), so the loop itself needs no model weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.profiler import record_function  # named ranges for `gaussianip bench --profile`

from gaussianip.data import HumanCameraSampler
from gaussianip.engine.faults import NonFiniteGuard
from gaussianip.errors import ConfigError
from gaussianip.gaussians import GaussianModel, HumanDensifyStrategy
from gaussianip.render import BACKENDS
from gaussianip.render.views import render_views


class Guidance(Protocol):
    def __call__(self, rgb: Tensor, batch: dict[str, Any], step: int) -> dict[str, Tensor]:
        """rgb [B, H, W, 3] in [0, 1] -> at least ``{"loss_sds": scalar}``."""
        ...


@dataclass
class Stage1Config:
    steps: int = 2400
    lambda_sds: float = 1.0
    # Regularisers of the released code (weight 1 each): opacity sparsity, and a penalty
    # on Gaussians larger than ``max_scale`` metres.
    lambda_opacity: float = 1.0
    lambda_scale: float = 1.0
    max_scale: float = 0.05
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    backend: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(
                f"system.stage1.steps must be >= 1, got {self.steps}. Set the number of stage-1 "
                "steps (2400 in the paper); to skip stage 1, start from a finished one with "
                "system.stage2_from=RUN_DIR/save."
            )
        for name in ("lambda_sds", "lambda_opacity", "lambda_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"system.stage1.{name} is a loss weight: a finite number >= 0, got {value}."
                )
        if not (math.isfinite(self.max_scale) and self.max_scale > 0):
            raise ConfigError(
                f"system.stage1.max_scale must be a finite length > 0 in metres, got "
                f"{self.max_scale}; the method uses 0.05."
            )
        check_background(self.background, "system.stage1.background")
        check_backend(self.backend, "system.stage1.backend")


def check_background(background: Any, key: str) -> None:
    """``ConfigError`` unless ``background`` is 3 colour values in [0, 1]."""
    values = list(background)
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise ConfigError(f"{key} must be 3 colour values in [0, 1] (RGB), got {values}.")


def check_backend(backend: str, key: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(
            f"{key}='{backend}' is not a rasterizer; use one of {', '.join(BACKENDS)} "
            "(auto: gsplat on CUDA, torch on the CPU)."
        )


def regularisers(model: GaussianModel, max_scale: float) -> dict[str, Tensor]:
    """Opacity sparsity (mean opacity) and large-scale penalty (mean excess scale)."""
    return {
        "loss_opacity": model.opacities.mean(),
        "loss_scale": torch.relu(model.scales.amax(dim=-1) - max_scale).mean(),
    }


class Stage1Trainer:
    """Runs stage 1 on a ``GaussianModel``; ``step(i)`` does one full training step."""

    def __init__(
        self,
        model: GaussianModel,
        sampler: HumanCameraSampler,
        guidance: Guidance,
        cfg: Stage1Config | None = None,
        strategy: HumanDensifyStrategy | None = None,
    ) -> None:
        self.cfg = cfg or Stage1Config()
        self.model, self.sampler, self.guidance = model, sampler, guidance
        self.strategy = strategy or HumanDensifyStrategy()
        self.optimizers = model.make_optimizers()
        self.strategy.check_sanity(model.params, self.optimizers)
        self.strategy_state = self.strategy.initialize_state(scene_scale=model.cfg.scene_scale)
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.guard = NonFiniteGuard("stage 1")

    def step(self, step: int, batch: dict[str, Any] | None = None) -> dict[str, float]:
        """One training step; ``batch`` (a camera batch) defaults to a fresh sample."""
        cfg = self.cfg
        if batch is None:
            batch = self.sampler.sample(step, self.generator)
        with record_function("stage1/render"):
            out = render_views(self.model, batch, cfg.background, backend=cfg.backend)  # type: ignore[arg-type]
        self.strategy.step_pre_backward(
            self.model.params, self.optimizers, self.strategy_state, step, out["info"]
        )
        with record_function("stage1/guidance"):
            terms = self.guidance(out["comp_rgb"], batch, step)
        terms.update(regularisers(self.model, cfg.max_scale))
        loss = (
            cfg.lambda_sds * terms["loss_sds"]
            + cfg.lambda_opacity * terms["loss_opacity"]
            + cfg.lambda_scale * terms["loss_scale"]
        )
        with record_function("stage1/backward"):
            loss.backward()
        if not self.guard.ok(step, loss, self.model.params.values()):
            for optimizer in self.optimizers.values():  # skip the step, keep the Gaussians
                optimizer.zero_grad(set_to_none=True)
            return {"loss": float("nan"), "skipped": 1.0,
                    "num_gaussians": float(self.model.num_gaussians)}  # fmt: skip
        with record_function("stage1/densify_and_adam"):
            self.strategy.step_post_backward(
                self.model.params, self.optimizers, self.strategy_state, step, out["info"]
            )
            for optimizer in self.optimizers.values():
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        logs = {k: float(v.detach()) for k, v in terms.items() if v.dim() == 0}
        logs["loss"] = float(loss.detach())
        logs["num_gaussians"] = float(self.model.num_gaussians)
        return logs

    def run(self, on_step: Callable[[int, dict[str, float]], None] | None = None) -> None:
        for i in range(self.cfg.steps):
            logs = self.step(i)
            if on_step is not None:
                on_step(i, logs)
