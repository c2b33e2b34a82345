"""HDS guidance on the tiny prior: the real code path, random weights, no download."""

import pytest
import torch

from gaussianip.body import build_body_model
from gaussianip.data import HumanCameraConfig, HumanCameraSampler
from gaussianip.engine import Stage1Config, Stage1Trainer
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
