"""Binding Gaussians to the body: skinning weights from the nearest surface point.

Each Gaussian takes the barycentric blend of the vertex weights of the closest point on
the body mesh, however far it is (loose clothing and hair follow their nearest surface
point). No Gaussian is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from gaussianip.errors import BodyModelError

TOP_K = 8  # joints kept per Gaussian: 3 vertices x anny's 4 or SMPL-X's few, renormalised
_NEAR_VERTICES = 4  # triangles around this many nearest vertices are searched
_CHUNK = 65_536


@dataclass
class Binding:
    """Per-Gaussian skinning: ``joint_indices`` [N, K] long, ``joint_weights`` [N, K]
    float32 (rows sum to 1; padding entries have weight 0)."""

    joint_indices: Tensor
    joint_weights: Tensor

    @property
    def num_gaussians(self) -> int:
        return self.joint_indices.shape[0]

    def to(self, device: torch.device | str) -> Binding:
        return Binding(self.joint_indices.to(device), self.joint_weights.to(device))

    def dense(self, num_joints: int) -> Tensor:
        """[N, J] weights."""
        out = torch.zeros(self.num_gaussians, num_joints, dtype=self.joint_weights.dtype,
                          device=self.joint_weights.device)  # fmt: skip
        return out.scatter_add_(1, self.joint_indices, self.joint_weights)


def closest_points_on_triangles(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """Barycentric coordinates [..., 3] of the point of triangle (a, b, c) closest to
    ``p``; all inputs [..., 3] (Ericson, Real-Time Collision Detection, 5.1.5)."""

    def dot(u: Tensor, v: Tensor) -> Tensor:
        return (u * v).sum(-1)

    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp = p - b
    d3, d4 = dot(ab, bp), dot(ac, bp)
    cp = p - c
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    eps = 1e-20

    def bary(u: Tensor, v: Tensor, w: Tensor) -> Tensor:
        return torch.stack([u, v, w], -1)

    one, zero = torch.ones_like(d1), torch.zeros_like(d1)
    # Interior first, then overwrite by region (the later the test, the higher priority).
    denom = (va + vb + vc).abs().clamp(min=eps) * torch.sign(va + vb + vc + eps)
    v, w = vb / denom, vc / denom
    out = bary(1 - v - w, v, w)
    t_bc = ((d4 - d3) / ((d4 - d3) + (d5 - d6)).clamp(min=eps)).clamp(0, 1)
    out = torch.where(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0))[..., None],
                      bary(zero, 1 - t_bc, t_bc), out)  # fmt: skip
    t_ac = (d2 / (d2 - d6).clamp(min=eps)).clamp(0, 1)
    out = torch.where(
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0))[..., None], bary(1 - t_ac, zero, t_ac), out
    )
    t_ab = (d1 / (d1 - d3).clamp(min=eps)).clamp(0, 1)
    out = torch.where(
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0))[..., None], bary(1 - t_ab, t_ab, zero), out
    )
    out = torch.where(((d6 >= 0) & (d5 <= d6))[..., None], bary(zero, zero, one), out)
    out = torch.where(((d3 >= 0) & (d4 <= d3))[..., None], bary(zero, one, zero), out)
    out = torch.where(((d1 <= 0) & (d2 <= 0))[..., None], bary(one, zero, zero), out)
    return out


def _vertex_faces(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """[V, D] the triangles around each vertex, padded with -1."""
    flat = faces.reshape(-1)
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=num_vertices)
    out = np.full((num_vertices, max(int(counts.max()), 1)), -1, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(flat)) - np.repeat(starts, counts)
    out[flat[order], rank] = order // 3
    return out


def nearest_surface_points(
    points: Tensor, vertices: Tensor, faces: Tensor
) -> tuple[Tensor, Tensor]:
    """For points [N, 3]: the nearest triangle [N] and the barycentric coordinates [N, 3]
    of the closest point on it. The search covers the triangles around each point's
    nearest vertices, which holds the closest triangle on a body-like mesh."""
    verts = vertices.detach().cpu().float()
    tris = faces.detach().cpu().long()
    vf = torch.from_numpy(_vertex_faces(tris.numpy(), verts.shape[0]))
    tree = cKDTree(verts.numpy())
    k = min(_NEAR_VERTICES, verts.shape[0])
    face_out, bary_out = [], []
    for chunk in points.detach().cpu().float().split(_CHUNK):
        _, near = tree.query(chunk.numpy(), k=k)
        near = torch.from_numpy(near.reshape(len(chunk), k))
        cand = vf[near].reshape(len(chunk), -1)  # [n, k * D], -1 = none
        valid = cand >= 0
        cand = cand.clamp(min=0)
        a, b, c = (verts[tris[cand, i]] for i in range(3))
        p = chunk[:, None, :].expand_as(a)
        bary = closest_points_on_triangles(p, a, b, c)
        closest = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
        dist = (closest - p).norm(dim=-1).masked_fill(~valid, float("inf"))
        best = dist.argmin(dim=1)
        face_out.append(cand.gather(1, best[:, None])[:, 0])
        bary_out.append(bary.gather(1, best[:, None, None].expand(-1, 1, 3))[:, 0])
    return torch.cat(face_out), torch.cat(bary_out).float()


def bind_gaussians(
    means: Tensor, vertices: Tensor, faces: Tensor, skin_weights: Tensor, top_k: int = TOP_K
) -> Binding:
    """Skinning weights for Gaussians at ``means`` [N, 3] from a body mesh (``vertices``
    [V, 3], ``faces`` [F, 3]) with per-vertex weights ``skin_weights`` [V, J]: the
    barycentric blend at the nearest surface point, its ``top_k`` largest kept."""
    if skin_weights is None or skin_weights.shape[0] != vertices.shape[0]:
        raise BodyModelError("The body has no skinning weights for its vertices; rebuild "
                             "the default body (scripts/build_default_body.py).")  # fmt: skip
    face, bary = nearest_surface_points(means, vertices, faces)
    weights = skin_weights.detach().cpu().float()
    tris = faces.detach().cpu().long()[face]  # [N, 3]
    k = min(top_k, weights.shape[1])
    idx_out, w_out = [], []
    for t, b in zip(tris.split(_CHUNK), bary.split(_CHUNK), strict=True):
        blended = (weights[t] * b[..., None]).sum(1)  # [n, J]
        w, i = blended.topk(k, dim=1)
        w = w.clamp(min=0)
        w = w / w.sum(1, keepdim=True).clamp(min=1e-12)
        idx_out.append(torch.where(w > 0, i, torch.zeros_like(i)))
        w_out.append(w)
    return Binding(torch.cat(idx_out), torch.cat(w_out))
