"""Folding the FaceID LoRA into the UNet's attention weights (the distillation fast path).

The FaceID processors add ``scale * up(down(x))`` to the q, k, v and out projections of
every attention layer: eight extra rank-128 matrix products per layer and call. With
frozen weights that is the same linear map as one projection with the weight
``W + scale * up @ down``, so distillation can fold the LoRA in once and skip it. The
refinement swaps attention processors and needs the separate LoRA again: ``unfuse()``
puts the original weights back bit for bit (they are kept, not recomputed).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gaussianip.prior.attention import FaceIDLoRAAttnProcessor


def lora_pairs(attn: nn.Module, proc: FaceIDLoRAAttnProcessor) -> list[tuple[nn.Linear, nn.Module]]:
    """(base projection, its LoRA) for q, k, v and out of one attention layer."""
    return [
        (attn.to_q, proc.to_q_lora),
        (attn.to_k, proc.to_k_lora),
        (attn.to_v, proc.to_v_lora),
        (attn.to_out[0], proc.to_out_lora),
    ]


def fused_weight(weight: Tensor, down: Tensor, up: Tensor, scale: float) -> Tensor:
    """``weight + scale * up @ down`` [out, in], summed in float32, in ``weight``'s dtype."""
    return (weight.float() + scale * (up.float() @ down.float())).to(weight.dtype)


class LoRAFusion:
    """Fold (``fuse``) and unfold (``unfuse``) the LoRA of every FaceID processor of ``unet``."""

    def __init__(self, unet: nn.Module) -> None:
        self.layers: list[tuple[nn.Module, FaceIDLoRAAttnProcessor]] = []
        modules = dict(unet.named_modules())
        for name, proc in unet.attn_processors.items():
            if isinstance(proc, FaceIDLoRAAttnProcessor):
                self.layers.append((modules[name.removesuffix(".processor")], proc))
        self._originals: list[Tensor] | None = None

    @property
    def fused(self) -> bool:
        return self._originals is not None

    @torch.no_grad()
    def fuse(self) -> None:
        if self.fused:
            return
        originals: list[Tensor] = []
        for attn, proc in self.layers:
            for linear, lora in lora_pairs(attn, proc):
                originals.append(linear.weight.detach().clone())
                linear.weight.copy_(fused_weight(linear.weight, lora.down.weight,
                                                 lora.up.weight, proc.lora_scale))  # fmt: skip
            proc.lora_fused = True
        self._originals = originals

    @torch.no_grad()
    def unfuse(self) -> None:
        if self._originals is None:
            return
        originals = iter(self._originals)
        for attn, proc in self.layers:
            for linear, _ in lora_pairs(attn, proc):
                linear.weight.copy_(next(originals))
            proc.lora_fused = False
        self._originals = None
