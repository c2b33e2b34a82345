import inspect

import pytest
import torch

import gaussianip
from gaussianip.guidance import hds_gradient, latent_loss_from_gradient, sds_gradient


def _alphas_cumprod() -> torch.Tensor:
    # SD 1.5's DDIM scaled_linear schedule: betas from 0.00085 to 0.012 over 1000 steps.
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def _eps(seed: int, b: int = 4) -> torch.Tensor:
    return torch.randn(b, 4, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_hds_matches_hand_computation_on_both_sides_of_the_threshold():
    pos, neg, null = _eps(0), _eps(1), _eps(2)
    t = torch.tensor([50, 169, 170, 700])  # two views below 170, two at or above
    ac = _alphas_cumprod()
    grad = gaussianip.hds_gradient(pos, neg, null, t, ac)
    for i in range(4):
        w = 1.0 - ac[t[i]]
        delta_c = 7.5 * (pos[i] - null[i])
        delta_d = null[i] if t[i] < 170 else null[i] - neg[i]
        assert torch.allclose(grad[i], w * (delta_c + delta_d), atol=1e-6), i
    # Below the threshold the negative prediction has no influence at all.
    grad_other_neg = hds_gradient(pos, _eps(9), null, t, ac)
    assert torch.equal(grad_other_neg[:2], grad[:2])
    assert not torch.allclose(grad_other_neg[2:], grad[2:])


def test_hds_arguments_and_no_noise_input():
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
    pos, neg, null, ac = _eps(0, 1), _eps(1, 1), _eps(2, 1), _alphas_cumprod()
    t = torch.tensor([300])
    g2 = hds_gradient(pos, neg, null, t, ac, guidance_scale=2.0, repel_threshold=400)
    assert torch.allclose(g2, (1 - ac[300]) * (2.0 * (pos - null) + null), atol=1e-6)


def test_hds_zeroes_nan_and_inf():
    pos, neg, null = _eps(0, 2), _eps(1, 2), _eps(2, 2)
    pos[0, 0, 0, 0] = float("nan")
    pos[1, 0, 0, 0] = float("inf")
    grad = hds_gradient(pos, neg, null, torch.tensor([500, 500]), _alphas_cumprod())
    assert torch.isfinite(grad).all()
    assert grad[0, 0, 0, 0] == 0 and grad[1, 0, 0, 0] == 0


def test_sds_with_and_without_rescale():
    pos, null, noise, ac = _eps(0), _eps(1), _eps(2), _alphas_cumprod()
    t = torch.tensor([100, 300, 500, 900])
    w = (1 - ac[t]).view(-1, 1, 1, 1)
    cfg = null + 7.5 * (pos - null)
    assert torch.allclose(sds_gradient(pos, null, noise, t, ac), w * (cfg - noise), atol=1e-5)
    std_pos = pos.std(dim=(1, 2, 3), keepdim=True)
    std_cfg = cfg.std(dim=(1, 2, 3), keepdim=True)
    rescaled = 0.7 * cfg * std_pos / std_cfg + 0.3 * cfg
    got = sds_gradient(pos, null, noise, t, ac, guidance_rescale=0.7)
    assert torch.allclose(got, w * (rescaled - noise), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 4])
def test_latent_loss_gradient_is_grad_over_batch(batch):
    z = torch.randn(batch, 4, 8, 8, requires_grad=True)
    grad = torch.randn(batch, 4, 8, 8)
    loss = latent_loss_from_gradient(z, grad)
    loss.backward()
    assert torch.allclose(z.grad, grad / batch, atol=1e-6)
    assert torch.isclose(loss, 0.5 * (grad**2).sum() / batch)
