"""Time the stage-1 step's frozen networks alone, switch by switch (GPU only).

The full-size random-weight prior (SD 1.5 UNet, OpenPose ControlNet, VAE) at the shapes of a
stage-1 pass of ``gaussianip.yaml``: UNet + ControlNet on 3 condition rows a view, the VAE
encoder forward and backward on 512-px renders. For each variant: the first call's seconds
(compilation, with an empty inductor cache for a variant's new graphs) and the device ms a
call after warm-up; for FP8, the largest difference of its noise prediction from fp16's.

    python3 scripts/bench_networks.py [--variants eager,compile,...] > networks.jsonl

Variants: eager, compile (UNet, ControlNet, VAE each compiled alone), rows12 (one pass of
4 views), channels_last, fp8 (torchao float8, one scale a tensor, on the transformer blocks' linear
layers), reduce_overhead (CUDA graphs of torch.compile), graphs (our CUDA graphs,
prior/cuda_graphs.py, of the eager networks) and graphs_compiled (of the compiled ones).
Each prints a JSON line as it ends.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gaussianip.prior.cuda_graphs import GraphedCall
from gaussianip.prior.human_prior import HumanPrior, PriorConfig, VAEMoments

VIEWS_PER_PASS = 2  # gaussianip.yaml's system.guidance.micro_batch
ROWS = 3  # positive, negative and null conditions


def timed(fn: Callable[[], object], warmup: int = 3, iters: int = 20) -> dict[str, float]:
    """First call's seconds (compilation) and the mean device ms of a call after warm-up."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return {"first_call_s": round(first, 2), "ms": round(start.elapsed_time(end) / iters, 2)}


def unet_inputs(prior: HumanPrior, rows: int) -> dict[str, torch.Tensor]:
    g = torch.Generator(device="cuda").manual_seed(0)
    d, dt = prior.device, prior.dtype
    return {
        "latents": torch.randn(rows, 4, 64, 64, generator=g, device=d).to(dt),
        "t": torch.randint(20, 800, (rows,), generator=g, device=d),
        "context": torch.randn(rows, 81, 768, generator=g, device=d).to(dt),  # 77 text + 4 ID
        "pose": torch.rand(rows, 3, 512, 512, generator=g, device=d).to(dt),
    }


