"""Writers of the formats web viewers read, from our pre-activation parameters.

Conventions (the usual source of washed-out or see-through exports): every format stores
the *base colour* ``0.5 + C0 * sh0`` (the SH DC term, not sRGB-converted), and a straight
(not premultiplied) opacity ``sigmoid(opacity)``; scales are ``exp``-ed only where the
format stores linear sizes (``.splat``).

- ``.splat`` (antimatter15's viewer and most web viewers): 32 bytes a Gaussian, position
  float32 x3, scale float32 x3 (linear), RGBA uint8 x4, quaternion uint8 x4 (wxyz,
  ``q / |q| * 128 + 128``), biggest and most opaque first.
- compressed PLY (SuperSplat / PlayCanvas): chunks of 256 Gaussians in Morton order, each
  with float bounds of position, log-scale and colour; per Gaussian four uint32 words
  (position 11-10-11 bits, rotation "smallest three" 2+10+10+10 bits, log-scale 11-10-11,
  RGBA 8-8-8-8) and, for SH degree > 0, the higher bands as uint8.

gsplat 1.5.3's exporter writes the same layouts; we do not use it for these two because
its ``.splat`` colours are truncated (not rounded) to 8 bits, one Python call per
Gaussian, and its compressed PLY divides by zero (NaN bits) where a chunk's bounds are
flat (a last chunk of one Gaussian, or equal scales).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from gsplat.exporter import sort_centers
from torch import Tensor

from gaussianip.gaussians.model import SH_C0
from gaussianip.output_files import writing

CHUNK = 256  # Gaussians per compressed-PLY chunk (SuperSplat's)


def _write_bytes(path: Path, data: bytes) -> Path:
    with writing(path, needed=len(data)) as tmp:
        tmp.write_bytes(data)
    return path


def base_colour(params: dict[str, Tensor]) -> Tensor:
    """[N, 3] base colour ``0.5 + C0 * sh0`` (may leave [0, 1]; writers clamp)."""
    return 0.5 + SH_C0 * params["sh0"].detach().float().reshape(-1, 3)


def _finite(params: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop Gaussians with any NaN / Inf parameter (viewers break on them)."""
    n = params["means"].shape[0]
    keep = torch.ones(n, dtype=torch.bool)
    for value in params.values():
        keep &= torch.isfinite(value.detach().cpu().float().reshape(n, -1)).all(dim=1)
    return {k: v.detach().cpu().float()[keep] for k, v in params.items()}


