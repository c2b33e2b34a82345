"""``system.prior.cuda_graphs``: the distillation step's UNet + ControlNet replayed as CUDA
graphs (prior/cuda_graphs.py) give the plain path's noise prediction. The replay needs a
GPU: those tests run on the device machine (`scripts/gpu_perf.sh graphtests`) and are
skipped in CI; the config checks and the CPU fallback run everywhere."""

import pytest
import torch

from gaussianip.errors import ConfigError
from gaussianip.prior.cuda_graphs import GraphedCall, signature
from gaussianip.prior.human_prior import HumanPrior, PriorConfig

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")


def test_cuda_graphs_and_reduce_overhead_are_refused_together():
    with pytest.raises(ConfigError, match="cuda_graphs=true and compile_mode=reduce-overhead"):
        PriorConfig(preset="tiny", cuda_graphs=True, compile=True, compile_mode="reduce-overhead")


def test_on_the_cpu_the_switch_keeps_the_plain_path():
    """As channels_last and cudnn_benchmark: a CUDA switch that changes nothing on the CPU."""
    plain = HumanPrior.build(PriorConfig(preset="tiny"))
    graphed = HumanPrior.build(PriorConfig(preset="tiny", cuda_graphs=True))
    assert graphed._graphed_noise is None
    gen = torch.Generator().manual_seed(0)
    latents, t = torch.randn(2, 4, 8, 8, generator=gen), torch.tensor([900, 30])
    context = torch.randn(2, 81, plain.unet.config.cross_attention_dim, generator=gen)
    pose = torch.rand(2, 3, 64, 64, generator=gen)
    expected = plain.predict_noise(latents, t, context, pose, fast=True)
    got = graphed.predict_noise(latents, t, context, pose, fast=True)
    torch.testing.assert_close(got, expected)


def test_a_signature_names_shapes_dtypes_and_absent_arguments():
    a = torch.zeros(2, 3)
    assert signature((a, None)) == (((2, 3), torch.float32, torch.device("cpu")), None)
    assert signature((a,)) != signature((a.double(),)) != signature((torch.zeros(3, 2),))


def test_a_cpu_argument_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="must be a CUDA tensor"):
        GraphedCall(lambda x: x * 2)(torch.ones(2))


@cuda
def test_replays_compute_each_call_on_its_own_arguments():
    """Not the captured values: new arguments are copied in before each replay, and the
    returned output is the caller's own (a later replay does not overwrite it)."""
    graphed = GraphedCall(lambda x, y: torch.sin(x) * 2 + (0 if y is None else y))
    x1, x2 = torch.randn(64, device="cuda"), torch.randn(64, device="cuda")
    y = torch.randn(64, device="cuda")
    first = graphed(x1, y)
    second = graphed(x2, y)
    torch.testing.assert_close(first, torch.sin(x1) * 2 + y)
    torch.testing.assert_close(second, torch.sin(x2) * 2 + y)
    assert graphed.num_graphs == 1
    torch.testing.assert_close(graphed(x1, None), torch.sin(x1) * 2)  # another signature
    torch.testing.assert_close(graphed(x1[:32], y[:32]), torch.sin(x1[:32]) * 2 + y[:32])
    assert graphed.num_graphs == 3
    graphed.reset()
    assert graphed.num_graphs == 0


@cuda
@pytest.mark.parametrize("with_pose", [True, False])
def test_graphed_noise_prediction_matches_the_plain_one(with_pose):
    """The tiny prior on the GPU (fp16): the replayed UNet + ControlNet give the plain fast
    path's prediction for two different inputs of the same shape (so a replay is not the
    captured call's output), and after ``release_fast_path`` the graphs are gone."""
    plain = HumanPrior.build(PriorConfig(preset="tiny"), "cuda")
    graphed = HumanPrior.build(PriorConfig(preset="tiny", cuda_graphs=True), "cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    dim = plain.unet.config.cross_attention_dim
    for t in (torch.tensor([900, 30], device="cuda"), torch.tensor([10, 500], device="cuda")):
        latents = torch.randn(2, 4, 8, 8, generator=gen, device="cuda").half()
        context = torch.randn(2, 81, dim, generator=gen, device="cuda").half()
        pose = torch.rand(2, 3, 64, 64, generator=gen, device="cuda") if with_pose else None
        expected = plain.predict_noise(latents, t, context, pose, fast=True)
        got = graphed.predict_noise(latents, t, context, pose, fast=True)
        # the same kernels, replayed: equal up to fp16 rounding of reordered reductions
        torch.testing.assert_close(got, expected, atol=2e-3, rtol=2e-3)
    assert graphed._graphed_noise.num_graphs == 1
    graphed.release_fast_path()
    assert graphed._graphed_noise.num_graphs == 0
