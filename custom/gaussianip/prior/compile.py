"""``torch.compile`` for the distillation step's frozen networks, whole or by region.

``scope="model"`` compiles each network as one graph (the fastest steps, the longest
compilation: minutes on a fresh machine). ``scope="blocks"`` compiles the repeated blocks
(diffusers' ``ResnetBlock2D``, ``Transformer2DModel``, down/upsamplers) one at a time:
blocks of the same class and shapes share one compiled graph, so far fewer graphs are
built, and the glue between blocks stays eager.

Regional compilation patches the blocks that the refinement also runs (with other shapes
and swapped attention processors). So the compiled forward is only taken inside
``distillation_fast_path()``; every other call of a block runs the eager forward and never
triggers a recompilation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

SCOPES = ("model", "blocks")
NETWORKS = ("vae", "unet", "controlnet")  # the distillation step's frozen networks
MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
# The blocks that repeat inside the SD 1.5 UNet, ControlNet and VAE encoder.
REPEATED_BLOCKS = ("ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D")
# One compiled graph per block class and input shape: the UNet, ControlNet and VAE encoder
# together need a few dozen (torch's default limit, 8 per function, would silently fall
# back to eager for the rest).
RECOMPILE_LIMIT = 64

_fast_path_depth = 0


@contextlib.contextmanager
def distillation_fast_path() -> Iterator[None]:
    """Inside this block, regionally compiled blocks run their compiled forward."""
    global _fast_path_depth
    _fast_path_depth += 1
    try:
        yield
    finally:
        _fast_path_depth -= 1


def inductor_cache_dir() -> str:
    """Where inductor keeps compiled kernels between runs (``TORCHINDUCTOR_CACHE_DIR``)."""
    import os

    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return os.environ.get("TORCHINDUCTOR_CACHE_DIR") or cache_dir()


def _compile_options(backend: str, mode: str) -> dict[str, Any]:
    options: dict[str, Any] = {"backend": backend, "dynamic": False}
    if backend == "inductor" and mode != "default":
        options["mode"] = mode
    return options


def compile_model(module: nn.Module, backend: str = "inductor", mode: str = "default") -> nn.Module:
    """The whole ``module`` as one compiled graph (a wrapper; ``module`` stays eager)."""
    return torch.compile(module, **_compile_options(backend, mode))  # type: ignore[return-value]


def compile_blocks(
    module: nn.Module, backend: str = "inductor", mode: str = "default"
) -> list[str]:
    """Compile the repeated blocks of ``module`` in place, taken only inside
    ``distillation_fast_path()``; returns the names of the patched blocks."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), RECOMPILE_LIMIT))
    patched = []
    for name, block in module.named_modules():
        if type(block).__name__ in REPEATED_BLOCKS and "forward" not in vars(block):
            block.forward = _dispatch(block.forward, torch.compile(block.forward,
                                      **_compile_options(backend, mode)))  # fmt: skip
            patched.append(name)
    return patched


def _dispatch(eager: Callable[..., Any], compiled: Callable[..., Any]) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return (compiled if _fast_path_depth else eager)(*args, **kwargs)

    return forward
