"""CUDA graphs for the distillation step's frozen noise prediction (UNet + ControlNet).

At 2 views a pass the UNet and ControlNet are hundreds of small kernels that the host
launches more slowly than the GPU runs them (BENCHMARKS.md, round 3): the GPU waits. A CUDA
graph records one call's kernels once and replays them with a single launch. Before each
replay the arguments are copied into the graph's own input tensors; after it the output
is cloned out, so callers see an ordinary function.

Unlike torch.compile's ``mode="reduce-overhead"`` this wraps any callable, eager or
compiled in the default mode (whose kernels inductor's cache keeps between runs), and a
capture takes about 0.25 s at the first call of each input signature.

The callable must be a pure function of its tensor arguments and of state that is only
ever changed in place (the frozen weights; the FaceID LoRA is folded in with ``copy_``),
with no host synchronisation inside, run under ``torch.no_grad()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

# A signature: (shape, dtype, device) of each argument, None for an absent one.
Signature = tuple[tuple[tuple[int, ...], torch.dtype, torch.device] | None, ...]


def signature(args: tuple[Tensor | None, ...]) -> Signature:
    return tuple(None if a is None else (tuple(a.shape), a.dtype, a.device) for a in args)


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[Tensor | None, ...]  # the graph reads these...
    output: Tensor  # ...and writes this, on every replay


class GraphedCall:
    """``fn(*args) -> Tensor`` replayed as one CUDA graph per argument signature.

    Args:
        fn: the function; its arguments are CUDA tensors (or None) and it returns a tensor.
        warmup_calls: eager calls on a side stream before a capture (cuDNN and cuBLAS pick
            their algorithms, torch.compile compiles, lazy state settles), as PyTorch's
            CUDA-graph recipe asks.

    All graphs share one memory pool: replays never overlap and each graph's inputs and
    output stay referenced here, so one graph's scratch memory can serve the others.
    """

    def __init__(self, fn: Callable[..., Tensor], warmup_calls: int = 2) -> None:
        self.fn, self.warmup_calls = fn, warmup_calls
        self._graphs: dict[Signature, _Captured] = {}
        self._pool: tuple[int, int] | None = None

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def __call__(self, *args: Tensor | None) -> Tensor:
        key = signature(args)
        captured = self._graphs.get(key)
        if captured is None:
            captured = self._graphs[key] = self._capture(args)
        for static, arg in zip(captured.inputs, args, strict=True):
            if static is not None:
                static.copy_(arg)
        captured.graph.replay()
        return captured.output.clone()

    def _capture(self, args: tuple[Tensor | None, ...]) -> _Captured:
        if any(a is not None and not a.is_cuda for a in args):
            raise ValueError(
                "GraphedCall replays CUDA graphs: every argument must be a CUDA tensor."
            )
        inputs = tuple(None if a is None else a.detach().clone() for a in args)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_calls):
                self.fn(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            output = self.fn(*inputs)
        return _Captured(graph, inputs, output)

    def reset(self) -> None:
        """Drop every graph; their memory returns to PyTorch's allocator (``empty_cache``
        then hands it back to the device)."""
        self._graphs.clear()
        self._pool = None