def splat_bytes(params: dict[str, Tensor]) -> bytes:
    """The ``.splat`` file of ``params`` (see the module docstring)."""
    p = _finite(params)
    scales = torch.exp(p["scales"])
    alpha = torch.sigmoid(p["opacities"].reshape(-1))
    rgba = torch.cat([base_colour(p), alpha[:, None]], dim=1)
    quats = p["quats"] / p["quats"].norm(dim=1, keepdim=True).clamp_min(1e-12)
    # antimatter15's convert.py order: biggest, most opaque first (progressive loading).
    order = torch.argsort(-(p["scales"].sum(dim=1).exp() * alpha), stable=True)
    record = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                       ("rot", "u1", 4)])  # fmt: skip
    out = np.empty(len(order), dtype=record)
    out["position"] = p["means"][order].numpy()
    out["scale"] = scales[order].numpy()
    out["rgba"] = (rgba[order] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    out["rot"] = (quats[order] * 128 + 128).round().clamp(0, 255).to(torch.uint8).numpy()
    return out.tobytes()


def _unorm(value: Tensor, bits: int) -> Tensor:
    top = (1 << bits) - 1
    return (value * top + 0.5).floor().clamp(0, top).to(torch.int64)


def _normalise(value: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """(value - low) / (high - low) per chunk, 0 where a chunk's range is flat."""
    span = high - low
    return torch.where(span > 0, (value - low) / torch.where(span > 0, span, 1.0), 0.0)


def _pack_111011(v: Tensor) -> Tensor:
    return (_unorm(v[..., 0], 11) << 21) | (_unorm(v[..., 1], 10) << 11) | _unorm(v[..., 2], 11)


def _pack_rotation(quats: Tensor) -> Tensor:
    """ "Smallest three": index of the largest |component| of wxyz (2 bits), then the
    other three (sign-fixed so the largest is positive) as 10-bit unorms of c/sqrt2+0.5."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    largest = q.abs().argmax(dim=-1)
    q = q * torch.where(q.gather(-1, largest[..., None]) < 0, -1.0, 1.0)
    others = torch.tensor([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    small = _unorm(q.gather(-1, others) * (math.sqrt(2) * 0.5) + 0.5, 10)
    return (largest << 30) | (small[..., 0] << 20) | (small[..., 1] << 10) | small[..., 2]


def compressed_ply_bytes(params: dict[str, Tensor]) -> bytes:
    """The SuperSplat compressed PLY of ``params`` (see the module docstring)."""
    p = _finite(params)
    n = p["means"].shape[0]
    order = sort_centers(p["means"], torch.arange(n))
    n_chunks = -(-n // CHUNK)
    pad = n_chunks * CHUNK - n  # the last chunk is padded with its own first Gaussian

    def chunked(x: Tensor) -> Tensor:  # [N, C] -> [chunks, 256, C] in Morton order
        x = x[order]
        x = torch.cat([x, x[(n_chunks - 1) * CHUNK :][:1].expand(pad, -1)]) if pad else x
        return x.reshape(n_chunks, CHUNK, -1)

    means, scales = chunked(p["means"]), chunked(p["scales"])
    colours, quats = chunked(base_colour(p)), chunked(p["quats"])
    alpha = chunked(torch.sigmoid(p["opacities"].reshape(-1, 1)))
    bounds: list[Tensor] = []
    packed: list[Tensor] = []
    for value in (means, scales, colours):
        low, high = value.amin(dim=1, keepdim=True), value.amax(dim=1, keepdim=True)
        if value is scales:  # SuperSplat's reader clamps log-scales to [-20, 20]
            low, high = low.clamp(-20, 20), high.clamp(-20, 20)
        bounds += [low, high]
        packed.append(_normalise(value, low, high))
    colour = packed[2]
    rgba = ((_unorm(colour[..., 0], 8) << 24) | (_unorm(colour[..., 1], 8) << 16)
            | (_unorm(colour[..., 2], 8) << 8) | _unorm(alpha[..., 0], 8))  # fmt: skip
    words = torch.stack([_pack_111011(packed[0]), _pack_rotation(quats),
                         _pack_111011(packed[1]), rgba], dim=-1)  # fmt: skip
    chunk_floats = torch.cat(bounds, dim=-1)[:, 0, :]  # [chunks, 18]
    shn = p["shN"].reshape(n, -1, 3).transpose(1, 2).reshape(n, -1)  # channel-major
    header = ["ply", "format binary_little_endian 1.0", f"element chunk {n_chunks}"]
    for name in ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x",
                 "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
                 "min_r", "min_g", "min_b", "max_r", "max_g", "max_b"):  # fmt: skip
        header.append(f"property float {name}")
    header.append(f"element vertex {n}")
    for name in ("packed_position", "packed_rotation", "packed_scale", "packed_color"):
        header.append(f"property uint {name}")
    if shn.shape[1]:
        header.append(f"element sh {n}")
        header += [f"property uchar f_rest_{j}" for j in range(shn.shape[1])]
    header.append("end_header")
    body = [
        ("\n".join(header) + "\n").encode(),
        chunk_floats.numpy().astype("<f4").tobytes(),
        words.reshape(-1, 4)[:n].numpy().astype("<u4").tobytes(),
    ]
    if shn.shape[1]:
        quantised = ((shn[order] / 8 + 0.5) * 256).trunc().clamp(0, 255).to(torch.uint8)
        body.append(quantised.numpy().tobytes())
    return b"".join(body)


def write_splat(path: str | Path, params: dict[str, Tensor]) -> Path:
    return _write_bytes(Path(path), splat_bytes(params))


def write_compressed_ply(path: str | Path, params: dict[str, Tensor]) -> Path:
    return _write_bytes(Path(path), compressed_ply_bytes(params))
