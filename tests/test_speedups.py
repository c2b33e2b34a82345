"""Every speed-up keeps results within a stated bound of the plain path (issue 5)."""

import lpips
import pytest
import torch

from gaussianip.engine.reconstruction import lpips_loss


def _lpips():
    torch.manual_seed(0)
    return lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval().requires_grad_(False)


def _lpips_value_and_gradient(model, shape: tuple[int, ...], seed: int, checkpoint: bool):
    """LPIPS of a random render against a random target, and its gradient on the render."""
    target = torch.rand(*shape, generator=torch.Generator().manual_seed(seed))
    render = torch.rand(*shape, generator=torch.Generator().manual_seed(seed + 1))
    render.requires_grad_(True)
    loss = lpips_loss(model, render, target, checkpoint=checkpoint)
    loss.backward()
    return loss.detach(), render.grad


def test_checkpointed_lpips_has_the_same_value_and_gradient():
    model = _lpips()
    plain, plain_grad = _lpips_value_and_gradient(model, (3, 3, 48, 48), 1, checkpoint=False)
    ckpt, ckpt_grad = _lpips_value_and_gradient(model, (3, 3, 48, 48), 1, checkpoint=True)
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


def _eager_and_fast(eager, fast, t, seed):
    """Latents, noise prediction and render gradient of the same inputs through ``eager``'s
    plain path and ``fast``'s distillation path, checked equal; returns both results and
    the (context, pose) used."""
    gen = torch.Generator().manual_seed(seed)
    rgb = torch.rand(2, 32, 32, 3, generator=gen)
    context = torch.randn(2, 77 + 4, eager.unet.config.cross_attention_dim, generator=gen)
    pose = torch.rand(2, 3, 32, 32, generator=gen)
    results = []
    for prior, use_fast in ((eager, False), (fast, True)):
        image = rgb.clone().requires_grad_(True)
        latents = prior.encode_rgb(image, 32, sample=False, fast=use_fast)
        eps = prior.predict_noise(latents.detach(), t, context, pose, fast=use_fast)
        (latents * eps).sum().backward()
        results.append((latents.detach(), eps, image.grad))
    for plain, compiled in zip(results[0], results[1], strict=True):
        torch.testing.assert_close(compiled, plain, atol=1e-5, rtol=1e-4)
    return results, (context, pose)


@pytest.mark.parametrize("scope", ["model", "blocks"])
def test_compiled_distillation_path_matches_the_eager_one(scope):
    """``prior.compile``: the distillation step's UNet, ControlNet and VAE encoder (with
    its backward) give the eager results, compiled whole or by block. ``aot_eager`` traces
    the same graphs as the GPU's inductor backend without generating kernels, so the test
    stays fast on a CPU."""
    from gaussianip.prior.human_prior import HumanPrior, PriorConfig

    eager = HumanPrior.build(PriorConfig(preset="tiny"))
    fast = HumanPrior.build(PriorConfig(preset="tiny", compile=True, compile_backend="aot_eager",
                                        compile_scope=scope))  # fmt: skip
    t = torch.tensor([500, 20])
    results, (context, pose) = _eager_and_fast(eager, fast, t, seed=4)
    if scope == "model":
        assert fast._fast_unet is not fast.unet  # the compiled module is only on the fast path
        assert not fast.inductor_cuda_graphs  # reduce-overhead is off, and this is the CPU
        # After stage 1 the compiled networks are dropped; the fast path is eager again.
        fast.release_fast_path()
        assert fast._fast_unet is fast.unet and fast._fast_controlnet is fast.controlnet
        eps = fast.predict_noise(results[1][0], t, context, pose, fast=True)
        torch.testing.assert_close(eps, results[0][1], atol=1e-5, rtol=1e-4)
        return
    # By block: the blocks are patched in place, and only the fast path runs them compiled.
    import torch._dynamo as dynamo

    patched = [m for m in fast.unet.modules() if "forward" in vars(m)]
    assert {type(m).__name__ for m in patched} >= {"ResnetBlock2D", "Transformer2DModel"}
    dynamo.reset()  # forget the compiled graphs: an eager call must not build new ones
    counters = dynamo.utils.counters
    counters.clear()
    fast.predict_noise(torch.randn(1, 4, 16, 16), t[:1], context[:1], None, fast=False)
    assert counters["stats"]["calls_captured"] == 0
    fast.predict_noise(torch.randn(1, 4, 16, 16), t[:1], context[:1], None, fast=True)
    assert counters["stats"]["calls_captured"] > 0


def test_compiling_the_vae_alone_keeps_the_unet_eager_and_the_results():
    """``prior.compile_networks=[vae]``: only the VAE encoder (with its checkpointed first
    blocks, ``vae_checkpoint_blocks``) is compiled; the UNet and ControlNet stay eager on the
    fast path, and latents, their input gradient and the noise prediction are unchanged."""
    from torch._dynamo.eval_frame import OptimizedModule

    from gaussianip.prior.human_prior import HumanPrior, PriorConfig

    eager = HumanPrior.build(PriorConfig(preset="tiny"))
    cfg = PriorConfig(preset="tiny", compile=True, compile_backend="aot_eager",
                      compile_networks=["vae"], vae_checkpoint_blocks=1)  # fmt: skip
    fast = HumanPrior.build(cfg)
    assert isinstance(fast._vae_moments, OptimizedModule)
    assert fast._fast_unet is fast.unet and fast._fast_controlnet is fast.controlnet
    _eager_and_fast(eager, fast, torch.tensor([700, 30]), seed=5)


