"""VCR attention processors: mutual attention and distance-weighted fusion across views.

``install_vcr_processors(unet, state, layers)`` wraps the chosen self-attention layers
(attn1 of UNet up-blocks 1-3 by default) in ``VCRAttnProcessor``; every other layer keeps
its processor (and its IP-Adapter LoRA). What a wrapped layer does depends on
``state.mode``, set by the refiner before each UNet call:

- "off": the wrapped processor, unchanged;
- "principal": plain self-attention; its input tokens are stored;
- "key": attention over [own tokens ; stored tokens of the reference principal view];
  its own tokens are stored too;
- "intermediate": ``lambda * Attn(Q, K_i, V_i) + (1 - lambda) * (eta_l * Attn(Q, K_l, V_l)
  + eta_r * Attn(Q, K_r, V_r))`` with K, V of the stored neighbours.

The stored tensors are the layer's *inputs* (after its norms); keys and values of a
stored view are projected with the current layer, LoRA included, exactly as its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gaussianip.errors import ConfigError
from gaussianip.prior.attention import FaceIDLoRAAttnProcessor, _heads, _merge
from gaussianip.refine.view_plan import ViewPlan

DEFAULT_LAYERS = ("up_blocks.1", "up_blocks.2", "up_blocks.3")
MODES = ("off", "principal", "key", "intermediate")


class PlainProjections:
    """The query/key/value/output steps of diffusers' default processor (no LoRA), with
    the interface of ``FaceIDLoRAAttnProcessor`` so VCR wraps either one."""

    def prepare(self, attn: nn.Module, hidden_states: Tensor, temb: Tensor | None):
        return FaceIDLoRAAttnProcessor.prepare(self, attn, hidden_states, temb)  # type: ignore[arg-type]

    def query(self, attn: nn.Module, tokens: Tensor) -> Tensor:
        return attn.to_q(tokens)

    def key_value(self, attn: nn.Module, context: Tensor) -> tuple[Tensor, Tensor]:
        return attn.to_k(context), attn.to_v(context)

    def finish(self, attn: nn.Module, out: Tensor, residual: Tensor, shape) -> Tensor:
        out = attn.to_out[1](attn.to_out[0](out))
        if shape is not None:
            out = out.transpose(-1, -2).reshape(shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@dataclass
class VCRState:
    """What the current UNet call denoises, shared by every VCR processor.

    ``rows[j] = (view, branch)`` for batch row j (branch: the CFG half, 0 or 1), so that a
    row only ever attends to stored tokens of the same branch.
    """

    plan: ViewPlan
    lambda_self: float = 0.55
    mode: str = "off"
    rows: list[tuple[int, int]] = field(default_factory=list)
    store: dict[str, dict[tuple[int, int], Tensor]] = field(default_factory=dict)

    def begin(self, mode: str, views: Sequence[int], branches: int) -> None:
        """Set up a UNet call on ``views`` stacked ``branches`` times (branch-major)."""
        if mode not in MODES:
            raise ValueError(f"Unknown VCR mode '{mode}'; use one of {MODES}.")
        self.mode = mode
        self.rows = [(v, b) for b in range(branches) for v in views]

    def clear(self) -> None:
        """Forget stored tokens (at the start of every denoising step)."""
        self.store.clear()
        self.mode, self.rows = "off", []


def _sdpa(attn: nn.Module, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    out = F.scaled_dot_product_attention(_heads(attn, query), _heads(attn, key),
                                         _heads(attn, value))  # fmt: skip
    return _merge(out).to(query.dtype)


class VCRAttnProcessor:
    """One wrapped self-attention layer (see the module docstring)."""

    def __init__(self, name: str, base: object, state: VCRState) -> None:
        self.name, self.base, self.state = name, base, state
        self.proj = base if isinstance(base, FaceIDLoRAAttnProcessor) else PlainProjections()

    def _stored(self, views: list[int], branches: list[int]) -> Tensor:
        layer = self.state.store[self.name]
        try:
            return torch.stack([layer[(v, b)] for v, b in zip(views, branches, strict=True)])
        except KeyError as err:
            raise RuntimeError(
                f"VCR layer {self.name}: view {err.args[0]} was not denoised before the views "
                "that attend to it (principal views first, then key views)."
            ) from None

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        **kwargs: object,
    ) -> Tensor:
        state = self.state
        if state.mode == "off" or encoder_hidden_states is not None:
            return self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if len(state.rows) != hidden_states.shape[0]:
            raise RuntimeError(
                f"VCR layer {self.name}: batch of {hidden_states.shape[0]} rows but the "
                f"state describes {len(state.rows)}; call state.begin() before the UNet."
            )
        residual = hidden_states
        tokens, shape = self.proj.prepare(attn, hidden_states, temb)  # [B, N, C]
        views = [v for v, _ in state.rows]
        branches = [b for _, b in state.rows]
        plan = state.plan
        if state.mode in ("principal", "key"):
            layer = state.store.setdefault(self.name, {})
            for row, key in enumerate(state.rows):
                layer[key] = tokens[row]
        query = self.proj.query(attn, tokens)

        if state.mode == "principal":
            out = _sdpa(attn, query, *self.proj.key_value(attn, tokens))
        elif state.mode == "key":
            reference = self._stored([plan.key_reference[v] for v in views], branches)
            context = torch.cat([tokens, reference], dim=1)  # [B, 2N, C]
            out = _sdpa(attn, query, *self.proj.key_value(attn, context))
        else:  # intermediate
            left = self._stored([plan.neighbours[v].left for v in views], branches)
            right = self._stored([plan.neighbours[v].right for v in views], branches)
            eta_l = query.new_tensor([plan.neighbours[v].eta_left for v in views]).view(-1, 1, 1)
            eta_r = 1.0 - eta_l
            own = _sdpa(attn, query, *self.proj.key_value(attn, tokens))
            fused = eta_l * _sdpa(attn, query, *self.proj.key_value(attn, left)) + eta_r * _sdpa(
                attn, query, *self.proj.key_value(attn, right)
            )
            out = state.lambda_self * own + (1.0 - state.lambda_self) * fused
        return self.proj.finish(attn, out, residual, shape)


def select_layers(unet: nn.Module, layers: Sequence[str]) -> list[str]:
    """Names of the self-attention processors (attn1) under the block prefixes ``layers``."""
    names = [n for n in unet.attn_processors if n.endswith("attn1.processor")]
    chosen = [n for n in names if any(n.startswith(prefix + ".") for prefix in layers)]
    unmatched = [p for p in layers if not any(n.startswith(p + ".") for n in names)]
    if unmatched or not chosen:
        blocks = sorted({n.split(".attentions")[0] for n in names})
        raise ConfigError(
            f"system.vcr.layers {list(layers)}: {unmatched or 'nothing'} matches no "
            f"self-attention layer of this UNet; its blocks with attention are {blocks}."
        )
    return chosen


@contextmanager
def vcr_processors(
    unet: nn.Module, state: VCRState, layers: Sequence[str] = DEFAULT_LAYERS
) -> Iterator[list[str]]:
    """Wrap the chosen layers while the block runs; the original processors come back
    afterwards (also on errors). Yields the wrapped layer names."""
    original = dict(unet.attn_processors)
    chosen = select_layers(unet, layers)
    wrapped = {n: (VCRAttnProcessor(n, p, state) if n in chosen else p)
               for n, p in original.items()}  # fmt: skip
    unet.set_attn_processor(wrapped)
    try:
        yield chosen
    finally:
        unet.set_attn_processor(original)
        state.clear()
