"""HDS guidance on the tiny prior: the real code path, random weights, no download."""

import pytest
import torch

from gaussianip.body import build_body_model
from gaussianip.data import HumanCameraConfig, HumanCameraSampler
from gaussianip.engine import Stage1Config, Stage1Trainer
from gaussianip.errors import ConfigError
from gaussianip.faces import StandInFaceAnalyser, extract_identity
from gaussianip.gaussians import GaussianConfig
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.guidance.hds_guidance import HDSGuidance, HDSGuidanceConfig, body_pose_images
from gaussianip.prior.human_prior import HumanPrior, PriorConfig


@pytest.fixture(scope="module")
def prior():
    return HumanPrior.build(PriorConfig(preset="tiny"))


@pytest.fixture(scope="module")
def identities():
    analyser = StandInFaceAnalyser()
    return (extract_identity("load/portraits/eileen_collins_nasa.png", analyser),
            extract_identity("load/portraits/grace_hopper_us_navy.jpg", analyser))  # fmt: skip


def _count_calls(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def test_one_unet_call_per_step_and_conditions_computed_once(prior, identities):
    text_calls = _count_calls(prior.text_encoder)
    guidance = HDSGuidance(prior, HDSGuidanceConfig(resolution=64), *identities,
                           pose_images=body_pose_images(build_body_model()))  # fmt: skip
    assert len(text_calls) == 1  # all prompts in one batch, once
    unet_calls, control_calls = _count_calls(prior.unet), _count_calls(prior.controlnet)
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=2, height=32, width=32))
    for step in range(3):
        batch = sampler.sample(1500 + step)
        rgb = torch.rand(2, 32, 32, 3, requires_grad=True)
        out = guidance(rgb, batch, 1500 + step)
        out["loss_sds"].backward()
        assert torch.isfinite(out["loss_sds"]) and rgb.grad.abs().sum() > 0  # through the VAE
    assert len(unet_calls) == 3 and len(control_calls) == 3 and len(text_calls) == 1
    pos, neg, null = guidance.contexts(batch)
    assert pos.shape == (2, 77 + 4, 32)  # text tokens, then the 4 ID tokens
    assert not torch.equal(pos[:, 77:], neg[:, 77:])  # portrait vs repelling identity
    assert not torch.equal(neg[:, 77:], null[:, 77:])


def test_view_dependent_prompts(prior):
    guidance = HDSGuidance(prior, HDSGuidanceConfig())
    batch = {
        "azimuth": torch.tensor([0.0, 90.0, 180.0, -170.0, 10.0, 20.0]),
        "elevation": torch.tensor([0.0, 0.0, 0.0, 0.0, 70.0, 0.0]),
        "view_kind": torch.tensor([0, 0, 0, 0, 0, 1]),
    }
    assert guidance.view_index(batch).tolist() == [0, 1, 2, 2, 3, 4]


def test_no_identity_prior_is_plain_text_to_3d():
    prior = HumanPrior.build(PriorConfig(preset="tiny", ip_adapter=None, controlnet=None))
    guidance = HDSGuidance(prior, HDSGuidanceConfig(resolution=32))
    batch = HumanCameraSampler(HumanCameraConfig(batch_size=1, height=32, width=32)).sample(0)
    pos, _, _ = guidance.contexts(batch)
    assert pos.shape == (1, 77, 32)
    out = guidance(torch.rand(1, 32, 32, 3, requires_grad=True), batch, 0)
    assert torch.isfinite(out["loss_sds"])


def test_stage1_steps_with_the_tiny_prior(prior, identities):
    body = build_body_model()
    model = gaussians_from_body(body, GaussianConfig(init_num_points=2000),
                                torch.Generator().manual_seed(0))  # fmt: skip
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=2, height=32, width=32))
    guidance = HDSGuidance(prior, HDSGuidanceConfig(resolution=64), *identities,
                           pose_images=body_pose_images(body))  # fmt: skip
    before = model.params["sh0"].detach().clone()
    trainer = Stage1Trainer(model, sampler, guidance, Stage1Config(steps=2))
    logs = [trainer.step(i) for i in range(2)]
    assert all(torch.isfinite(torch.tensor(v)) for log in logs for v in log.values())
    assert not torch.equal(model.params["sh0"], before)  # the colours moved


