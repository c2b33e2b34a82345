import inspect

import pytest
import torch

import gaussianip
from gaussianip.guidance import (
    clip_latent_rows,
    hds_gradient,
    latent_loss_from_gradient,
    sds_gradient,
)


def _alphas_cumprod() -> torch.Tensor:
    # SD 1.5's DDIM scaled_linear schedule: betas from 0.00085 to 0.012 over 1000 steps.
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def _eps(seed: int, b: int = 4) -> torch.Tensor:
    return torch.randn(b, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def _hand_hds(pos, neg, null, t, ac, scale=7.5, threshold=170) -> torch.Tensor:
    """method.md's formula, one view at a time."""
    out = []
    for i in range(len(t)):
        w = 1.0 - ac[t[i]]
        delta_c = scale * (pos[i] - null[i])
        delta_d = null[i] if t[i] < threshold else null[i] - neg[i]
        out.append(w * (delta_c + delta_d))
    return torch.stack(out)


def test_weighting_schedule_is_sd15():
    ac = _alphas_cumprod()
    assert ac[0] == pytest.approx(0.99915, abs=1e-5)
    assert ac[999] == pytest.approx(0.0047, abs=1e-4)


def test_hds_matches_hand_computation_on_both_sides_of_the_threshold():
    pos, neg, null = _eps(0, 6), _eps(1, 6), _eps(2, 6)
    t = torch.tensor([50, 169, 170, 700, 20, 999])  # views below 170 and at or above it
    ac = _alphas_cumprod()
    grad = gaussianip.hds_gradient(pos, neg, null, t, ac)
    assert grad.shape == pos.shape
    assert torch.allclose(grad, _hand_hds(pos, neg, null, t, ac), atol=1e-6)
    # Below the threshold the negative prediction has no influence at all.
    below = t < 170
    grad_other_neg = hds_gradient(pos, _eps(9, 6), null, t, ac)
    assert torch.equal(grad_other_neg[below], grad[below])
    assert not torch.isclose(grad_other_neg[~below], grad[~below]).any()


def test_hds_signature_has_no_noise():
    params = list(inspect.signature(hds_gradient).parameters)
    assert params == [
        "eps_pos",
        "eps_neg",
        "eps_null",
        "t",
        "alphas_cumprod",
        "guidance_scale",
        "repel_threshold",
    ]


def test_hds_guidance_scale_and_threshold_are_respected():
    pos, neg, null, ac = _eps(0), _eps(1), _eps(2), _alphas_cumprod()
    t = torch.tensor([100, 300, 399, 400])
    got = hds_gradient(pos, neg, null, t, ac, guidance_scale=2.0, repel_threshold=400)
    assert torch.allclose(got, _hand_hds(pos, neg, null, t, ac, 2.0, 400), atol=1e-6)
    # Threshold 0: every view repels; above 999: none does.
    assert torch.allclose(
        hds_gradient(pos, neg, null, t, ac, repel_threshold=0),
        _hand_hds(pos, neg, null, t, ac, threshold=0),
        atol=1e-6,
    )
    assert torch.allclose(
        hds_gradient(pos, neg, null, t, ac, repel_threshold=1000),
        (1 - ac[t]).view(-1, 1, 1, 1) * (7.5 * (pos - null) + null),
        atol=1e-6,
    )


def test_hds_zeroes_nan_and_inf():
    pos, neg, null = _eps(0, 3), _eps(1, 3), _eps(2, 3)
    pos[0, 0, 0, 0] = float("nan")
    pos[1, 0, 0, 0] = float("inf")
    neg[2, 0, 0, 0] = float("inf")  # eps_null - eps_neg = -inf above the threshold
    grad = hds_gradient(pos, neg, null, torch.tensor([500, 500, 500]), _alphas_cumprod())
    assert torch.isfinite(grad).all()
    assert grad[0, 0, 0, 0] == 0 and grad[1, 0, 0, 0] == 0 and grad[2, 0, 0, 0] == 0
    assert grad[0, 0, 0, 1] != 0  # only the non-finite entries are zeroed


def test_sds_without_rescale():
    pos, null, noise, ac = _eps(0), _eps(1), _eps(2), _alphas_cumprod()
    t = torch.tensor([100, 300, 500, 900])
    w = (1 - ac[t]).view(-1, 1, 1, 1)
    cfg = null + 7.5 * (pos - null)
    assert torch.allclose(sds_gradient(pos, null, noise, t, ac), w * (cfg - noise), atol=1e-5)
    # Unlike HDS, the noise enters: a different noise gives a different gradient.
    other = sds_gradient(pos, null, _eps(3), t, ac)
    assert not torch.allclose(other, sds_gradient(pos, null, noise, t, ac))


def test_sds_with_rescale():
    pos, null, noise, ac = _eps(0), _eps(1), _eps(2), _alphas_cumprod()
    t = torch.tensor([100, 300, 500, 900])
    w = (1 - ac[t]).view(-1, 1, 1, 1)
    cfg = null + 5.0 * (pos - null)
    # diffusers' rescale_noise_cfg, per view: std over all but the batch dimension.
    std_pos = pos.std(dim=(1, 2, 3), keepdim=True)
    std_cfg = cfg.std(dim=(1, 2, 3), keepdim=True)
    rescaled = 0.7 * cfg * std_pos / std_cfg + 0.3 * cfg
    got = sds_gradient(pos, null, noise, t, ac, guidance_scale=5.0, guidance_rescale=0.7)
    assert torch.allclose(got, w * (rescaled - noise), atol=1e-5)
    # Full rescale: eps_cfg takes eps_pos's standard deviation exactly.
    full = sds_gradient(pos, null, torch.zeros_like(noise), t, ac, guidance_rescale=1.0) / w
    assert torch.allclose(full.std(dim=(1, 2, 3)), std_pos.flatten(), rtol=1e-4)


@pytest.mark.parametrize("batch", [1, 4])
def test_latent_loss_gradient_is_grad_over_batch(batch):
    z = torch.randn(batch, 4, 8, 8, requires_grad=True)
    grad = torch.randn(batch, 4, 8, 8)
    loss = latent_loss_from_gradient(z, grad)
    assert loss.dim() == 0
    loss.backward()
    # As the docstring says: d loss / d z = grad / B, and the value is 0.5 ||grad||^2 / B.
    assert torch.allclose(z.grad, grad / batch, atol=1e-6)
    assert torch.isclose(loss, 0.5 * (grad**2).sum() / batch)


def test_latent_loss_does_not_backpropagate_into_grad():
    z = torch.randn(2, 4, 8, 8, requires_grad=True)
    grad = torch.randn(2, 4, 8, 8, requires_grad=True)
    latent_loss_from_gradient(z, grad).backward()
    assert grad.grad is None


def test_clip_latent_rows_caps_each_rows_norm_over_the_width():
    """The reference's grad_clip_pixel: per (view, channel, row), the norm over the last
    axis is at most the threshold, long rows keep their direction, short rows are kept."""
    grad = torch.randn(2, 4, 8, 64, generator=torch.Generator().manual_seed(0))
    grad[0, 0, 0] *= 0.01  # a short row (norm about 0.08)
    clipped = clip_latent_rows(grad, threshold=1.0)
    norms = clipped.norm(dim=-1)
    assert norms.max() <= 1.0 + 1e-5
    long_rows = grad.norm(dim=-1) > 1.0
    assert long_rows.sum() > 60  # a random row of 64 values has norm about 8
    torch.testing.assert_close(norms[long_rows], torch.ones_like(norms[long_rows]))
    cos = torch.nn.functional.cosine_similarity(clipped, grad, dim=-1)
    torch.testing.assert_close(cos, torch.ones_like(cos))
    torch.testing.assert_close(clipped[0, 0, 0], grad[0, 0, 0], rtol=1e-5, atol=0)
    # a larger threshold clips fewer rows; rows are independent of each other
    torch.testing.assert_close(clip_latent_rows(grad[1:], 1.0), clipped[1:])
    assert (clip_latent_rows(grad, 100.0) - grad).abs().max() < 1e-6
