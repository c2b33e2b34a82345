"""LPIPS against cached target features (engine/lpips_targets.py) is the plain LPIPS:
the same value and the same gradient, with and without recomputation, on random images
and a random VGG backbone (no download)."""

import pytest
import torch

from gaussianip.engine.lpips_targets import LpipsTargets, lpips_features
from gaussianip.engine.reconstruction import ReconstructionConfig, build_lpips, lpips_loss


@pytest.fixture(scope="module")
def lpips_model():
    torch.manual_seed(0)
    cfg = ReconstructionConfig(lpips_pretrained=False)
    return build_lpips(cfg, "cpu")


def test_cached_loss_and_gradient_match_the_plain_lpips(lpips_model):
    generator = torch.Generator().manual_seed(1)
    targets = torch.rand(5, 3, 64, 64, generator=generator)
    views = [3, 0, 3]
    render = torch.rand(3, 3, 64, 64, generator=generator, requires_grad=True)

    plain = lpips_loss(lpips_model, render, targets[views])
    (plain_grad,) = torch.autograd.grad(plain, render)
    cache = LpipsTargets(lpips_model, targets)
    cached = cache.loss(render, views)
    (cached_grad,) = torch.autograd.grad(cached, render)

    assert cached.shape == () and plain.item() > 0
    torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-7)
    atol = 1e-5 * plain_grad.abs().max().item()
    torch.testing.assert_close(cached_grad, plain_grad, rtol=1e-4, atol=atol)
    # the package's own forward, view by view, as a reference beside ours
    direct = torch.stack([lpips_model(render[i : i + 1], targets[v : v + 1], normalize=True)
                          for i, v in enumerate(views)]).mean()  # fmt: skip
    torch.testing.assert_close(cached, direct, rtol=1e-5, atol=1e-7)


def test_recomputed_cached_loss_is_the_batched_one(lpips_model):
    generator = torch.Generator().manual_seed(2)
    targets = torch.rand(4, 3, 32, 32, generator=generator)
    render = torch.rand(2, 3, 32, 32, generator=generator, requires_grad=True)
    cache = LpipsTargets(lpips_model, targets)
    batched = cache.loss(render, [1, 2])
    (g_batched,) = torch.autograd.grad(batched, render)
    recomputed = cache.loss(render, [1, 2], checkpoint=True)
    (g_recomputed,) = torch.autograd.grad(recomputed, render)
    torch.testing.assert_close(recomputed, batched, rtol=1e-5, atol=1e-7)
    # tolerance: 1e-5 of the largest gradient (summation order differs view by view)
    atol = 1e-5 * g_batched.abs().max().item()
    torch.testing.assert_close(g_recomputed, g_batched, rtol=1e-4, atol=atol)


def test_the_cache_holds_every_views_five_feature_maps(lpips_model):
    targets = torch.rand(3, 3, 32, 32)
    cache = LpipsTargets(lpips_model, targets)
    maps = lpips_features(lpips_model, targets)
    assert [f.shape for f in cache.features] == [m.shape for m in maps]
    assert len(cache.features) == 5 and cache.features[0].shape == (3, 64, 32, 32)
    torch.testing.assert_close(cache.features[4], maps[4])
    assert cache.nbytes == sum(m.numel() * 4 for m in maps)  # fp32 on the CPU


def test_reconstructor_uses_the_cache_only_when_asked():
    from gaussianip.engine.reconstruction import Reconstructor

    class Model:  # the reconstructor reads the device and the optimisers only here
        means = torch.zeros(1, 3)

        def make_optimizers(self):
            return {}

    targets = torch.rand(4, 32, 32, 3)
    for flag in (None, False, True):
        cfg = ReconstructionConfig(lpips_pretrained=False, lpips_target_cache=flag)
        recon = Reconstructor(Model(), {}, targets, cfg)  # type: ignore[arg-type]
        assert (recon.lpips_targets is not None) == bool(flag)
        render = torch.rand(2, 32, 32, 3)
        terms = recon.image_loss(render, targets[[2, 1]], views=[2, 1])
        plain = recon.image_loss(render, targets[[2, 1]])
        torch.testing.assert_close(terms["loss_lpips"], plain["loss_lpips"], rtol=1e-5, atol=1e-7)
