"""View-Consistent Refinement: the view plan, the attention processors against attention
computed by hand, and the refiner on the tiny prior."""

import math

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention

from gaussianip.data import HumanCameraConfig, HumanCameraSampler
from gaussianip.errors import ConfigError
from gaussianip.faces import StandInFaceAnalyser, extract_identity
from gaussianip.prior.attention import FaceIDLoRAAttnProcessor
from gaussianip.prior.configs import sd15_unet_config
from gaussianip.prior.human_prior import HumanPrior, PriorConfig
from gaussianip.refine import (
    VCRAttnProcessor,
    VCRConfig,
    VCRState,
    ViewConsistentRefiner,
    plan_views,
    ring_azimuths,
    select_layers,
    vcr_processors,
)

# ------------------------------------------------------------------ the view plan


@pytest.mark.parametrize("n", [16, 32, 64])
def test_plan_roles_come_from_azimuths(n):
    plan = plan_views(ring_azimuths(n))
    az = plan.azimuths
    assert [az[i] for i in plan.principal] == [0.0, 90.0, 180.0, -90.0]
    assert [az[i] for i in plan.key] == [45.0, 135.0, -135.0, -45.0]
    assert len(plan.intermediate) == n - 8
    assert sorted(plan.principal + plan.key + plan.intermediate) == list(range(n))
    front, back = plan.principal[0], plan.principal[2]
    for key in plan.key:  # front diagonals attend to the front, back ones to the back
        assert plan.key_reference[key] == (front if abs(az[key]) < 90 else back)


@pytest.mark.parametrize("n", [16, 32, 64])
def test_fusion_weights_follow_azimuth_distance(n):
    plan = plan_views(ring_azimuths(n))
    for view in plan.intermediate:
        nb = plan.neighbours[view]
        d_left = (plan.azimuths[view] - plan.azimuths[nb.left]) % 360
        d_right = (plan.azimuths[nb.right] - plan.azimuths[view]) % 360
        assert d_left + d_right == pytest.approx(45.0)  # the two anchors around the view
        assert nb.eta_left == pytest.approx(1 - d_left / 45)
        assert nb.eta_right == pytest.approx(1 - d_right / 45)
        assert {nb.left, nb.right} <= set(plan.principal + plan.key)


def test_32_view_ring_has_the_papers_weights():
    plan = plan_views(ring_azimuths(32))
    weights = sorted({(n.eta_left, n.eta_right) for n in plan.neighbours.values()})
    assert weights == [(0.25, 0.75), (0.5, 0.5), (0.75, 0.25)]
    assert plan.side(plan.principal[1]) == "left" and plan.side(plan.key[3]) == "right front"


def test_plan_refuses_a_ring_without_the_anchor_views():
    with pytest.raises(ConfigError, match="no view at azimuth.*ring_size 16, 32 or 64"):
        plan_views(ring_azimuths(12))


def test_closure_adds_the_views_a_view_depends_on():
    plan = plan_views(ring_azimuths(32))
    view = plan.intermediate[0]
    nb = plan.neighbours[view]
    needed = set(plan.closure([view]))
    assert {view, nb.left, nb.right} <= needed
    for ref in (nb.left, nb.right):
        if ref in plan.key_reference:
            assert plan.key_reference[ref] in needed


# ------------------------------------------------------------------ the processors


@pytest.fixture()
def layer():
    """One self-attention layer with a FaceID LoRA that is not zero (so it matters)."""
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8)
    base = FaceIDLoRAAttnProcessor(16, None, rank=4)
    for lora in (base.to_q_lora, base.to_k_lora, base.to_v_lora, base.to_out_lora):
        torch.nn.init.normal_(lora.up.weight, std=0.3)
    attn.set_processor(base)
    return attn, base


def _by_hand(attn, base, x, context):
    """softmax(Q K^T / sqrt(d)) V per head, then the output projection, all explicit."""
    q = attn.to_q(x) + base.to_q_lora(x)
    k = attn.to_k(context) + base.to_k_lora(context)
    v = attn.to_v(context) + base.to_v_lora(context)
    heads = attn.heads

    def split(t):
        return t.view(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)

    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
    return out  # before the output projection


