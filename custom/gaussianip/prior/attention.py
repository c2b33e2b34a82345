"""FaceID attention processors in the diffusers style (small swappable objects).

The FaceID models are trained with a rank-128 LoRA on q, k, v and out of *every* attention
layer of the UNet, and, on cross-attention layers, extra key/value projections for the ID
tokens appended to the text tokens ("decoupled cross-attention"). Parameter names follow
the published ``ip_adapter`` state dict: ``{i}.to_q_lora.down.weight``, ...,
``{i}.to_k_ip.weight``, with ``i`` the layer's index in ``unet.attn_processors``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class LoRALinear(nn.Module):
    """``up(down(x))`` with ``down`` ~ N(0, 1/rank) and ``up`` = 0 (no effect until trained)."""

    def __init__(self, in_features: int, out_features: int, rank: int) -> None:
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=False)
        nn.init.normal_(self.down.weight, std=1.0 / rank)
        nn.init.zeros_(self.up.weight)

    def forward(self, x: Tensor) -> Tensor:
        dtype = self.down.weight.dtype
        return self.up(self.down(x.to(dtype))).to(x.dtype)


def _heads(attn: nn.Module, x: Tensor) -> Tensor:
    b, n, _ = x.shape
    return x.view(b, n, attn.heads, -1).transpose(1, 2)  # [B, heads, N, head_dim]


def _merge(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class FaceIDLoRAAttnProcessor(nn.Module):
    """Attention with LoRA on q, k, v, out (SDPA). For self-attention layers (attn1)."""

    def __init__(
        self,
        hidden_size: int,
        cross_attention_dim: int | None = None,
        rank: int = 128,
        lora_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.lora_scale = lora_scale
        # True while ``LoRAFusion`` has folded the LoRA into the layer's own weights.
        self.lora_fused = False
        context_dim = cross_attention_dim or hidden_size
        self.to_q_lora = LoRALinear(hidden_size, hidden_size, rank)
        self.to_k_lora = LoRALinear(context_dim, hidden_size, rank)
        self.to_v_lora = LoRALinear(context_dim, hidden_size, rank)
        self.to_out_lora = LoRALinear(hidden_size, hidden_size, rank)

    # --- the steps shared with the IP variant and the VCR processors ------------------------
    def prepare(self, attn: nn.Module, hidden_states: Tensor, temb: Tensor | None):
        """Tokens [B, N, C] of ``hidden_states`` (after the layer's norms) and the 4-D shape
        to restore, or None."""
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        shape = None
        if hidden_states.ndim == 4:
            shape = hidden_states.shape
            b, c, h, w = shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        return hidden_states, shape

    def query(self, attn: nn.Module, tokens: Tensor) -> Tensor:
        """Queries [B, N, C] of ``tokens`` [B, N, C] (with the LoRA)."""
        query = attn.to_q(tokens)
        if self.lora_fused:
            return query
        return query + self.lora_scale * self.to_q_lora(tokens)

    def key_value(self, attn: nn.Module, context: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values [B, M, C] of ``context`` [B, M, C'] (with the LoRA)."""
        key, value = attn.to_k(context), attn.to_v(context)
        if self.lora_fused:
            return key, value
        key = key + self.lora_scale * self.to_k_lora(context)
        value = value + self.lora_scale * self.to_v_lora(context)
        return key, value

    def attend(self, attn: nn.Module, query: Tensor, context: Tensor,
               mask: Tensor | None = None) -> Tensor:  # fmt: skip
        """``softmax(Q K^T / sqrt(d)) V`` [B, N, C] for queries [B, N, C] over ``context``."""
        key, value = self.key_value(attn, context)
        out = F.scaled_dot_product_attention(
            _heads(attn, query), _heads(attn, key), _heads(attn, value), attn_mask=mask
        )
        return _merge(out).to(query.dtype)

    def finish(self, attn: nn.Module, out: Tensor, residual: Tensor, shape) -> Tensor:
        """Output projection (with the LoRA), residual and rescale, back to ``shape``."""
        projected = attn.to_out[0](out)
        out = projected if self.lora_fused else projected + self.lora_scale * self.to_out_lora(out)
        out = attn.to_out[1](out)  # dropout
        if shape is not None:
            out = out.transpose(-1, -2).reshape(shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _mask(self, attn, mask: Tensor | None, seq_len: int, batch: int) -> Tensor | None:
        if mask is None:
            return None
        mask = attn.prepare_attention_mask(mask, seq_len, batch)
        return mask.view(batch, attn.heads, -1, mask.shape[-1])

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        **kwargs: object,
    ) -> Tensor:
        residual = hidden_states
        hidden_states, shape = self.prepare(attn, hidden_states, temb)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        mask = self._mask(attn, attention_mask, context.shape[1], context.shape[0])
        query = self.query(attn, hidden_states)
        return self.finish(attn, self.attend(attn, query, context, mask), residual, shape)


class FaceIDLoRAIPAttnProcessor(FaceIDLoRAAttnProcessor):
    """LoRA attention plus decoupled attention to the last ``num_tokens`` (ID) tokens of
    ``encoder_hidden_states``: ``out = Attn(q, text) + scale * Attn(q, id_tokens)``.
    For cross-attention layers (attn2)."""

    def __init__(
        self,
        hidden_size: int,
        cross_attention_dim: int | None = None,
        rank: int = 128,
        lora_scale: float = 1.0,
        scale: float = 1.0,
        num_tokens: int = 4,
    ) -> None:
        super().__init__(hidden_size, cross_attention_dim, rank, lora_scale)
        self.scale = scale
        self.num_tokens = num_tokens
        context_dim = cross_attention_dim or hidden_size
        self.to_k_ip = nn.Linear(context_dim, hidden_size, bias=False)
        self.to_v_ip = nn.Linear(context_dim, hidden_size, bias=False)

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        **kwargs: object,
    ) -> Tensor:
        if encoder_hidden_states is None:
            raise ValueError("FaceIDLoRAIPAttnProcessor is for cross-attention layers only.")
        residual = hidden_states
        hidden_states, shape = self.prepare(attn, hidden_states, temb)
        split = encoder_hidden_states.shape[1] - self.num_tokens
        text, id_tokens = encoder_hidden_states[:, :split], encoder_hidden_states[:, split:]
        if attn.norm_cross:
            text = attn.norm_encoder_hidden_states(text)
        mask = self._mask(attn, attention_mask, text.shape[1], text.shape[0])
        query = self.query(attn, hidden_states)
        out = self.attend(attn, query, text, mask)
        ip = F.scaled_dot_product_attention(
            _heads(attn, query),
            _heads(attn, self.to_k_ip(id_tokens.to(self.to_k_ip.weight.dtype)).to(query.dtype)),
            _heads(attn, self.to_v_ip(id_tokens.to(self.to_v_ip.weight.dtype)).to(query.dtype)),
        )
        out = out + self.scale * _merge(ip).to(out.dtype)
        return self.finish(attn, out, residual, shape)


