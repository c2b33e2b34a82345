"""View-Consistent Refinement (method.md, "Stage 2"): denoise the stage-1 ring renders a
little with the full prior, the views sharing attention so their details agree.

Each view is VAE-encoded (a sample of the posterior), noised with *one* noise shared by
all views to the first of the last ``refine_steps`` timesteps of a ``num_inference_steps``
ladder (the reference's integer ``linspace(0, 999, 50)``: t = 142, 122, ..., 0 for 8 of
50), then denoised with classifier-free guidance ([negative prompt ; null ID] and
[prompt (+ side) ; ID]), ControlNet pose images and the VCR attention processors. Only
the anchor views other than the front get a side suffix (the reference's prompts). At
every step the principal views run first, then the key views, then the intermediate
views (in chunks of ``chunk_size`` views).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gaussianip.errors import ConfigError
from gaussianip.faces import Identity
from gaussianip.prior.human_prior import HumanPrior, ddim_scheduler
from gaussianip.prior.prompt_length import shipped_prompt
from gaussianip.refine.attention import DEFAULT_LAYERS, VCRState, vcr_processors
from gaussianip.refine.view_plan import anchor_of, plan_views, side_name

NEGATIVE_PROMPT = shipped_prompt(
    "blurry face, bad face, poorly drawn face, duplicate face, extra fingers, blurry, fused fingers"
)


SUFFIX_VIEWS = ("anchors", "all")
LADDERS = ("linspace", "ddim")


def refinement_timesteps(num_inference_steps: int, refine_steps: int,
                         ladder: str = "linspace") -> Tensor:  # fmt: skip
    """The last ``refine_steps`` timesteps [refine_steps] (long, falling) of a
    ``num_inference_steps`` ladder over SD's 1000 training timesteps.

    "linspace": ``floor(linspace(0, 999, n))`` reversed, the reference's ladder, which
    ends at t = 0; "ddim": diffusers' DDIM ladder with ``steps_offset`` 1, which ends at 1.
    Either is stepped by the same DDIM update (previous t = t - 1000 // n).
    """
    if ladder == "linspace":
        ladder_t = torch.linspace(0, 999, num_inference_steps, dtype=torch.float64).floor()
        timesteps = ladder_t.flip(0).long()
    else:
        scheduler = ddim_scheduler()
        scheduler.set_timesteps(num_inference_steps)
        timesteps = scheduler.timesteps.long()
    return timesteps[-refine_steps:]


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
    # Which views get view_suffix: "anchors" (the principal views but the front, and the
    # key views: the reference's 7 suffixed prompts) or "all" (every view).
    suffix_views: str = "anchors"
    # "linspace": the reference's ladder, integer linspace(0, 999, n) reversed (142, 122,
    # ..., 0 for the last 8 of 50); "ddim": diffusers' DDIM ladder (141, 121, ..., 1).
    timestep_ladder: str = "linspace"
    # True: each view's latents are a sample of its VAE posterior (the reference), drawn
    # from the seeded generator; False: the posterior mean.
    sample_posterior: bool = True
    # Views per UNet call (twice that many rows with CFG). None: a run takes it from its
    # memory plan (gaussianip.memory_plan); used alone, None denoises a whole group at once.
    chunk_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lambda_self <= 1.0:
            raise ConfigError(f"system.vcr.lambda_self must be in [0, 1], got {self.lambda_self}.")
        if self.num_inference_steps < 1 or not 1 <= self.refine_steps <= self.num_inference_steps:
            raise ConfigError(
                "system.vcr.refine_steps must be between 1 and num_inference_steps, got "
                f"{self.refine_steps} of {self.num_inference_steps}."
            )
        if self.suffix_views not in SUFFIX_VIEWS:
            raise ConfigError(f"system.vcr.suffix_views must be one of {list(SUFFIX_VIEWS)}, "
                              f"got {self.suffix_views!r}.")  # fmt: skip
        if self.timestep_ladder not in LADDERS:
            raise ConfigError(f"system.vcr.timestep_ladder must be one of {list(LADDERS)}, "
                              f"got {self.timestep_ladder!r}.")  # fmt: skip
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ConfigError(f"system.vcr.chunk_size must be >= 1, got {self.chunk_size}.")
        for name in ("guidance_scale", "id_scale", "shortcut_scale"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"system.vcr.{name} is a weight >= 0, got {value}.")


def refinement_prompt(prompt: str, azimuth: float, cfg: VCRConfig) -> str:
    """The prompt of the ring view at ``azimuth`` degrees. With ``suffix_views``
    "anchors" the front and the intermediate views keep the bare prompt (the reference's
    prompts); the others, and every view with "all", get ``view_suffix``."""
    if cfg.suffix_views == "anchors" and anchor_of(azimuth) in (None, 0.0):
        return prompt
    return prompt + cfg.view_suffix.format(side=side_name(azimuth))


class _PartClock:
    """Seconds between laps, each lap after the device's queued work (a CUDA
    synchronisation: the refinement's parts are seconds long, so it costs nothing)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds = torch.device(device), {}
        self._start = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[name] = round(now - self._start, 3)
        self._start = now


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
        self.timesteps = refinement_timesteps(cfg.num_inference_steps, cfg.refine_steps,
                                              cfg.timestep_ladder)  # fmt: skip
        self.unet_calls = 0  # counted for tests and benchmarks
        # Seconds of the last refine() by part: "encode", "denoise", "decode" (decoding
        # and on_view), each ended by a device synchronisation (benchmarks read them).
        self.seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ conditions
    def _contexts(self, azimuths: list[float]) -> tuple[Tensor, Tensor]:
        """[N, T, D] encoder states of the unconditional and conditional branches of the
        views at ``azimuths`` [N]."""
        prior, cfg = self.prior, self.cfg
        n = len(azimuths)
        prompts = [refinement_prompt(self.prompt, a, cfg) for a in azimuths]
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

        clock = _PartClock(prior.device)
        uncond, cond = self._contexts([float(a) for a in cameras["azimuth"]])
        pose = self.pose_images(cameras, height).to(prior.device) if self.pose_images else None
        # One seeded generator: the shared noise first, then every view's posterior sample
        # in ring order (all views, so a partial refinement draws the same numbers).
        generator = torch.Generator().manual_seed(cfg.seed)
        noise = torch.randn((1, 4, height // 8, width // 8), generator=generator)
        latents = torch.cat([prior.encode_rgb(images[i : i + 1].to(prior.device), height,
                                              sample=cfg.sample_posterior, generator=generator)
                             for i in range(n)])  # fmt: skip
        noise = noise.to(latents)
        t0 = self.timesteps[:1].to(prior.device)
        z = self.scheduler.add_noise(latents, noise.expand_as(latents), t0)
        clock.lap("encode")

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
                        size = cfg.chunk_size or max(len(group), 1)
                        for start in range(0, len(group), size):
                            chunk = group[start : start + size]
                            eps[chunk] = self._guided_noise(state, mode, chunk, z, t,
                                                            uncond, cond, pose)  # fmt: skip
                    z = self.scheduler.step(eps, t, z).prev_sample
                    if on_step is not None:
                        on_step(i, len(self.timesteps))
        finally:
            if prior.adapter is not None:
                prior.adapter.set_scale(prior.cfg.id_scale)
        clock.lap("denoise")
        refined: dict[int, Tensor] = {}
        for v in wanted:
            refined[v] = prior.decode_latents(z[v : v + 1])[0]
            if on_view is not None:
                on_view(v, refined[v])
        clock.lap("decode")
        self.seconds = clock.seconds
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
