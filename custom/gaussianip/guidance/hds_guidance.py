"""The stage-1 guidance: Human Distillation Sampling with the human-centric prior.

Text embeddings and identity tokens are computed once. Each call encodes the renders with
the VAE (with gradient), draws timesteps from the adaptive schedule, runs the UNet and
ControlNet once on the 3B batch [positive; negative; null] (no gradient) and returns the
HDS loss whose gradient on the latents is the HDS gradient (method.md, "Stage 1"), each
latent row clipped as the reference implementation does (``grad_clip_pixel``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.profiler import record_function

from gaussianip.body import BodyModel
from gaussianip.config import parse_config
from gaussianip.data.human_cameras import ViewKind
from gaussianip.errors import ConfigError
from gaussianip.faces import Identity
from gaussianip.guidance.hds import (
    clip_latent_rows,
    hds_gradient,
    latent_loss_from_gradient,
    sds_gradient,
)
from gaussianip.guidance.schedule import NUM_TRAIN_TIMESTEPS, SCHEDULES, build_timestep_schedule
from gaussianip.prior.human_prior import HumanPrior
from gaussianip.prior.prompt_length import shipped_prompt

VIEWS = ("front", "side", "back", "overhead", "head")


def body_pose_images(body: BodyModel) -> Callable[[dict[str, Any], int], Tensor]:
    """OpenPose images [B, 3, r, r] of ``body`` for a camera batch, drawn at the guidance
    resolution r with the batch's cameras (so close-ups match the renders)."""
    from gaussianip.pose import draw_openpose

    def draw(batch: dict[str, Any], resolution: int) -> Tensor:
        device = body.body_keypoints.device  # draw where the body lives (the GPU in runs)
        K = batch["intrinsics"].to(device).clone()
        K[:, 0] *= resolution / batch["width"]
        K[:, 1] *= resolution / batch["height"]
        return draw_openpose(body.body_keypoints, body.face_keypoints, body.head_center,
                             batch["c2w"].to(device), K, resolution, resolution)  # fmt: skip

    return draw


@dataclass
class HDSGuidanceConfig:
    prompt: str = "a photo of a person"
    # The reference implementation's distillation negative prompt (the refinement has its
    # own, shorter one: system.vcr.negative_prompt).
    negative_prompt: str = shipped_prompt(
        "cloned face, multi face, bad face, poorly drawn face, duplicate face, cropped, out of "
        "frame, extra fingers, deformed, blurry, bad proportions, disfigured, fused fingers, "
        "long neck"
    )  # 43 CLIP tokens: it fits SD 1.5's 77; the tiny prior (a token a letter) cuts it
    view_suffixes: dict[str, str] = field(
        default_factory=lambda: {
            "front": ", front view",
            "side": ", side view",
            "back": ", back view",
            "overhead": ", overhead view",
            "head": ", close-up photo of the face, detailed face",
        }
    )
    front_threshold: float = 45.0  # degrees of azimuth around 0 that count as front
    back_threshold: float = 45.0
    overhead_threshold: float = 60.0  # elevation above which a view is overhead
    guidance_scale: float = 7.5
    repel_threshold: int = 170
    # The reference's grad_clip_pixel (HDS only): each latent row's gradient norm, over the
    # row's width, clipped at grad_clip_threshold (guidance/hds.py, clip_latent_rows).
    grad_clip_pixel: bool = True
    grad_clip_threshold: float = 1.0
    mode: str = "hds"  # "hds" or "sds" (ablation)
    guidance_rescale: float = 0.0  # SDS only
    resolution: int = 512  # renders are resized to this before the VAE
    timestep_schedule: str = "adaptive"
    timestep_schedule_cfg: dict = field(default_factory=dict)
    # Views per pass through the VAE encoder and the UNet (0: all views in one pass). Each
    # view's HDS gradient depends on that view alone, so smaller passes give the same
    # gradient; each pass's backward frees its VAE activations before the next pass, so
    # the peak memory falls (BENCHMARKS.md: the 8 GB runs). None: a run takes it from its
    # memory plan (gaussianip.memory_plan); used alone, None passes all views at once.
    micro_batch: int | None = None

    def __post_init__(self) -> None:
        check_guidance_config(self)


MODES = ("hds", "sds")


def _finite_at_least(value: float, low: float) -> bool:
    return math.isfinite(value) and value >= low