def _project_out(attn, base, out):
    return attn.to_out[0](out) + base.to_out_lora(out)


def _state(views_tokens, plan, lambda_self=0.55):
    """A state whose store holds ``views_tokens`` {view: [N, C]} for branch 0."""
    state = VCRState(plan, lambda_self)
    state.store["layer"] = {(v, 0): t for v, t in views_tokens.items()}
    return state


def test_key_view_attends_over_its_tokens_and_the_principal_view(layer):
    attn, base = layer
    plan = plan_views(ring_azimuths(16))
    key = plan.key[0]
    principal = plan.key_reference[key]
    x, ref = torch.randn(1, 10, 16), torch.randn(10, 16)
    state = _state({principal: ref}, plan)
    state.begin("key", [key], branches=1)
    got = VCRAttnProcessor("layer", base, state)(attn, x)
    context = torch.cat([x, ref[None]], dim=1)
    expected = _project_out(attn, base, _by_hand(attn, base, x, context))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.store["layer"][(key, 0)], x[0])  # stored for others


def test_intermediate_view_fuses_neighbours_by_weight(layer):
    attn, base = layer
    plan = plan_views(ring_azimuths(32))
    view = plan.intermediate[0]
    nb = plan.neighbours[view]
    x = torch.randn(1, 10, 16)
    left, right = torch.randn(10, 16), torch.randn(10, 16)
    state = _state({nb.left: left, nb.right: right}, plan, lambda_self=0.3)
    state.begin("intermediate", [view], branches=1)
    got = VCRAttnProcessor("layer", base, state)(attn, x)
    own = _by_hand(attn, base, x, x)
    fused = nb.eta_left * _by_hand(attn, base, x, left[None]) + nb.eta_right * _by_hand(
        attn, base, x, right[None]
    )
    expected = _project_out(attn, base, 0.3 * own + 0.7 * fused)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_lambda_self_one_is_plain_self_attention(layer):
    attn, base = layer
    plan = plan_views(ring_azimuths(32))
    view = plan.intermediate[5]
    nb = plan.neighbours[view]
    x = torch.randn(2, 10, 16)  # two CFG branches of one view
    state = VCRState(plan, lambda_self=1.0)
    state.store["layer"] = {(v, b): torch.randn(10, 16) for v in (nb.left, nb.right)
                            for b in (0, 1)}  # fmt: skip
    state.begin("intermediate", [view], branches=2)
    got = VCRAttnProcessor("layer", base, state)(attn, x)
    torch.testing.assert_close(got, base(attn, x), atol=1e-5, rtol=1e-5)


def test_principal_view_is_plain_self_attention_and_stored_per_branch(layer):
    attn, base = layer
    plan = plan_views(ring_azimuths(16))
    x = torch.randn(4, 10, 16)  # 2 views x 2 branches, branch-major
    state = VCRState(plan)
    views = list(plan.principal[:2])
    state.begin("principal", views, branches=2)
    got = VCRAttnProcessor("layer", base, state)(attn, x)
    torch.testing.assert_close(got, base(attn, x), atol=1e-6, rtol=1e-6)
    assert torch.equal(state.store["layer"][(views[1], 1)], x[3])


def test_missing_reference_is_a_clear_error(layer):
    attn, base = layer
    plan = plan_views(ring_azimuths(16))
    state = VCRState(plan)
    state.begin("key", [plan.key[0]], branches=1)
    state.store["layer"] = {}
    with pytest.raises(RuntimeError, match="principal views first"):
        VCRAttnProcessor("layer", base, state)(attn, torch.randn(1, 10, 16))


def test_default_layers_are_the_nine_self_attention_layers_of_up_blocks_1_to_3():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**sd15_unet_config())
    chosen = select_layers(unet, ["up_blocks.1", "up_blocks.2", "up_blocks.3"])
    assert len(chosen) == 9
    assert all(n.startswith("up_blocks.") and n.endswith("attn1.processor") for n in chosen)
    with pytest.raises(ConfigError, match="up_blocks.0.*matches no self-attention layer"):
        select_layers(unet, ["up_blocks.0"])


# ------------------------------------------------------------------ the refiner


