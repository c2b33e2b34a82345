"""The ``tiny`` prior: every model class of the real prior with tiny configs and random
weights, built in process with no download (tests and the CPU smoke config)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)
from transformers.models.clip.tokenization_clip import bytes_to_unicode

from gaussianip.prior.configs import tiny_unet_config
from gaussianip.prior.face_projection import FaceProjectionConfig

TINY_DIM = 32  # text width = UNet cross-attention width
TINY_CLIP_VISION_DIM = 24
TINY_PROJECTION = FaceProjectionConfig(
    cross_attention_dim=TINY_DIM, clip_embeddings_dim=TINY_CLIP_VISION_DIM, depth=1, dim_head=16
)


def tiny_tokenizer() -> CLIPTokenizer:
    """A real ``CLIPTokenizer`` over single bytes (no merges): 514 tokens."""
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder = Path(tempfile.mkdtemp(prefix="gaussianip-tiny-tokenizer-"))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
    )


def tiny_text_encoder(vocab_size: int) -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=TINY_DIM, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
    ))  # fmt: skip


def tiny_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(**tiny_unet_config())


def tiny_vae() -> AutoencoderKL:
    # Four blocks: three 2x downsamplings, the factor 8 of SD's VAE.
    return AutoencoderKL(
        block_out_channels=(8, 8, 16, 16), layers_per_block=1, latent_channels=4,
        norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
    )  # fmt: skip


def tiny_controlnet(unet: UNet2DConditionModel) -> ControlNetModel:
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8, 8, 8))


def tiny_image_encoder() -> CLIPVisionModelWithProjection:
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=TINY_CLIP_VISION_DIM, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, image_size=224, patch_size=32, projection_dim=16,
    ))  # fmt: skip


def seeded(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)  # the diffusers/transformers inits draw from the global RNG
    return torch.Generator().manual_seed(seed)