def check_guidance_config(cfg: HDSGuidanceConfig) -> None:
    """``ConfigError`` (naming the key, the value and the fix) for values no run can use;
    cheap, so it runs when the config is parsed, before any model is built."""
    key = "system.guidance"
    if cfg.resolution < 8 or cfg.resolution % 8:
        raise ConfigError(
            f"{key}.resolution must be a positive multiple of 8 (the VAE downsamples by 8), "
            f"got {cfg.resolution}; the method uses 512."
        )
    if not _finite_at_least(cfg.guidance_scale, 0.0):
        raise ConfigError(
            f"{key}.guidance_scale must be a finite number >= 0, got {cfg.guidance_scale}; "
            "the method uses 7.5."
        )
    if not (math.isfinite(cfg.guidance_rescale) and 0.0 <= cfg.guidance_rescale <= 1.0):
        raise ConfigError(
            f"{key}.guidance_rescale must be in [0, 1], got {cfg.guidance_rescale} (0: off)."
        )
    if cfg.mode not in MODES:
        raise ConfigError(f"{key}.mode='{cfg.mode}' is unknown; use one of {', '.join(MODES)}.")
    for name in ("front_threshold", "back_threshold"):
        value = getattr(cfg, name)
        if not (math.isfinite(value) and 0.0 <= value <= 180.0):
            raise ConfigError(f"{key}.{name} is an azimuth in [0, 180] degrees, got {value}.")
    if not (math.isfinite(cfg.overhead_threshold) and -90.0 <= cfg.overhead_threshold <= 90.0):
        raise ConfigError(
            f"{key}.overhead_threshold is an elevation in [-90, 90] degrees, got "
            f"{cfg.overhead_threshold}."
        )
    if not (math.isfinite(cfg.grad_clip_threshold) and cfg.grad_clip_threshold > 0):
        raise ConfigError(
            f"{key}.grad_clip_threshold must be a finite number > 0, got "
            f"{cfg.grad_clip_threshold}; the reference uses 1.0 (grad_clip_pixel=false: no "
            "clipping)."
        )
    if cfg.micro_batch is not None and cfg.micro_batch < 0:
        raise ConfigError(
            f"{key}.micro_batch is a number of views per pass, got {cfg.micro_batch}; "
            "0 passes all views at once."
        )
    if not 0 <= cfg.repel_threshold <= NUM_TRAIN_TIMESTEPS:
        raise ConfigError(
            f"{key}.repel_threshold is a timestep in [0, {NUM_TRAIN_TIMESTEPS}], got "
            f"{cfg.repel_threshold}; the method uses 170."
        )
    missing = [view for view in VIEWS if view not in cfg.view_suffixes]
    if missing:
        raise ConfigError(
            f"{key}.view_suffixes lacks {', '.join(missing)}; give a suffix for each of "
            f"{', '.join(VIEWS)} (an empty string for none)."
        )
    check_timestep_schedule(cfg.timestep_schedule, cfg.timestep_schedule_cfg)


def check_timestep_schedule(name: str, values: dict[str, Any] | None) -> None:
    """The schedule's name and config, checked (the configs check themselves) without
    building the schedule, whose plan has one entry per step; config keys named."""
    where = "system.guidance.timestep_schedule_cfg"
    if name not in SCHEDULES:
        close = difflib.get_close_matches(str(name), list(SCHEDULES), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"system.guidance.timestep_schedule='{name}' is unknown.{hint} Use one of "
            f"{', '.join(SCHEDULES)}."
        )
    config_cls = SCHEDULES[name][1]
    try:
        parse_config(config_cls, values or {}, where)
    except ConfigError as err:
        text = str(err)
        first = text.replace("=", " ").split(" ", 1)[0]
        fields = {f.name for f in dataclasses.fields(config_cls)}
        raise ConfigError(f"{where}.{text}" if first in fields else f"{where}: {text}") from None


