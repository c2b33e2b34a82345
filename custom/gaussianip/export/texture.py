"""UV atlas and texture baked from the ring renders; vertex colours the same way.

- ``uv_atlas``: xatlas cuts the surface into charts and packs them into a square atlas of
  ``size`` texels (2 texels of padding between charts); vertices on a seam are split.
- ``project_colours``: the colour of surface points (texel centres, vertices) from the
  ring views that see them: each point is projected into every view, kept where the
  view's depth there agrees with the point's (visibility) and the surface faces the
  camera, and the views' colours are averaged with the weight ``alpha * cos^2`` (cos: the
  angle between the surface normal and the direction to the camera), so grazing views,
  whose pixels smear across the surface, count little.
- ``bake_texture``: every texel's surface point (``raster.rasterize_triangles`` in UV
  space; on a grid of at most ``BAKE_MAX`` texels a side, scaled up to the texture size),
  coloured by ``project_colours``; points no view saw take the colour of the
  nearest point a view saw; then the charts' colours bleed into the empty texels around
  them, so bilinear filtering and mip-maps show no dark seams.

Texture rows run top to bottom: texel row r holds v = (r + 0.5) / size, glTF's
convention (OBJ's v runs upwards: ``obj`` writes 1 - v).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree
from torch import Tensor

from gaussianip.cameras import project_points
from gaussianip.export.mesh import RingRenders, SurfaceMesh
from gaussianip.export.raster import rasterize_triangles

_POINTS_PER_CHUNK = 1 << 18
# Texel colours are computed on a grid of at most this many texels a side and scaled up
# to the texture size: the ring renders (384-512 px around the whole avatar) hold less
# detail than a 1024 px atlas, and the projection costs time per texel (4x at 2048).
BAKE_MAX = 1024
MIN_COS = 0.15  # views seeing the surface at more than ~81 degrees are not used


@dataclass
class TexturedMesh:
    """A mesh ready to write: ``vertices`` [V, 3] float32, ``normals`` [V, 3], ``uvs``
    [V, 2] in [0, 1] (v down, glTF's), ``colours`` [V, 3] float32 in [0, 1] (vertex
    colours), ``faces`` [F, 3] int32, ``texture`` [S, S, 3] uint8; ``source`` [V] int64:
    the vertex of the untextured mesh each vertex is a copy of (seams split vertices)."""

    vertices: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    colours: np.ndarray
    faces: np.ndarray
    texture: np.ndarray
    source: np.ndarray

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])


def uv_atlas(
    mesh: SurfaceMesh, size: int, padding: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas's chart cutting and packing for a ``size`` x ``size`` texture, ``padding``
    texels between charts.

    Returns ``source`` [V'] (the original vertex of each new vertex), ``faces`` [F, 3]
    (into the new vertices) and ``uvs`` [V', 2] in [0, 1]."""
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(mesh.vertices, mesh.faces, mesh.normals)
    pack = xatlas.PackOptions()
    pack.resolution = size
    pack.padding = padding
    pack.bilinear = True
    chart = xatlas.ChartOptions()
    atlas.generate(chart, pack)
    source, faces, uvs = atlas[0]
    return source.astype(np.int64), faces.astype(np.int32), uvs.astype(np.float32)


def project_colours(
    points: Tensor, normals: Tensor, renders: RingRenders, depth_tolerance: float
) -> tuple[Tensor, Tensor]:
    """Colours [P, 3] of surface ``points`` [P, 3] with unit ``normals`` [P, 3] from the
    ring views that see them (see the module docstring), and the total weight [P] (0:
    no view saw the point; its colour is then 0)."""
    rgb = renders.rgb.permute(0, 3, 1, 2)  # [V, 3, H, W]
    guide = torch.stack([renders.alpha, renders.depth], 1)  # [V, 2, H, W]
    size = renders.rgb.shape[1]
    campos = torch.linalg.inv(renders.viewmats)[:, :3, 3]  # [V, 3]
    colour_out, weight_out = [], []
    for p, n in zip(points.split(_POINTS_PER_CHUNK), normals.split(_POINTS_PER_CHUNK), strict=True):
        total = torch.zeros(len(p), 3)
        weight = torch.zeros(len(p))
        for v in range(renders.num_views):
            to_cam = F.normalize(campos[v] - p, dim=-1)
            cos = (to_cam * n).sum(-1)
            facing = cos > MIN_COS
            if not facing.any():
                continue
            q = p[facing]
            uv, z = project_points(q, renders.viewmats[v : v + 1], renders.Ks[v : v + 1])
            grid = (uv[0] / size * 2 - 1)[None, :, None, :]  # [1, Q, 1, 2], align_corners=False
            alpha_depth = F.grid_sample(guide[v : v + 1], grid, align_corners=False,
                                        mode="nearest")[0, :, :, 0]  # fmt: skip
            colour = F.grid_sample(rgb[v : v + 1], grid, align_corners=False)[0, :, :, 0].T
            alpha, depth = alpha_depth[0], alpha_depth[1]
            seen = (alpha > 0.5) & ((depth - z[0]).abs() < depth_tolerance)
            w = torch.where(seen, alpha * cos[facing] ** 2, 0.0)
            idx = facing.nonzero()[:, 0]
            total.index_add_(0, idx, colour * w[:, None])
            weight.index_add_(0, idx, w)
        colour_out.append(total / weight.clamp(min=1e-12)[:, None])
        weight_out.append(weight)
    return torch.cat(colour_out), torch.cat(weight_out)


