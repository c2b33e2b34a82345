"""Every speed-up keeps results within a stated bound of the plain path (issue 5)."""

import lpips
import torch

from gaussianip.engine.reconstruction import lpips_loss


def _lpips():
    torch.manual_seed(0)
    return lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval().requires_grad_(False)


def test_checkpointed_lpips_has_the_same_value_and_gradient():
    model = _lpips()
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(3, 3, 48, 48, generator=gen)
    results = []
    for checkpoint in (False, True):
        render = torch.rand(3, 3, 48, 48, generator=torch.Generator().manual_seed(2))
        render.requires_grad_(True)
        loss = lpips_loss(model, render, target, checkpoint=checkpoint)
        loss.backward()
        results.append((loss.detach(), render.grad))
    (plain, plain_grad), (ckpt, ckpt_grad) = results
    torch.testing.assert_close(ckpt, plain, atol=1e-6, rtol=1e-5)
    scale = plain_grad.abs().max()
    # bound: float noise of batched vs per-view convolutions, 0.2 % of the largest entry
    torch.testing.assert_close(ckpt_grad, plain_grad, atol=2e-3 * float(scale), rtol=0)


def test_channels_last_vae_encoding_matches(monkeypatch):
    from gaussianip.prior import tiny

    tiny.seeded(0)
    vae = tiny.tiny_vae().eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    plain = vae.encode(x).latent_dist.mean
    vae.to(memory_format=torch.channels_last)
    fast = vae.encode(x.contiguous(memory_format=torch.channels_last)).latent_dist.mean
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