@pytest.mark.parametrize("mode", ["hds", "sds"])
def test_micro_batches_give_the_whole_batch_loss_and_render_gradient(prior, identities, mode):
    """``micro_batch`` passes views through the VAE and UNet a few at a time (less memory):
    the loss, its gradient on the renders and the logged norms equal the one-pass ones, and
    each pass calls the UNet once on its own views."""
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=4, height=32, width=32))
    batch = sampler.sample(1500, torch.Generator().manual_seed(3))
    pixels = torch.rand(4, 32, 32, 3, generator=torch.Generator().manual_seed(4))
    results = {}
    for micro_batch in (0, 1, 3):
        cfg = HDSGuidanceConfig(resolution=64, micro_batch=micro_batch, mode=mode)
        guidance = HDSGuidance(prior, cfg, *identities, pose_images=body_pose_images(
            build_body_model()), generator=torch.Generator().manual_seed(5))  # fmt: skip
        rows = []
        hook = prior.unet.register_forward_hook(lambda m, a, out, rows=rows: rows.append(len(a[0])))
        rgb = pixels.clone().requires_grad_(True)
        out = guidance(rgb * 1.0, batch, 1500)  # a graph in front, as a render has
        (2.0 * out["loss_sds"]).backward()
        hook.remove()
        assert rows == {0: [12], 1: [3] * 4, 3: [9, 3]}[micro_batch]  # 3 conditions a view
        results[micro_batch] = (out, rgb.grad)
    (one, grad_one) = results[0]
    assert grad_one.abs().sum() > 0
    for micro_batch in (1, 3):
        out, grad = results[micro_batch]
        torch.testing.assert_close(out["loss_sds"], one["loss_sds"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(out["grad_norm"], one["grad_norm"], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(out["timestep"], one["timestep"])
        # float32 convolutions round a little differently at other batch sizes
        scale = grad_one.abs().max().item()
        torch.testing.assert_close(grad, grad_one, rtol=0, atol=1e-4 * scale)


def test_micro_batch_must_not_be_negative():
    with pytest.raises(ConfigError, match="micro_batch"):
        HDSGuidanceConfig(micro_batch=-1)


def test_hds_gradient_is_clipped_per_latent_row_as_the_reference(prior, identities, monkeypatch):
    """grad_clip_pixel (default on, threshold 1.0) clips the HDS gradient row by row; the
    SDS ablation is not clipped (the reference clips only its HDS path)."""
    import gaussianip.guidance.hds_guidance as module

    seen = []
    monkeypatch.setattr(module, "latent_loss_from_gradient",
                        lambda z, g, views=None: seen.append(g) or (z * 0).sum())  # fmt: skip
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=2, height=32, width=32))
    batch = sampler.sample(100, torch.Generator().manual_seed(1))
    for mode, clip in (("hds", True), ("hds", False), ("sds", True)):
        cfg = HDSGuidanceConfig(resolution=64, mode=mode, grad_clip_pixel=clip,
                                guidance_scale=100.0)  # fmt: skip
        guidance = HDSGuidance(prior, cfg, *identities,
                               generator=torch.Generator().manual_seed(2))  # fmt: skip
        guidance(torch.rand(2, 32, 32, 3), batch, 100)
    clipped, unclipped, sds = (g.norm(dim=-1) for g in seen)
    assert unclipped.max() > 1.0 and sds.max() > 1.0  # large enough to be clipped
    assert clipped.max() <= 1.0 + 1e-5
    with pytest.raises(ConfigError, match="grad_clip_threshold"):
        HDSGuidanceConfig(grad_clip_threshold=0.0)