def test_offloaded_encoders_give_the_same_conditions():
    """``prior.offload_encoders`` moves the text/image encoders only on CUDA; on any
    device the conditions equal those of a prior that keeps them in place."""
    from gaussianip.prior.human_prior import HumanPrior, PriorConfig

    kept = HumanPrior.build(PriorConfig(preset="tiny", offload_encoders=False))
    moved = HumanPrior.build(PriorConfig(preset="tiny", offload_encoders=True))
    torch.testing.assert_close(moved.encode_text(["a person"]), kept.encode_text(["a person"]))
    torch.testing.assert_close(moved.encode_identity(None, None), kept.encode_identity(None, None))


def test_plain_vae_attention_gives_the_same_latents_and_gradient():
    """``prior.vae_plain_attention`` swaps only the kernel of the same attention."""
    from gaussianip.prior.human_prior import HumanPrior, PriorConfig

    results = []
    for plain in (False, True):
        prior = HumanPrior.build(PriorConfig(preset="tiny", vae_plain_attention=plain))
        rgb = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(5))
        rgb.requires_grad_(True)
        latents = prior.encode_rgb(rgb, 32, sample=False)
        latents.square().sum().backward()
        results.append((latents.detach(), rgb.grad))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_compiled_lpips_has_the_same_value_and_gradient():
    from gaussianip.engine.reconstruction import ReconstructionConfig, build_lpips

    torch.manual_seed(0)
    eager = build_lpips(ReconstructionConfig(lpips_pretrained=False), "cpu")
    compiled = build_lpips(ReconstructionConfig(lpips_pretrained=False, lpips_compile=True), "cpu")
    compiled._orig_mod.load_state_dict(eager.state_dict())  # the same random backbone
    results = [_lpips_value_and_gradient(model, (2, 3, 32, 32), 6, checkpoint=True)
               for model in (eager, compiled)]  # fmt: skip
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-6, rtol=1e-3)


def test_fused_lora_gives_the_separate_lora_result_and_restores_the_weights():
    """``prior.fuse_lora``: the distillation path with the FaceID LoRA folded into the
    attention weights predicts the noise of the separate-LoRA path (float32: to rounding);
    a refinement call afterwards gets the original weights back bit for bit."""
    from gaussianip.prior.attention import FaceIDLoRAAttnProcessor
    from gaussianip.prior.human_prior import HumanPrior, PriorConfig

    prior = HumanPrior.build(PriorConfig(preset="tiny"))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():  # a trained LoRA: random up weights (they start at zero)
        for proc in prior.adapter.ip_adapter:
            for lora in (proc.to_q_lora, proc.to_k_lora, proc.to_v_lora, proc.to_out_lora):
                lora.up.weight.copy_(0.2 * torch.randn(lora.up.weight.shape, generator=gen))
    original = {k: v.clone() for k, v in prior.unet.state_dict().items()}
    latents = torch.randn(2, 4, 8, 8, generator=gen)
    t = torch.tensor([700, 30])
    context = torch.randn(2, 77 + 4, prior.unet.config.cross_attention_dim, generator=gen)
    pose = torch.rand(2, 3, 64, 64, generator=gen)

    separate = prior.predict_noise(latents, t, context, pose, fast=False)
    fused = prior.predict_noise(latents, t, context, pose, fast=True)
    assert all(p.lora_fused for p in prior.adapter.ip_adapter
               if isinstance(p, FaceIDLoRAAttnProcessor))  # fmt: skip
    changed = [k for k, v in prior.unet.state_dict().items() if not torch.equal(v, original[k])]
    assert changed and all(k.split(".")[-2] in ("to_q", "to_k", "to_v", "0") for k in changed)
    torch.testing.assert_close(fused, separate, atol=1e-5, rtol=1e-4)

    again = prior.predict_noise(latents, t, context, pose, fast=False)
    assert all(torch.equal(v, original[k]) for k, v in prior.unet.state_dict().items())
    assert torch.equal(again, separate)
    # The LoRA matters here, so the comparison above is not vacuous.
    with torch.no_grad():
        for proc in prior.adapter.ip_adapter:
            proc.lora_scale = 0.0
    without = prior.predict_noise(latents, t, context, pose, fast=False)
    assert (without - separate).abs().max() > 100 * (fused - separate).abs().max()


def test_checkpointed_vae_encoder_gives_the_same_latents_and_gradient():
    """``prior.vae_checkpoint_blocks``: recomputing the first down blocks in the backward
    pass changes neither the latents nor the gradient on the render, and stores less."""
    from gaussianip.prior import tiny
    from gaussianip.prior.human_prior import VAEMoments

    tiny.seeded(0)
    vae = tiny.tiny_vae().eval().requires_grad_(False)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    results, saved = [], []
    for blocks in (0, 2):
        image = x.clone().requires_grad_(True)
        sizes: list[int] = []

        def pack(t, sizes=sizes):
            sizes.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            moments = VAEMoments(vae, blocks)(image)
        (moments * torch.linspace(-1, 1, moments.numel()).view_as(moments)).sum().backward()
        results.append((moments.detach(), image.grad))
        saved.append(sum(sizes))
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], atol=1e-6, rtol=1e-5)
    assert saved[1] < 0.8 * saved[0]
