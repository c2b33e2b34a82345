"""LPIPS against fixed targets, their VGG features computed once.

The reconstruction compares every render with one of its N refined views, which never
change. ``lpips.LPIPS.forward`` runs VGG on both images at every step; here each target's
VGG feature maps are computed once, kept on the device, and each step runs VGG on the
renders alone, which saves a third of LPIPS's arithmetic (the targets' forward passes;
the renders need a forward and a backward). The loss is the same formula as
``LPIPS.forward(render, target, normalize=True)`` (version 0.1, linear heads, spatial
average), so it matches the plain path to rounding (tests/test_lpips_targets.py).

The price is memory: the five feature maps of one 1024-px view hold 128 M values, 256 MB
in bf16, so 32 refined views take 8 GB. The memory plan turns it on for the large plan
only (``system.reconstruction.lpips_target_cache``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor


def _lpips_parts(model: torch.nn.Module) -> torch.nn.Module:
    """The ``lpips.LPIPS`` module itself (``torch.compile`` wraps it)."""
    return getattr(model, "_orig_mod", model)


def _normalize(features: Tensor, eps: float = 1e-10) -> Tensor:
    """``lpips.normalize_tensor``: unit length along the channels."""
    return features / (torch.sqrt(torch.sum(features**2, dim=1, keepdim=True)) + eps)


def lpips_features(model: torch.nn.Module, images: Tensor) -> list[Tensor]:
    """The LPIPS network's feature maps (one [B, C_l, H_l, W_l] per layer) of ``images``
    [B, 3, H, W] in [0, 1], before the per-layer normalisation."""
    parts = _lpips_parts(model)
    return list(parts.net(parts.scaling_layer(2 * images - 1)))


def mean_over_views(compare: Callable[..., Tensor], *batch: Tensor,
                    checkpoint: bool = False) -> Tensor:  # fmt: skip
    """Mean [scalar] of ``compare(*batch)`` [B, 1, 1, 1] (one value a view).
    ``checkpoint``: one view at a time, its activations recomputed in backward (the same
    value and gradient; the memory of one view instead of B)."""
    if not checkpoint:
        return compare(*batch).mean()
    from torch.utils.checkpoint import checkpoint as recompute

    n = batch[0].shape[0]
    total = sum(recompute(compare, *[t[i : i + 1] for t in batch], use_reentrant=False).sum()
                for i in range(n))  # fmt: skip
    return total / n  # type: ignore[operator]


def lpips_against_features(model: torch.nn.Module, images: Tensor,
                           target_features: Sequence[Tensor]) -> Tensor:  # fmt: skip
    """LPIPS [B, 1, 1, 1] of ``images`` [B, 3, H, W] in [0, 1] against targets given by
    their ``lpips_features`` (the same formula as ``LPIPS.forward(..., normalize=True)``)."""
    parts = _lpips_parts(model)
    value: Tensor | int = 0
    for layer, (ours, theirs) in enumerate(
        zip(lpips_features(model, images), target_features, strict=True)
    ):
        diff = (_normalize(ours) - _normalize(theirs)) ** 2
        value = value + parts.lins[layer](diff).mean([2, 3], keepdim=True)
    return value  # type: ignore[return-value]


class LpipsTargets:
    """``loss(images, views)``: mean LPIPS of ``images`` against the cached features of
    the target ``views``, with the same switches as ``reconstruction.lpips_loss``."""

    def __init__(self, model: torch.nn.Module, targets: Tensor, autocast: bool = False,
                 compile: bool = False) -> None:  # fmt: skip
        """``targets`` [N, 3, H, W] in [0, 1], on the device the features will live on.
        ``autocast``: bf16 on CUDA, as the plain path; ``compile``: torch.compile the
        comparison (fuses the normalisation and differences of the feature maps)."""
        self.model, self.autocast = model, autocast
        self.features: list[Tensor] = []
        with torch.no_grad():  # one view at a time: the activations of one view at most
            for view in range(targets.shape[0]):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    maps = lpips_features(model, targets[view : view + 1])
                if not self.features:
                    self.features = [m.new_empty((targets.shape[0], *m.shape[1:])) for m in maps]
                for store, m in zip(self.features, maps, strict=True):
                    store[view] = m[0]
        compare: Callable[..., Tensor] = self._compare
        self._compare_fn = torch.compile(compare, dynamic=False) if compile else compare

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.features)

    def _compare(self, images: Tensor, *target_features: Tensor) -> Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            return lpips_against_features(self.model, images, target_features).float()

    def loss(self, images: Tensor, views: Sequence[int], checkpoint: bool = False) -> Tensor:
        """Mean LPIPS [scalar] of ``images`` [B, 3, H, W] in [0, 1] against the targets
        ``views`` [B]. ``checkpoint``: one view at a time, recomputed in backward."""
        index = torch.as_tensor(list(views), device=self.features[0].device)
        targets = [f.index_select(0, index) for f in self.features]
        return mean_over_views(self._compare_fn, images, *targets, checkpoint=checkpoint)


__all__ = ["LpipsTargets", "lpips_against_features", "lpips_features", "mean_over_views"]