@pytest.fixture(scope="module")
def prior():
    return HumanPrior.build(PriorConfig(preset="tiny"))


def _ring(n=16, size=32):
    cfg = HumanCameraConfig(ring_size=n, ring_height=size, ring_width=size)
    return HumanCameraSampler(cfg).refinement_ring()


def test_processors_wrap_only_the_chosen_layers_and_come_back(prior):
    unet = prior.unet
    before = dict(unet.attn_processors)
    state = VCRState(plan_views(ring_azimuths(16)))
    with vcr_processors(unet, state, ["up_blocks.1"]) as chosen:
        inside = unet.attn_processors
        for name, proc in inside.items():
            assert isinstance(proc, VCRAttnProcessor) == (name in chosen)
            if name not in chosen:
                assert proc is before[name]  # untouched, IP-Adapter LoRA included
    assert all(unet.attn_processors[n] is p for n, p in before.items())


def test_identical_views_give_identical_refined_views(prior):
    cameras = _ring(16)
    image = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(1))
    images = image.expand(16, -1, -1, -1).contiguous()
    # same prompt and the posterior mean: identical inputs for every view
    cfg = VCRConfig(view_suffix="", layers=["up_blocks.1"], chunk_size=5, sample_posterior=False)
    refined = ViewConsistentRefiner(prior, cfg, "a person").refine(images, cameras)
    assert sorted(refined) == list(range(16))
    for view in range(1, 16):
        torch.testing.assert_close(refined[view], refined[0], atol=1e-5, rtol=1e-5)
    independent = VCRConfig(view_suffix="", mutual_attention=False, sample_posterior=False)
    alone = ViewConsistentRefiner(prior, independent, "a person").refine(
        images[:1], {"azimuth": torch.zeros(1)}
    )
    torch.testing.assert_close(alone[0], refined[0], atol=1e-4, rtol=1e-4)


def test_refiner_runs_the_last_steps_with_pose_and_identity(prior):
    from gaussianip.body import build_body_model
    from gaussianip.guidance.hds_guidance import body_pose_images

    cameras = _ring(16)
    images = torch.rand(16, 32, 32, 3, generator=torch.Generator().manual_seed(2))
    identity = extract_identity("load/portraits/eileen_collins_nasa.png", StandInFaceAnalyser())
    cfg = VCRConfig(layers=["up_blocks.1"], chunk_size=4)
    refiner = ViewConsistentRefiner(prior, cfg, "a person", identity,
                                    body_pose_images(build_body_model("default")))  # fmt: skip
    assert refiner.timesteps.tolist() == [142, 122, 101, 81, 61, 40, 20, 0]
    steps = []
    refined = refiner.refine(images, cameras, on_step=lambda i, n: steps.append((i, n)))
    assert steps[-1] == (7, 8)
    # per step: 4 principal views (1 call), 4 key views (1 call), 8 intermediate (2 calls)
    assert refiner.unet_calls == 8 * 4
    out = torch.stack([refined[v] for v in range(16)])
    assert out.shape == (16, 32, 32, 3) and out.isfinite().all()
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert prior.adapter.ip_adapter[1].scale == prior.cfg.id_scale  # restored after VCR


def test_partial_refinement_matches_the_full_one(prior):
    cameras = _ring(16)
    images = torch.rand(16, 32, 32, 3, generator=torch.Generator().manual_seed(3))
    cfg = VCRConfig(layers=["up_blocks.1"])
    full = ViewConsistentRefiner(prior, cfg, "a person").refine(images, cameras)
    plan = plan_views(cameras["azimuth"])
    some = [plan.intermediate[2], plan.intermediate[5]]
    part = ViewConsistentRefiner(prior, cfg, "a person").refine(images, cameras, views=some)
    assert sorted(part) == sorted(some)
    for view in some:
        torch.testing.assert_close(part[view], full[view], atol=1e-5, rtol=1e-5)


def test_vcr_config_checks_its_values():
    with pytest.raises(ConfigError, match="lambda_self must be in \\[0, 1\\]"):
        VCRConfig(lambda_self=1.5)
    with pytest.raises(ConfigError, match="refine_steps"):
        VCRConfig(refine_steps=60)