def fill_unseen(points: Tensor, colours: Tensor, seen: Tensor) -> Tensor:
    """Colours [P, 3] where the points [P, 3] not ``seen`` [P] take the colour of their
    nearest seen point (grey where nothing was seen)."""
    if seen.all():
        return colours
    if not seen.any():
        return torch.full_like(colours, 0.5)
    tree = cKDTree(points[seen].numpy())
    _, nearest = tree.query(points[~seen].numpy(), k=1)
    out = colours.clone()
    out[~seen] = colours[seen][torch.from_numpy(nearest)]
    return out


def bleed(image: Tensor, filled: Tensor, iterations: int = 16) -> Tensor:
    """Grow the colours of ``image`` [S, S, 3] from the ``filled`` [S, S] texels into
    the empty ones, one texel ring per iteration (the mean of filled neighbours); texels
    still empty after that keep the image's mean colour."""
    img = image.permute(2, 0, 1)[None].clone()
    mask = filled[None, None].float()
    kernel = torch.ones(1, 1, 3, 3)
    for _ in range(iterations):
        if bool(mask.min() > 0):
            break
        count = F.conv2d(mask, kernel, padding=1)
        summed = F.conv2d(img * mask, kernel.expand(3, 1, 3, 3), padding=1, groups=3)
        grow = (mask == 0) & (count > 0)
        img = torch.where(grow, summed / count.clamp(min=1), img)
        mask = torch.where(grow, torch.ones_like(mask), mask)
    out = img[0].permute(1, 2, 0)
    empty = mask[0, 0] == 0
    if empty.any() and filled.any():
        out[empty] = image[filled].mean(0)
    return out


def bake_texture(
    mesh: SurfaceMesh, renders: RingRenders, size: int, depth_tolerance: float
) -> TexturedMesh:
    """UV-map ``mesh`` (``uv_atlas``) and bake a ``size`` px texture and vertex colours
    from ``renders`` (see the module docstring)."""
    bake = min(size, BAKE_MAX)
    # Charts keep 2 bake texels apart, so that scaling up mixes no neighbour's colour.
    source, faces, uvs = uv_atlas(mesh, size, padding=2 * max(1, size // bake))
    vertices = torch.from_numpy(mesh.vertices)
    normals = F.normalize(torch.from_numpy(mesh.normals), dim=-1)
    # Vertex colours.
    vcol, vweight = project_colours(vertices, normals, renders, depth_tolerance)
    vcol = fill_unseen(vertices, vcol, vweight > 0)
    # Texels: their surface points and normals by barycentric interpolation in UV space.
    tri = torch.from_numpy(faces).long()
    uv_px = torch.from_numpy(uvs)[tri] * bake  # [F, 3, 2]
    face, bary = rasterize_triangles(uv_px, bake, bake)
    covered = face >= 0
    f = face[covered]
    b = bary[covered]
    corners = torch.from_numpy(source)[tri[f]]  # [T, 3] original vertex ids
    points = (b[..., None] * vertices[corners]).sum(1)
    point_normals = F.normalize((b[..., None] * normals[corners]).sum(1), dim=-1)
    colours, weight = project_colours(points, point_normals, renders, depth_tolerance)
    seen = weight > 0
    # Unseen texels: the nearest seen texel's colour (or vertex colour if none was seen).
    if seen.any():
        colours = fill_unseen(points, colours, seen)
    else:
        colours = (b[..., None] * vcol[corners]).sum(1)
    image = torch.zeros(bake, bake, 3)
    image[covered] = colours
    image = bleed(image, covered)
    if bake < size:
        image = F.interpolate(image.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                              align_corners=False)[0].permute(1, 2, 0)  # fmt: skip
    texture = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return TexturedMesh(
        vertices=mesh.vertices[source],
        normals=mesh.normals[source],
        uvs=uvs,
        colours=vcol.numpy()[source].astype(np.float32),
        faces=faces,
        texture=texture,
        source=source,
    )
