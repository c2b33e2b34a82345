"""Camera distributions for human generation (method.md, "Cameras" and "Stage 2").

Three kinds of training view, chosen independently for each view of a batch:

* ``BODY`` — full-body views around the origin;
* ``HEAD`` — head close-ups looking at the head centre (from ``close_up_start_step``);
* ``BACK`` — close views of the back, looking at ``back_look_at_height``.

Plus fixed rings: the evaluation turntable and the refinement ring. Every batch is a dict
with what threestudio's systems expect (``c2w``, ``mvp_mtx``, ``fovy`` in radians,
``elevation`` / ``azimuth`` in degrees, ``camera_distances``, ``camera_positions``,
``light_positions``, ``height``, ``width``) and what we need (``intrinsics``,
``viewmats``, ``view_kind``, ``look_at``). Elevation, azimuth and distance are measured
from the view's look-at point, so view-dependent prompts work for close-ups too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import Tensor

from gaussianip.cameras import (
    c2w_to_viewmat,
    intrinsics,
    look_at,
    mvp_matrix,
    projection_matrix,
    spherical_to_position,
)
from gaussianip.errors import ConfigError


class ViewKind(IntEnum):
    BODY = 0
    HEAD = 1
    BACK = 2


@dataclass
class HumanCameraConfig:
    """Every camera setting of the method; lengths in metres, angles in degrees."""

    batch_size: int = 4
    # Stage-1 render size: 1024 px, resized to the guidance's 512 before the VAE (the
    # reference's data.height/width); 512 renders directly at the VAE's size (cheaper).
    height: int = 1024
    width: int = 1024
    # Full-body views.
    camera_distance_range: tuple[float, float] = (1.3, 1.7)
    elevation_range: tuple[float, float] = (-30.0, 30.0)
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    fovy_range: tuple[float, float] = (40.0, 70.0)
    # Close-ups, from this step on.
    close_up_start_step: int = 1200
    head_prob: float = 0.25
    head_distance_range: tuple[float, float] = (0.4, 0.6)
    # Head centre above the body centre. method.md says 0.65 in its own body normalisation;
    # 0.76 is the head centre of our default 1.8 m body (SMPL-X users: set it to theirs).
    head_height: float = 0.76
    head_azimuth_range: tuple[float, float] = (-90.0, 90.0)  # the front half
    back_prob: float = 0.2
    back_distance_range: tuple[float, float] = (0.6, 0.8)
    back_look_at_height: float = 0.5  # upper back and back of the head (our choice)
    back_azimuth_range: tuple[float, float] = (90.0, 270.0)  # the back half
    # Evaluation turntable.
    eval_height: int = 1024
    eval_width: int = 1024
    eval_camera_distance: float = 1.8
    eval_elevation: float = 5.0
    eval_fovy: float = 70.0
    n_val_views: int = 4
    n_test_views: int = 120
    # Refinement ring (stage 2).
    ring_size: int = 32
    ring_elevation: float = 17.0
    ring_distance: float = 1.5
    ring_fovy: float = 70.0
    ring_height: int = 1024
    ring_width: int = 1024

    def __post_init__(self) -> None:
        check_camera_config(self)


def check_camera_config(cfg: HumanCameraConfig) -> None:
    """Raise ``ConfigError`` for values no run could use."""
    for name in ("batch_size", "n_val_views", "n_test_views", "ring_size"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"data.{name} must be >= 1, got {getattr(cfg, name)}.")
    for name in ("height", "width", "eval_height", "eval_width", "ring_height", "ring_width"):
        value = getattr(cfg, name)
        if value < 8 or value % 8:
            raise ConfigError(
                f"data.{name} must be a positive multiple of 8 (the VAE downsamples by 8), "
                f"got {value}."
            )
    if cfg.ring_size % 8:
        raise ConfigError(
            f"data.ring_size must be a multiple of 8 (16, 32, 64): the refinement needs views "
            f"at every 45 degrees, got {cfg.ring_size}."
        )
    if cfg.ring_height != cfg.ring_width:
        raise ConfigError(
            f"data.ring_height and data.ring_width must be equal (square refinement views), "
            f"got {cfg.ring_height} x {cfg.ring_width}."
        )
    for name in ("head_prob", "back_prob"):
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"data.{name} is a probability in [0, 1], got {value}.")
    if cfg.head_prob + cfg.back_prob > 1.0:
        raise ConfigError(
            f"data.head_prob + data.back_prob must be <= 1, got {cfg.head_prob + cfg.back_prob}."
        )
    for name in ("camera_distance_range", "head_distance_range", "back_distance_range"):
        low, high = getattr(cfg, name)
        if not 0.0 < low <= high:
            raise ConfigError(
                f"data.{name} must be [low, high] with 0 < low <= high, got {[low, high]}."
            )
    low, high = cfg.fovy_range
    if not 0.0 < low <= high < 180.0:
        raise ConfigError(f"data.fovy_range must lie in (0, 180) degrees, got {[low, high]}.")
    if cfg.close_up_start_step < 0:
        raise ConfigError(
            f"data.close_up_start_step is a step >= 0, got {cfg.close_up_start_step}."
        )
    for name in ("eval_fovy", "ring_fovy"):
        value = getattr(cfg, name)
        if not 0.0 < value < 180.0:
            raise ConfigError(f"data.{name} must lie in (0, 180) degrees, got {value}.")
    for name in ("eval_camera_distance", "ring_distance"):
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"data.{name} must be > 0 metres, got {getattr(cfg, name)}.")


def make_batch(
    look_at_points: Tensor,
    elevation: Tensor,
    azimuth: Tensor,
    distance: Tensor,
    fovy_deg: Tensor,
    width: int,
    height: int,
    view_kind: Tensor,
) -> dict[str, Tensor | int]:
    """Build a camera batch for B views (all tensors [B], ``look_at_points`` [B, 3])."""
    eye = look_at_points + spherical_to_position(elevation, azimuth, distance)
    c2w = look_at(eye, look_at_points)
    fovy = torch.deg2rad(fovy_deg)
    proj = projection_matrix(fovy, width / height)
    return {
        "c2w": c2w,
        "mvp_mtx": mvp_matrix(c2w, proj),
        "viewmats": c2w_to_viewmat(c2w),
        "intrinsics": intrinsics(fovy, width, height),
        "fovy": fovy,
        "elevation": elevation,
        "azimuth": azimuth,
        "camera_distances": distance,
        "camera_positions": eye,
        "light_positions": eye,
        "look_at": look_at_points,
        "view_kind": view_kind,
        "height": height,
        "width": width,
    }


class HumanCameraSampler:
    """Samples training batches and builds the fixed evaluation and refinement rings."""

    def __init__(self, cfg: HumanCameraConfig) -> None:
        self.cfg = cfg

    def _uniform(
        self, bounds: tuple[float, float], n: int, generator: torch.Generator | None
    ) -> Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(n, generator=generator)

    def view_kind_probabilities(self, step: int) -> tuple[float, float, float]:
        """(body, head, back) probabilities at ``step``."""
        if step < self.cfg.close_up_start_step:
            return 1.0, 0.0, 0.0
        return 1.0 - self.cfg.head_prob - self.cfg.back_prob, self.cfg.head_prob, self.cfg.back_prob

    def sample(
        self, step: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor | int]:
        """A random training batch of ``batch_size`` views for training step ``step``."""
        cfg, n = self.cfg, self.cfg.batch_size
        _, p_head, p_back = self.view_kind_probabilities(step)
        u = torch.rand(n, generator=generator)
        kind = torch.full((n,), int(ViewKind.BODY), dtype=torch.long)
        kind[u < p_head] = int(ViewKind.HEAD)
        kind[(u >= p_head) & (u < p_head + p_back)] = int(ViewKind.BACK)
        is_head, is_back = kind == ViewKind.HEAD, kind == ViewKind.BACK

        # Draw every quantity for every view, then pick per kind: the random stream then
        # does not depend on which kinds were drawn.
        distance = torch.where(
            is_head,
            self._uniform(cfg.head_distance_range, n, generator),
            torch.where(
                is_back,
                self._uniform(cfg.back_distance_range, n, generator),
                self._uniform(cfg.camera_distance_range, n, generator),
            ),
        )
        azimuth = torch.where(
            is_head,
            self._uniform(cfg.head_azimuth_range, n, generator),
            torch.where(
                is_back,
                self._uniform(cfg.back_azimuth_range, n, generator),
                self._uniform(cfg.azimuth_range, n, generator),
            ),
        )
        azimuth = torch.remainder(azimuth + 180.0, 360.0) - 180.0  # keep in [-180, 180)
        elevation = self._uniform(cfg.elevation_range, n, generator)
        fovy = self._uniform(cfg.fovy_range, n, generator)
        target = torch.zeros(n, 3)
        target[is_head, 2] = cfg.head_height
        target[is_back, 2] = cfg.back_look_at_height
        return make_batch(target, elevation, azimuth, distance, fovy, cfg.width, cfg.height, kind)

    def ring(
        self,
        n_views: int,
        elevation: float,
        distance: float,
        fovy: float,
        width: int,
        height: int,
        start_azimuth: float = -180.0,
    ) -> dict[str, Tensor | int]:
        """``n_views`` views evenly spaced in azimuth from ``start_azimuth``, looking at
        the origin."""
        azimuth = start_azimuth + torch.arange(n_views, dtype=torch.float32) * (360.0 / n_views)
        full = torch.full((n_views,), 1.0)
        return make_batch(
            torch.zeros(n_views, 3),
            elevation * full,
            azimuth,
            distance * full,
            fovy * full,
            width,
            height,
            torch.full((n_views,), int(ViewKind.BODY), dtype=torch.long),
        )

    def turntable(self, n_views: int | None = None) -> dict[str, Tensor | int]:
        """The evaluation turntable (front view first)."""
        cfg = self.cfg
        return self.ring(
            n_views or cfg.n_test_views,
            cfg.eval_elevation,
            cfg.eval_camera_distance,
            cfg.eval_fovy,
            cfg.eval_width,
            cfg.eval_height,
            start_azimuth=0.0,
        )

    def refinement_ring(self) -> dict[str, Tensor | int]:
        """The stage-2 ring: azimuth -180 + k * 360 / ring_size (11.25 deg for 32 views)."""
        cfg = self.cfg
        return self.ring(
            cfg.ring_size,
            cfg.ring_elevation,
            cfg.ring_distance,
            cfg.ring_fovy,
            cfg.ring_width,
            cfg.ring_height,
        )


def select_views(
    batch: dict[str, Tensor | int], index: Tensor | list[int] | slice
) -> dict[str, Tensor | int]:
    """The sub-batch of views ``index`` (tensors indexed on their first axis)."""
    return {k: (v[index] if isinstance(v, Tensor) else v) for k, v in batch.items()}
