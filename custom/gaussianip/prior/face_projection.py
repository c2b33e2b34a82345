"""IP-Adapter-FaceID-PlusV2's image projection (``ProjPlusModel`` of the reference code).

The 512-d ArcFace embedding goes through an MLP to ``num_tokens`` ID tokens; a Perceiver
resampler then lets those tokens attend to the CLIP-H penultimate hidden states of the
aligned face crop. In "shortcut" mode (PlusV2) the output is ``tokens + s_scale *
resampler(tokens, clip)``. Parameter names follow the published checkpoint exactly
(``proj.0``, ``norm``, ``perceiver_resampler.layers.0.0.to_kv`` ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def feed_forward(dim: int, mult: int = 4) -> nn.Sequential:
    """LayerNorm -> Linear -> GELU -> Linear (no biases), as the reference's FeedForward."""
    inner = dim * mult
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, inner, bias=False),
        nn.GELU(),
        nn.Linear(inner, dim, bias=False),
    )


class PerceiverAttention(nn.Module):
    """Latents attend to [image features ; latents] (Flamingo's perceiver attention)."""

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 8) -> None:
        super().__init__()
        self.dim_head, self.heads = dim_head, heads
        inner = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)  # [b, heads, n, dim_head]

    def forward(self, x: Tensor, latents: Tensor) -> Tensor:
        """x: image features [B, N1, D]; latents [B, N2, D] -> [B, N2, D]."""
        x, latents = self.norm1(x), self.norm2(latents)
        q = self._heads(self.to_q(latents))
        k, v = (self._heads(t) for t in self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, -1))
        # Scaling both sides by dim_head ** -0.25 is more stable in fp16 (as the reference).
        scale = 1.0 / math.sqrt(math.sqrt(self.dim_head))
        weight = (q * scale) @ (k * scale).transpose(-2, -1)
        weight = torch.softmax(weight.float(), dim=-1).to(weight.dtype)
        out = (weight @ v).transpose(1, 2).reshape(latents.shape[0], latents.shape[1], -1)
        return self.to_out(out)


class FacePerceiverResampler(nn.Module):
    def __init__(
        self,
        dim: int = 768,
        depth: int = 4,
        dim_head: int = 64,
        heads: int = 12,
        embedding_dim: int = 1280,
        output_dim: int = 768,
        ff_mult: int = 4,
    ) -> None:
        super().__init__()
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(dim, dim_head, heads), feed_forward(dim, ff_mult)])
            for _ in range(depth)
        )

    def forward(self, latents: Tensor, x: Tensor) -> Tensor:
        """latents: ID tokens [B, T, dim]; x: CLIP hidden states [B, N, embedding_dim]."""
        x = self.proj_in(x)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


@dataclass
class FaceProjectionConfig:
    """Defaults: the published SD 1.5 FaceID-PlusV2 projection."""

    cross_attention_dim: int = 768
    id_embeddings_dim: int = 512
    clip_embeddings_dim: int = 1280
    num_tokens: int = 4
    depth: int = 4
    dim_head: int = 64


class FaceIDPlusProjection(nn.Module):
    """ArcFace embedding + CLIP face features -> ``num_tokens`` ID tokens."""

    def __init__(self, cfg: FaceProjectionConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or FaceProjectionConfig()
        dim = cfg.cross_attention_dim
        self.proj = nn.Sequential(
            nn.Linear(cfg.id_embeddings_dim, cfg.id_embeddings_dim * 2),
            nn.GELU(),
            nn.Linear(cfg.id_embeddings_dim * 2, dim * cfg.num_tokens),
        )
        self.norm = nn.LayerNorm(dim)
        self.perceiver_resampler = FacePerceiverResampler(
            dim=dim,
            depth=cfg.depth,
            dim_head=cfg.dim_head,
            heads=max(1, dim // cfg.dim_head),
            embedding_dim=cfg.clip_embeddings_dim,
            output_dim=dim,
        )

    def forward(
        self, id_embeds: Tensor, clip_embeds: Tensor, shortcut: bool = True, scale: float = 1.0
    ) -> Tensor:
        """id_embeds [B, 512], clip_embeds [B, 257, 1280] -> ID tokens [B, num_tokens, 768]."""
        x = self.proj(id_embeds).reshape(-1, self.cfg.num_tokens, self.cfg.cross_attention_dim)
        x = self.norm(x)
        out = self.perceiver_resampler(x, clip_embeds)
        return x + scale * out if shortcut else out
