"""``gaussianip-prompt-processor`` and ``gaussianip-hds-guidance``: our conditioning and
Human Distillation Sampling behind threestudio's prompt-processor / guidance conventions,
so that other threestudio systems can use them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from threestudio.utils.base import BaseObject

from gaussianip.body import BodyConfig, build_body_model
from gaussianip.config import parse_config
from gaussianip.errors import ConfigError
from gaussianip.faces import Identity, build_face_analyser, extract_identity
from gaussianip.guidance.hds_guidance import HDSGuidance, HDSGuidanceConfig, body_pose_images
from gaussianip.prior.human_prior import HumanPrior, PriorConfig
from gaussianip.threestudio_ext.registry import register


@dataclass
class HumanPromptOutput:
    """What ``gaussianip-prompt-processor`` hands to the guidance (threestudio's
    ``prompt_utils``): the prompts and the identities, computed once."""

    prompt: str
    negative_prompt: str | None
    identity: Identity | None
    repel_identity: Identity | None


@register("gaussianip-prompt-processor")
class HumanPromptProcessor(BaseObject):
    @dataclass
    class Config(BaseObject.Config):
        prompt: str = "a photo of a person"
        negative_prompt: str | None = None
        face_image: str | None = "load/portraits/eileen_collins_nasa.png"
        repel_face_image: str | None = "load/portraits/grace_hopper_us_navy.jpg"
        face_analyser: str = "buffalo_l"  # or "stand-in" (tests only)
        face_analyser_root: str | None = None

    cfg: Config

    def configure(self) -> None:
        if not self.cfg.prompt or not self.cfg.prompt.strip():
            raise ConfigError("prompt_processor.prompt is empty; describe the person.")
        portraits = (self.cfg.face_image, self.cfg.repel_face_image)
        analyser = None
        if any(portraits):
            analyser = build_face_analyser(self.cfg.face_analyser, self.cfg.face_analyser_root)
        identity, repel = (extract_identity(p, analyser) if p else None for p in portraits)
        self.output = HumanPromptOutput(self.cfg.prompt, self.cfg.negative_prompt, identity, repel)

    def __call__(self) -> HumanPromptOutput:
        return self.output


@register("gaussianip-hds-guidance")
class HDSGuidanceModule(BaseObject):
    """threestudio guidance: ``guidance(rgb, prompt_utils, elevation, azimuth,
    camera_distances, **batch)`` -> ``{"loss_sds", "grad_norm", "timestep"}``. The rest of
    the camera batch (``c2w``, ``intrinsics``, ``view_kind``, ...) comes in ``kwargs``."""

    @dataclass
    class Config(BaseObject.Config):
        prior: dict = field(default_factory=dict)
        guidance: dict = field(default_factory=dict)
        body: dict = field(default_factory=dict)  # for the pose images; {} = default body
        pose_control: bool = True

    cfg: Config

    def configure(self) -> None:
        self.prior_cfg = parse_config(PriorConfig, self.cfg.prior, "guidance.prior")
        self.guidance_cfg = parse_config(HDSGuidanceConfig, self.cfg.guidance, "guidance.guidance")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        body = build_body_model(**vars(parse_config(BodyConfig, self.cfg.body, "guidance.body")))
        self.pose_images = body_pose_images(body.to(device)) if self.cfg.pose_control else None
        self.prior = HumanPrior.build(self.prior_cfg, device)
        self.global_step = 0
        self._engines: dict[int, HDSGuidance] = {}

    def _engine(self, prompt_utils: HumanPromptOutput) -> HDSGuidance:
        # One engine per prompt output: its text and identity tokens are computed once.
        key = id(prompt_utils)
        if key not in self._engines:
            values = vars(self.guidance_cfg) | {"prompt": prompt_utils.prompt}
            if prompt_utils.negative_prompt is not None:
                values["negative_prompt"] = prompt_utils.negative_prompt
            self._engines[key] = HDSGuidance(
                self.prior, HDSGuidanceConfig(**values), prompt_utils.identity,
                prompt_utils.repel_identity, self.pose_images,
            )  # fmt: skip
        return self._engines[key]

    def __call__(self, rgb, prompt_utils, elevation, azimuth, camera_distances,
                 rgb_as_latents: bool = False, guidance_eval: bool = False,
                 **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        if rgb_as_latents:
            raise ConfigError("gaussianip-hds-guidance takes RGB renders, not latents.")
        batch = dict(
            kwargs, elevation=elevation, azimuth=azimuth, camera_distances=camera_distances
        )
        return self._engine(prompt_utils)(rgb, batch, self.global_step)

    def update_step(self, epoch: int, global_step: int, on_load_weights: bool = False) -> None:
        self.global_step = global_step
