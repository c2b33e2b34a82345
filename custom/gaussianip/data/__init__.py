"""Camera batches for training, evaluation and refinement."""

from gaussianip.data.human_cameras import (
    HumanCameraConfig,
    HumanCameraSampler,
    ViewKind,
    make_batch,
    select_views,
)

__all__ = ["HumanCameraConfig", "HumanCameraSampler", "ViewKind", "make_batch", "select_views"]
