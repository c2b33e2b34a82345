"""View-Consistent Refinement (method.md, "Stage 2"): denoise the stage-1 ring renders a
little with the full prior, the views sharing attention so their details agree.

Each view is VAE-encoded, noised with *one* noise shared by all views to the first of the
last ``refine_steps`` timesteps of a ``num_inference_steps`` DDIM ladder (t = 141 for 8 of
50), then denoised with classifier-free guidance ([negative prompt ; null ID] and
[prompt + side ; ID]), ControlNet pose images and the VCR attention processors. At every
step the principal views run first, then the key views, then the intermediate views (in
chunks of ``chunk_size`` views).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gaussianip.errors import ConfigError
from gaussianip.faces import Identity
from gaussianip.prior.human_prior import HumanPrior, ddim_scheduler
from gaussianip.refine.attention import DEFAULT_LAYERS, VCRState, vcr_processors
from gaussianip.refine.view_plan import plan_views, side_name

NEGATIVE_PROMPT = (
    "blurry face, bad face, poorly drawn face, duplicate face, extra fingers, blurry, fused fingers"
)


@dataclass
class VCRConfig:
    num_inference_steps: int = 50  # the DDIM ladder ...
    refine_steps: int = 8  # ... of which the last ones are run
    lambda_self: float = 0.55
    layers: list[str] = field(default_factory=lambda: list(DEFAULT_LAYERS))
    mutual_attention: bool = True  # False: each view denoised alone (the paper's ablation)
    guidance_scale: float = 7.5
    id_scale: float = 0.6
    shortcut_scale: float = 0.5
    negative_prompt: str = NEGATIVE_PROMPT
    view_suffix: str = ", {side} view"  # {side}: front, left front, left, left back, ...
    chunk_size: int = 8  # views per UNet call (twice that many rows with CFG)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_self <= 1.0:
            raise ConfigError(f"system.vcr.lambda_self must be in [0, 1], got {self.lambda_self}.")
        if self.num_inference_steps < 1 or not 1 <= self.refine_steps <= self.num_inference_steps:
            raise ConfigError(
                "system.vcr.refine_steps must be between 1 and num_inference_steps, got "
                f"{self.refine_steps} of {self.num_inference_steps}."
            )
        if self.chunk_size < 1:
            raise ConfigError(f"system.vcr.chunk_size must be >= 1, got {self.chunk_size}.")
        for name in ("guidance_scale", "id_scale", "shortcut_scale"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"system.vcr.{name} is a weight >= 0, got {value}.")


class ViewConsistentRefiner:
    """``refine(images, cameras) -> refined images``, with the prior's models frozen."""

    def __init__(
        self,
        prior: HumanPrior,
        cfg: VCRConfig,
        prompt: str,
        identity: Identity | None = None,
        pose_images: Callable[[dict[str, Any], int], Tensor] | None = None,
    ) -> None:
        self.prior, self.cfg, self.prompt, self.pose_images = prior, cfg, prompt, pose_images
        self.identity = identity
        self.scheduler = ddim_scheduler()
        self.scheduler.set_timesteps(cfg.num_inference_steps)
        self.timesteps = self.scheduler.timesteps[-cfg.refine_steps :]
        self.unet_calls = 0  # counted for tests and benchmarks

    # ------------------------------------------------------------------ conditions
    def _contexts(self, azimuths: list[float]) -> tuple[Tensor, Tensor]:
        """[N, T, D] encoder states of the unconditional and conditional branches of the
        views at ``azimuths`` [N]."""
        prior, cfg = self.prior, self.cfg
        n = len(azimuths)
        sides = [side_name(a) for a in azimuths]
        prompts = [self.prompt + cfg.view_suffix.format(side=s) for s in sides]
        text = prior.encode_text(prompts + [cfg.negative_prompt])
        cond, uncond = text[:n], text[n:].expand(n, -1, -1)
        if prior.adapter is not None:
            id_null = prior.encode_identity(None, None, cfg.shortcut_scale)
            id_pos = id_null
            if self.identity is not None:
                id_pos = prior.encode_identity(self.identity.embedding, self.identity.crop,
                                               cfg.shortcut_scale)  # fmt: skip
            cond = torch.cat([cond, id_pos.expand(n, -1, -1)], dim=1)
            uncond = torch.cat([uncond, id_null.expand(n, -1, -1)], dim=1)
        return uncond, cond

    # ------------------------------------------------------------------ refinement
    @torch.no_grad()
    def refine(
        self,
        images: Tensor,
        cameras: dict[str, Any],
        views: Sequence[int] | None = None,
        on_step: Callable[[int, int], None] | None = None,
        on_view: Callable[[int, Tensor], None] | None = None,
    ) -> dict[int, Tensor]:
        """Refine the ring renders ``images`` [N, H, W, 3] in [0, 1] taken with ``cameras``
        (a camera batch with ``azimuth`` [N]); H = W, a multiple of 8.

        ``views`` (default: all) are the views wanted; the views they attend to are
        denoised as well. Returns {view: refined image [H, W, 3] float32 in [0, 1]}.
        ``on_step(i, n)`` is called after each of the n denoising steps, ``on_view(view,
        image)`` as soon as a view is decoded (to save it before the next one).
        """
        prior, cfg = self.prior, self.cfg
        n, height, width, _ = images.shape
        if height != width or height % 8:
            raise ConfigError(
                f"Refinement views must be square with a side that is a multiple of 8, got "
                f"{height}x{width}; set data.ring_height = data.ring_width (e.g. 1024)."
            )
        wanted = tuple(range(n)) if views is None else tuple(views)
        if cfg.mutual_attention:
            plan = plan_views(cameras["azimuth"])
            needed = set(plan.closure(wanted))
            groups = [(mode, [v for v in group if v in needed]) for mode, group in plan.groups]
        else:  # independent denoising: every view alone (the paper's ablation)
            plan, groups = None, [("off", list(wanted))]

        uncond, cond = self._contexts([float(a) for a in cameras["azimuth"]])
        pose = self.pose_images(cameras, height).to(prior.device) if self.pose_images else None
        latents = torch.cat([prior.encode_rgb(images[i : i + 1].to(prior.device), height,
                                              sample=False) for i in range(n)])  # fmt: skip
        generator = torch.Generator().manual_seed(cfg.seed)
        noise = torch.randn((1, *latents.shape[1:]), generator=generator).to(latents)
        t0 = self.timesteps[:1].to(prior.device)
        z = self.scheduler.add_noise(latents, noise.expand_as(latents), t0)

        state = VCRState(plan, cfg.lambda_self)  # type: ignore[arg-type]
        if prior.adapter is not None:
            prior.adapter.set_scale(cfg.id_scale)
        attention = (vcr_processors(prior.unet, state, cfg.layers) if cfg.mutual_attention
                     else contextlib.nullcontext())  # fmt: skip
        try:
            with attention:
                for i, t in enumerate(self.timesteps):
                    state.clear()
                    eps = torch.zeros_like(z)
                    for mode, group in groups:
                        for start in range(0, len(group), cfg.chunk_size):
                            chunk = group[start : start + cfg.chunk_size]
                            eps[chunk] = self._guided_noise(state, mode, chunk, z, t,
                                                            uncond, cond, pose)  # fmt: skip
                    z = self.scheduler.step(eps, t, z).prev_sample
                    if on_step is not None:
                        on_step(i, len(self.timesteps))
        finally:
            if prior.adapter is not None:
                prior.adapter.set_scale(prior.cfg.id_scale)
        refined: dict[int, Tensor] = {}
        for v in wanted:
            refined[v] = prior.decode_latents(z[v : v + 1])[0]
            if on_view is not None:
                on_view(v, refined[v])
        return refined

    def _guided_noise(self, state: VCRState, mode: str, chunk: list[int], z: Tensor,
                      t: Tensor, uncond: Tensor, cond: Tensor,
                      pose: Tensor | None) -> Tensor:  # fmt: skip
        """CFG noise prediction [len(chunk), 4, h, w] for ``chunk`` in VCR ``mode``."""
        state.begin(mode, chunk, branches=2)
        rows = len(chunk)
        eps = self.prior.predict_noise(
            torch.cat([z[chunk]] * 2),
            t.to(self.prior.device).expand(2 * rows),
            torch.cat([uncond[chunk], cond[chunk]]),
            torch.cat([pose[chunk]] * 2) if pose is not None else None,
        )
        self.unet_calls += 1
        eps_uncond, eps_cond = eps.chunk(2)
        return eps_uncond + self.cfg.guidance_scale * (eps_cond - eps_uncond)
