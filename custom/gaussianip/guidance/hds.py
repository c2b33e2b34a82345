"""Human Distillation Sampling (HDS) and plain SDS as latent gradients.

Both return the gradient on the latents z [B, 4, h, w]; ``latent_loss_from_gradient``
turns it into a loss whose backward pass delivers it (through the VAE into the render).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _per_view(values: Tensor, like: Tensor) -> Tensor:
    """[B] -> [B, 1, 1, 1] for broadcasting against ``like`` [B, C, h, w]."""
    return values.reshape(-1, *([1] * (like.dim() - 1))).to(like)


def hds_gradient(
    eps_pos: Tensor,
    eps_neg: Tensor,
    eps_null: Tensor,
    t: Tensor,
    alphas_cumprod: Tensor,
    guidance_scale: float = 7.5,
    repel_threshold: int = 170,
) -> Tensor:
    """The HDS latent gradient of GaussianIP (method.md, "Stage 1").

    Args:
        eps_pos: noise predicted with the prompt and the portrait's ID tokens [B, C, h, w].
        eps_neg: noise predicted with the negative prompt and the repelling identity.
        eps_null: noise predicted with empty text and unconditional image tokens.
        t: diffusion timestep of each view [B] (long).
        alphas_cumprod: the scheduler's cumulative alphas [T].

    Returns ``w(t) * (delta_C + delta_D)`` [B, C, h, w] with
    ``delta_C = guidance_scale * (eps_pos - eps_null)``, ``delta_D = eps_null`` below
    ``repel_threshold`` and ``eps_null - eps_neg`` from it on, ``w(t) = 1 - alpha_bar(t)``;
    NaN and Inf become 0. The sampled noise never enters: that is the removed blur term.
    """
    delta_c = guidance_scale * (eps_pos - eps_null)
    repel = _per_view(t >= repel_threshold, eps_null)
    delta_d = eps_null - repel * eps_neg
    weight = _per_view(1.0 - alphas_cumprod.to(t.device)[t], eps_null)
    return torch.nan_to_num(weight * (delta_c + delta_d), nan=0.0, posinf=0.0, neginf=0.0)


def sds_gradient(
    eps_pos: Tensor,
    eps_null: Tensor,
    noise: Tensor,
    t: Tensor,
    alphas_cumprod: Tensor,
    guidance_scale: float = 7.5,
    guidance_rescale: float = 0.0,
) -> Tensor:
    """Plain SDS (DreamFusion) with classifier-free guidance, for ablations.

    Args:
        eps_pos: conditional noise prediction [B, C, h, w].
        eps_null: unconditional noise prediction [B, C, h, w].
        noise: the noise that was added to the latents [B, C, h, w].
        t: diffusion timestep of each view [B] (long).
        alphas_cumprod: the scheduler's cumulative alphas [T].
        guidance_rescale: phi of Lin et al. 2023; 0 turns the rescale off.

    Returns ``w(t) * (eps_cfg - noise)`` [B, C, h, w] with
    ``eps_cfg = eps_null + guidance_scale * (eps_pos - eps_null)``, optionally blended with
    its copy rescaled to ``eps_pos``'s per-view standard deviation (as diffusers'
    ``rescale_noise_cfg``), ``w(t) = 1 - alpha_bar(t)``; NaN and Inf become 0.
    """
    eps_cfg = eps_null + guidance_scale * (eps_pos - eps_null)
    if guidance_rescale > 0.0:
        dims = list(range(1, eps_pos.dim()))
        std_pos = eps_pos.std(dim=dims, keepdim=True)
        std_cfg = eps_cfg.std(dim=dims, keepdim=True)
        rescaled = eps_cfg * (std_pos / std_cfg)
        eps_cfg = guidance_rescale * rescaled + (1.0 - guidance_rescale) * eps_cfg
    weight = _per_view(1.0 - alphas_cumprod.to(t.device)[t], eps_pos)
    return torch.nan_to_num(weight * (eps_cfg - noise), nan=0.0, posinf=0.0, neginf=0.0)


def clip_latent_rows(grad: Tensor, threshold: float = 1.0) -> Tensor:
    """The reference implementation's ``grad_clip_pixel``: the gradient on the latents
    [B, C, h, w] rescaled row by row so that each row's norm over the last (width) axis is
    at most ``threshold``; rows already shorter stay as they are. Same shape, same
    directions."""
    norm = grad.norm(dim=-1, keepdim=True) + 1e-8
    return grad * (norm.clamp(max=threshold) / norm)


def latent_loss_from_gradient(latents: Tensor, grad: Tensor, views: int | None = None) -> Tensor:
    """``0.5 * ||z - stopgrad(z - grad)||^2 / B`` for latents z [B, C, h, w].

    Its gradient with respect to ``latents`` is ``grad / B``, not ``grad``: each view's
    gradient is averaged over the B views, as in the authors' code (method.md's "so
    d loss / d z = grad" leaves out the 1 / B). Its value is ``0.5 * ||grad||^2 / B``,
    useful only for logging. ``views`` overrides B when ``latents`` are a part of a
    larger batch of views (the parts' losses then add up to the whole batch's).
    """
    target = (latents - grad).detach()
    return 0.5 * ((latents - target) ** 2).sum() / (views or latents.shape[0])
