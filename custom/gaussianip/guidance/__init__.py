"""Distillation guidance: the HDS gradient and timestep schedules."""

from gaussianip.guidance.hds import (
    clip_latent_rows,
    hds_gradient,
    latent_loss_from_gradient,
    sds_gradient,
)
from gaussianip.guidance.schedule import (
    AdaptiveScheduleConfig,
    AdaptiveTimestepSchedule,
    LinearSchedule,
    TimestepSchedule,
    UniformSchedule,
    build_timestep_schedule,
)

__all__ = [
    "AdaptiveScheduleConfig",
    "AdaptiveTimestepSchedule",
    "LinearSchedule",
    "TimestepSchedule",
    "UniformSchedule",
    "build_timestep_schedule",
    "clip_latent_rows",
    "hds_gradient",
    "latent_loss_from_gradient",
    "sds_gradient",
]
