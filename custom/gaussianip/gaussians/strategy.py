"""Densification and pruning on the method's schedule, through gsplat's strategy.

gsplat's ``DefaultStrategy`` already implements 3DGS's clone / split / prune from
accumulated screen-space gradients. The method differs in two ways, added here:

* a prune-only phase after densification (the released code: every 300 steps in
  [1700, 1900), i.e. once, at step 1800);
* opacity resets are off (the method never resets opacity);
* optionally, no growth near given points (the hands: ``no_grow_centers``, ``no_grow_radius``),
  where densification tends to create spiky fingers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from gsplat.strategy import DefaultStrategy


@dataclass
class HumanDensifyStrategy(DefaultStrategy):
    """gsplat's default strategy with GaussianIP's numbers and a prune-only phase.

    Thresholds: screen-space gradient 2e-4, minimum opacity 0.04, world size 0.015 (split
    above it, clone below, with ``scene_scale`` 1), screen size 20 px of a 1024-px render
    (the reference's ``max_screen_size`` 20 at its 1024-px renders).
    """

    prune_opa: float = 0.04
    grow_grad2d: float = 2e-4
    grow_scale3d: float = 0.015
    prune_scale2d: float = 20.0 / 1024.0  # gsplat measures radii as a fraction of the image
    refine_scale2d_stop_iter: int = 1700  # screen-size pruning while densifying
    refine_start_iter: int = 200
    refine_stop_iter: int = 1700
    refine_every: int = 500
    reset_every: int = 1_000_000_000  # never
    prune_only_start_iter: int = 1700
    prune_only_stop_iter: int = 1900
    prune_only_every: int = 300
    no_grow_centers: list[list[float]] | None = None  # e.g. the body's hand centres
    no_grow_radius: float = 0.0  # metres; 0 disables

    def _grow_gs(
        self,
        params: dict[str, torch.nn.Parameter] | torch.nn.ParameterDict,
        optimizers: dict[str, torch.optim.Optimizer],
        state: dict[str, Any],
        step: int,
    ) -> tuple[int, int]:
        if self.no_grow_radius > 0 and self.no_grow_centers:
            means = params["means"].detach()
            centers = torch.as_tensor(self.no_grow_centers, dtype=means.dtype, device=means.device)
            near = torch.cdist(means, centers).min(dim=1).values < self.no_grow_radius
            state["grad2d"][near] = 0.0  # zero accumulated gradient: below any threshold
        return super()._grow_gs(params, optimizers, state, step)

    @torch.no_grad()
    def _update_state(
        self,
        params: dict[str, torch.nn.Parameter] | torch.nn.ParameterDict,
        state: dict[str, Any],
        info: dict[str, Any],
        packed: bool = False,
    ) -> None:
        """gsplat's update with the largest screen radius per Gaussian taken by
        ``scatter_reduce(amax)``: gsplat assigns ``radii[ids] = ...`` with an id repeated
        once per camera, and which camera's value wins such an assignment is not defined
        (it varied between two CPU runs of one seed, and so did the Gaussian count)."""
        radii_before = state["radii"]
        keep = self.refine_scale2d_stop_iter
        self.refine_scale2d_stop_iter = 0  # gsplat: gradients and counts only
        try:
            super()._update_state(params, state, info, packed=packed)
        finally:
            self.refine_scale2d_stop_iter = keep
        if keep <= 0:
            return
        if packed:
            ids, radii = info["gaussian_ids"], info["radii"].max(dim=-1).values
        else:
            sel = (info["radii"] > 0.0).all(dim=-1)  # [C, N]
            ids, radii = torch.where(sel)[1], info["radii"][sel].max(dim=-1).values
        if radii_before is None:
            radii_before = torch.zeros(len(state["grad2d"]), device=radii.device)
        # normalised to [0, 1] of the image, as gsplat does
        screen = radii.float() / float(max(info["width"], info["height"]))
        state["radii"] = radii_before.scatter_reduce(0, ids, screen, reduce="amax")

    def step_post_backward(
        self,
        params: dict[str, torch.nn.Parameter] | torch.nn.ParameterDict,
        optimizers: dict[str, torch.optim.Optimizer],
        state: dict[str, Any],
        step: int,
        info: dict[str, Any],
        packed: bool = False,
    ) -> None:
        """Densify on gsplat's schedule, then prune only in the prune-only window."""
        super().step_post_backward(params, optimizers, state, step, info, packed=packed)
        if (
            self.prune_only_start_iter <= step < self.prune_only_stop_iter
            and step % self.prune_only_every == 0
        ):
            n_pruned = self._prune_gs(params, optimizers, state, step)
            if self.verbose:
                print(f"Step {step}: pruned {n_pruned} Gaussians (prune-only phase).")
