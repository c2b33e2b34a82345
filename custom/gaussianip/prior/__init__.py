"""The human-centric diffusion prior: SD 1.5 + IP-Adapter-FaceID-PlusV2 (+ ControlNet)."""

from gaussianip.prior.attention import (
    FaceIDLoRAAttnProcessor,
    FaceIDLoRAIPAttnProcessor,
    install_faceid_adapter,
)
from gaussianip.prior.configs import sd15_unet_config, tiny_unet_config
from gaussianip.prior.face_projection import FaceIDPlusProjection, FaceProjectionConfig
from gaussianip.prior.ip_adapter import FaceIDAdapter

__all__ = [
    "FaceIDAdapter",
    "FaceIDLoRAAttnProcessor",
    "FaceIDLoRAIPAttnProcessor",
    "FaceIDPlusProjection",
    "FaceProjectionConfig",
    "install_faceid_adapter",
    "sd15_unet_config",
    "tiny_unet_config",
]