class HDSGuidance:
    """Callable ``(rgb [B, H, W, 3], batch, step) -> {"loss_sds", "grad_norm", ...}``."""

    def __init__(
        self,
        prior: HumanPrior,
        cfg: HDSGuidanceConfig,
        identity: Identity | None = None,
        repel_identity: Identity | None = None,
        pose_images: Callable[[dict[str, Any], int], Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.prior, self.cfg, self.pose_images = prior, cfg, pose_images
        self.schedule = build_timestep_schedule(cfg.timestep_schedule, cfg.timestep_schedule_cfg)
        self.generator = generator or torch.Generator().manual_seed(0)
        # Everything that does not change during the run, computed once.
        pos = [cfg.prompt + cfg.view_suffixes[v] for v in VIEWS]
        text = prior.encode_text(pos + [cfg.negative_prompt, ""])
        self.text_pos, self.text_neg, self.text_null = text[:5], text[5:6], text[6:7]
        self.id_pos = self.id_neg = self.id_null = None
        if prior.adapter is not None:
            self.id_null = prior.encode_identity(None, None)
            self.id_pos = (prior.encode_identity(identity.embedding, identity.crop)
                           if identity is not None else self.id_null)  # fmt: skip
            self.id_neg = (prior.encode_identity(repel_identity.embedding, repel_identity.crop)
                           if repel_identity is not None else self.id_null)  # fmt: skip

    def view_index(self, batch: dict[str, Any]) -> Tensor:
        """Index into ``VIEWS`` for each view of the batch [B]."""
        cfg = self.cfg
        azimuth = torch.remainder(batch["azimuth"] + 180.0, 360.0) - 180.0
        index = torch.full_like(azimuth, 1, dtype=torch.long)  # side
        index[azimuth.abs() < cfg.front_threshold] = 0
        index[azimuth.abs() > 180.0 - cfg.back_threshold] = 2
        index[batch["elevation"] > cfg.overhead_threshold] = 3
        index[batch["view_kind"] == ViewKind.HEAD] = 4
        return index

    def contexts(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """[B, T, D] encoder states of the positive, negative and null conditions."""
        idx = self.view_index(batch).to(self.text_pos.device)
        n = idx.shape[0]
        pos, neg, null = (
            self.text_pos[idx],
            self.text_neg.expand(n, -1, -1),
            self.text_null.expand(n, -1, -1),
        )
        if self.id_pos is not None:
            pos = torch.cat([pos, self.id_pos.expand(n, -1, -1)], dim=1)
            neg = torch.cat([neg, self.id_neg.expand(n, -1, -1)], dim=1)
            null = torch.cat([null, self.id_null.expand(n, -1, -1)], dim=1)
        return pos, neg, null

    def __call__(self, rgb: Tensor, batch: dict[str, Any], step: int) -> dict[str, Tensor]:
        cfg, prior = self.cfg, self.prior
        n = rgb.shape[0]
        t = self.schedule.sample(step, n, generator=self.generator).to(prior.device)
        side = cfg.resolution // 8
        shape = (n, prior.vae.config.latent_channels, side, side)
        # Both noises drawn for all views at once, so a run is the same in any micro-batch.
        posterior_noise = torch.randn(shape, generator=self.generator)
        noise = torch.randn(shape, generator=self.generator)
        contexts = self.contexts(batch)
        pose = None
        if self.pose_images is not None:
            with record_function("guidance/pose_images"):
                pose = self.pose_images(batch, cfg.resolution).to(prior.device)
        per_pass = cfg.micro_batch or n
        if per_pass >= n:
            loss, grad = self._pass(rgb, slice(None), t, posterior_noise, noise, contexts, pose)
            return {"loss_sds": loss, "grad_norm": grad.norm(), "timestep": t.float().mean()}
        # Pass by pass, each pass's backward (into a detached copy of the renders) runs
        # before the next pass's forward; the summed render gradient then flows into the
        # render's graph through ``through`` when the caller's loss is backpropagated.
        leaf = rgb.detach().requires_grad_(rgb.requires_grad)
        loss, sq_norm = torch.zeros((), device=prior.device), torch.zeros((), device=prior.device)
        for start in range(0, n, per_pass):
            part = slice(start, start + per_pass)
            part_loss, grad = self._pass(leaf, part, t, posterior_noise, noise, contexts, pose)
            if leaf.requires_grad:
                part_loss.backward()
            loss, sq_norm = loss + part_loss.detach(), sq_norm + grad.square().sum()
        if leaf.grad is not None:
            through = (rgb * leaf.grad).sum()
            loss = loss + (through - through.detach())
        return {"loss_sds": loss, "grad_norm": sq_norm.sqrt(), "timestep": t.float().mean()}

    def _pass(self, rgb: Tensor, part: slice, t: Tensor, posterior_noise: Tensor, noise: Tensor,
              contexts: tuple[Tensor, Tensor, Tensor],
              pose: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """The HDS (or SDS) loss of the views ``part`` of ``rgb`` [B, H, W, 3] (divided by
        the whole batch's B) and their latent gradient [b, 4, h, w]."""
        cfg, prior = self.cfg, self.prior
        n, t = rgb.shape[0], t[part]
        with record_function("guidance/vae_encode"):
            latents = prior.encode_rgb(rgb[part], cfg.resolution, fast=True,
                                       noise=posterior_noise[part])  # fmt: skip
        noise = noise[part].to(latents)
        noisy = prior.scheduler.add_noise(latents.detach(), noise, t)
        pos, neg, null = (c[part] for c in contexts)
        pose = pose[part] if pose is not None else None
        with record_function("guidance/unet_controlnet"):
            eps = prior.predict_noise(
                torch.cat([noisy] * 3), torch.cat([t] * 3), torch.cat([pos, neg, null]),
                torch.cat([pose] * 3) if pose is not None else None, fast=True,
            ).float()  # fmt: skip
        eps_pos, eps_neg, eps_null = eps.chunk(3)
        ac = prior.alphas_cumprod
        if cfg.mode == "hds":
            grad = hds_gradient(eps_pos, eps_neg, eps_null, t, ac, cfg.guidance_scale,
                                cfg.repel_threshold)  # fmt: skip
            if cfg.grad_clip_pixel:
                grad = clip_latent_rows(grad, cfg.grad_clip_threshold)
        else:
            grad = sds_gradient(eps_pos, eps_null, noise.float(), t, ac, cfg.guidance_scale,
                                cfg.guidance_rescale)  # fmt: skip
        return latent_loss_from_gradient(latents.float(), grad, views=n), grad