def unet_call(unet, controlnet, x: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """``HumanPrior.predict_noise``'s two calls, as one closure."""

    @torch.no_grad()
    def call() -> torch.Tensor:
        down, mid = controlnet(
            x["latents"],
            x["t"],
            encoder_hidden_states=x["context"],
            controlnet_cond=x["pose"],
            conditioning_scale=1.0,
            return_dict=False,
        )
        return unet(
            x["latents"],
            x["t"],
            encoder_hidden_states=x["context"],
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample

    return call


def vae_call(moments: torch.nn.Module, views: int, prior: HumanPrior) -> Callable[[], None]:
    """The encoder's forward and backward on 1024-px renders resized to 512, the tensors
    laid out as ``HumanPrior.encode_rgb`` makes them (so the compiled graph is the run's)."""
    rgb = torch.rand(views, 1024, 1024, 3, device=prior.device, requires_grad=True)

    def call() -> None:
        rgb.grad = None
        x = F.interpolate(rgb.permute(0, 3, 1, 2), (512, 512), mode="bilinear", align_corners=False)
        moments((x * 2 - 1).to(prior.dtype)).float().square().mean().backward()

    return call


def compile_fn(module: torch.nn.Module, mode: str = "default") -> torch.nn.Module:
    options = {"dynamic": False} if mode == "default" else {"dynamic": False, "mode": mode}
    return torch.compile(module, **options)  # type: ignore[return-value]


def emit(name: str, values: dict) -> None:
    print(json.dumps({"variant": name, **values}), flush=True)


def guarded(name: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception as err:  # report and go on to the next variant
        emit(name, {"error": f"{type(err).__name__}: {err}"[:2000]})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="eager,compile,rows12,fp8,channels_last")
    args = p.parse_args()
    variants = args.variants.split(",")
    prior = HumanPrior.build(PriorConfig(preset="random"), "cuda")
    if prior._lora_fusion is not None:
        prior._lora_fusion.fuse()  # as on the distillation path
    unet, cn = prior.unet, prior.controlnet
    rows = VIEWS_PER_PASS * ROWS
    x6, x12 = unet_inputs(prior, rows), unet_inputs(prior, 2 * rows)
    reference = unet_call(unet, cn, x6)().float()
    emit(
        "setup",
        {
            "device": torch.cuda.get_device_name(),
            "torch": torch.__version__,
            "rows": rows,
            "allocated_gib": round(torch.cuda.memory_allocated() / 2**30, 2),
        },
    )

    def eager() -> None:
        emit(
            "eager",
            {
                "unet_controlnet_rows6": timed(unet_call(unet, cn, x6)),
                "unet_controlnet_rows12": timed(unet_call(unet, cn, x12)),
                "vae_fwd_bwd_views2": timed(vae_call(VAEMoments(prior.vae), 2, prior)),
                "vae_fwd_bwd_views4": timed(vae_call(VAEMoments(prior.vae), 4, prior)),
            },
        )

    def compiled() -> None:
        torch._dynamo.reset()
        ccn, cunet = compile_fn(cn), compile_fn(unet)
        out: dict[str, object] = {}
        cvae = compile_fn(VAEMoments(prior.vae))
        out["vae_fwd_bwd_views2"] = timed(vae_call(cvae, 2, prior))
        emit("compile_vae", out)
        out["controlnet_compile_s"] = timed(unet_call(unet, ccn, x6), 0, 1)["first_call_s"]
        out["controlnet_only_rows6"] = timed(unet_call(unet, ccn, x6))
        out["unet_compile_s"] = timed(unet_call(cunet, ccn, x6), 0, 1)["first_call_s"]
        out["unet_controlnet_rows6"] = timed(unet_call(cunet, ccn, x6))
        out["max_abs_diff_vs_eager"] = float(
            (unet_call(cunet, ccn, x6)().float() - reference).abs().max()
        )
        out["reference_abs_max"] = float(reference.abs().max())
        emit("compile", out)
        if "rows12" in variants:
            emit(
                "rows12",
                {
                    "unet_controlnet_rows12": timed(unet_call(cunet, ccn, x12)),
                    "vae_fwd_bwd_views4": timed(vae_call(cvae, 4, prior)),
                },
            )

    def channels_last() -> None:
        torch._dynamo.reset()
        for m in (unet, cn):
            m.to(memory_format=torch.channels_last)
        try:
            emit(
                "channels_last",
                {
                    "eager_rows6": timed(unet_call(unet, cn, x6)),
                    "compiled_rows6": timed(unet_call(compile_fn(unet), compile_fn(cn), x6)),
                },
            )
        finally:
            for m in (unet, cn):
                m.to(memory_format=torch.contiguous_format)

    def reduce_overhead() -> None:
        torch._dynamo.reset()
        runit, rcn = compile_fn(unet, "reduce-overhead"), compile_fn(cn, "reduce-overhead")

        def step(x: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
            def call() -> torch.Tensor:
                torch.compiler.cudagraph_mark_step_begin()  # as HumanPrior.predict_noise
                return unet_call(runit, rcn, x)().float()

            return call

        out: dict[str, object] = {"compiled_rows6": timed(step(x6))}
        out["max_abs_diff_vs_eager"] = float((step(x6)() - reference).abs().max())
        if "rows12" in variants:
            out["compiled_rows12"] = timed(step(x12))
        emit("reduce_overhead", out)

    def graphed(unet_: torch.nn.Module, cn_: torch.nn.Module, name: str) -> None:
        """``system.prior.cuda_graphs``: the two calls replayed as one graph a shape."""
        replay = GraphedCall(lambda *a: unet_call(unet_, cn_, dict(zip(x6, a, strict=True)))())

        def call(x: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
            return lambda: replay(*x.values())

        out: dict[str, object] = {"rows6": timed(call(x6)), "rows12": timed(call(x12))}
        out["max_abs_diff_vs_eager"] = float((call(x6)().float() - reference).abs().max())
        emit(name, out)

    def graphs() -> None:
        graphed(unet, cn, "graphs")

    def graphs_compiled() -> None:
        torch._dynamo.reset()
        graphed(compile_fn(unet), compile_fn(cn), "graphs_compiled")

    def fp8() -> None:
        torch._dynamo.reset()
        from torchao.quantization import (
            Float8DynamicActivationFloat8WeightConfig,
            PerTensor,
            quantize_,
        )

        def in_transformer(module: torch.nn.Module, name: str) -> bool:
            return isinstance(module, torch.nn.Linear) and "transformer_blocks" in name

        qunet, qcn = copy.deepcopy(unet), copy.deepcopy(cn)
        for m in (qunet, qcn):
            quantize_(
                m,
                Float8DynamicActivationFloat8WeightConfig(granularity=PerTensor()),
                filter_fn=in_transformer,
            )
        cqunet, cqcn = compile_fn(qunet), compile_fn(qcn)
        out = {"compiled_rows6": timed(unet_call(cqunet, cqcn, x6))}
        diff = unet_call(cqunet, cqcn, x6)().float() - reference
        out["max_abs_diff_vs_fp16"] = float(diff.abs().max())
        out["rel_l2_diff_vs_fp16"] = float(diff.norm() / reference.norm())
        out["eager_rows6"] = timed(unet_call(qunet, qcn, x6), 1, 5)
        emit("fp8", out)

    order = (("eager", eager), ("compile", compiled), ("fp8", fp8),
             ("channels_last", channels_last), ("reduce_overhead", reduce_overhead),
             ("graphs", graphs), ("graphs_compiled", graphs_compiled))  # fmt: skip
    for name, fn in order:
        if name in variants:
            guarded(name, fn)


if __name__ == "__main__":
    main()
