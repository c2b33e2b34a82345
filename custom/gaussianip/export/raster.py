"""Triangle rasterization in PyTorch: which triangle covers each pixel, and where.

Used to find each texel's surface point in a UV atlas (``texture``), and to render a mesh
for checks. Vectorised by triangle bounding boxes: every pixel of a triangle's box is a
candidate, tested with edge functions; batches of triangles keep the candidates bounded.
Pixel centres sit at integer + 0.5 (as in ``gaussianip.cameras``).
"""

from __future__ import annotations

import torch
from torch import Tensor

_CANDIDATES_PER_BATCH = 1 << 22


def rasterize_triangles(
    xy: Tensor, height: int, width: int, depth: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Rasterize triangles with pixel-space corners ``xy`` [F, 3, 2] (x right, y down).

    Args:
        xy: corners in pixels; a pixel belongs to a triangle when its centre is inside
            (or on an edge: shared edges may go either way).
        depth: [F, 3] per-corner depth; the nearest triangle wins a pixel (z-buffer).
            Without it, triangles must not overlap (a UV atlas); the last one wins.

    Returns ``face`` [H, W] long (-1: no triangle) and ``bary`` [H, W, 3] float, the
    barycentric coordinates of the pixel centre in its triangle (0 where none).
    """
    xy = xy.float()
    n_pix = height * width
    face = torch.full((n_pix,), -1, dtype=torch.long)
    bary_out = torch.zeros(n_pix, 3)
    zbuf = torch.full((n_pix,), float("inf"))
    lo = xy.amin(1).sub(0.5).ceil().clamp(min=0)  # first pixel index whose centre may be in
    hi = xy.amax(1).sub(0.5).floor()
    hi = torch.stack([hi[:, 0].clamp(max=width - 1), hi[:, 1].clamp(max=height - 1)], -1)
    size = (hi - lo + 1).clamp(min=0).long()  # [F, 2]
    count = size[:, 0] * size[:, 1]
    keep = (count > 0).nonzero()[:, 0]
    # Batches of triangles with a bounded number of candidate pixels.
    cumulative = count[keep].cumsum(0)
    batch_of = torch.div(cumulative - 1, _CANDIDATES_PER_BATCH, rounding_mode="floor")
    for b in batch_of.unique():
        tri = keep[batch_of == b]
        n = count[tri]
        owner = torch.repeat_interleave(tri, n)  # [C]
        start = torch.repeat_interleave(n.cumsum(0) - n, n)
        local = torch.arange(len(owner)) - start
        w = size[owner, 0]
        px = lo[owner, 0].long() + local % w
        py = lo[owner, 1].long() + torch.div(local, w, rounding_mode="floor")
        p = torch.stack([px, py], -1).float() + 0.5
        a, bb, c = xy[owner, 0], xy[owner, 1], xy[owner, 2]
        area = _edge(a, bb, c)
        ok = area.abs() > 1e-12
        safe = torch.where(ok, area, torch.ones_like(area))
        l0 = _edge(bb, c, p) / safe
        l1 = _edge(c, a, p) / safe
        l2 = 1 - l0 - l1
        lam = torch.stack([l0, l1, l2], -1)
        inside = ok & (lam >= -1e-6).all(-1)
        pix = (py * width + px)[inside]
        owner, lam = owner[inside], lam[inside]
        if depth is not None:
            z = (lam * depth[owner].float()).sum(-1)
            zbuf.scatter_reduce_(0, pix, z, reduce="amin")
            win = z <= zbuf[pix]
            pix, owner, lam = pix[win], owner[win], lam[win]
        face[pix] = owner
        bary_out[pix] = lam
    return face.reshape(height, width), bary_out.reshape(height, width, 3)


def _edge(a: Tensor, b: Tensor, p: Tensor) -> Tensor:
    """Twice the signed area of (a, b, p), [...]."""
    return (b[..., 0] - a[..., 0]) * (p[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        p[..., 0] - a[..., 0]
    )