def _hidden_size(unet: nn.Module, name: str) -> int:
    channels = list(unet.config.block_out_channels)
    if name.startswith("mid_block"):
        return channels[-1]
    block = int(name.split(".")[1])
    return list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block]


def install_faceid_adapter(
    unet: nn.Module, lora_rank: int = 128, num_tokens: int = 4, scale: float = 1.0
) -> nn.ModuleList:
    """Put FaceID processors on every attention layer of ``unet`` (in
    ``unet.attn_processors`` order) and return them as the ``ModuleList`` whose state dict
    has the layout of the checkpoint's ``ip_adapter`` entry."""
    param = next(unet.parameters())
    processors: dict[str, nn.Module] = {}
    for name in unet.attn_processors:
        hidden = _hidden_size(unet, name)
        if name.endswith("attn1.processor"):
            proc: nn.Module = FaceIDLoRAAttnProcessor(hidden, None, lora_rank)
        else:
            proc = FaceIDLoRAIPAttnProcessor(
                hidden,
                unet.config.cross_attention_dim,
                lora_rank,
                scale=scale,
                num_tokens=num_tokens,
            )
        processors[name] = proc.to(device=param.device, dtype=param.dtype)
    unet.set_attn_processor(processors)
    return nn.ModuleList(unet.attn_processors.values())
