"""An exact pure-PyTorch version of ``gsplat.rasterization`` (gsplat 1.5.3).

For the CPU (tests, CI, CPU runs) and as the reference that the GPU parity script compares
gsplat with. It mirrors gsplat's classic pinhole pipeline step by step:

1. 3D covariance ``R S S^T R^T`` from the normalised quaternion and the scales;
2. EWA projection with the Jacobian evaluated at the mean clamped to 1.3x the field of
   view, then the 2D covariance dilated by ``eps2d`` (0.3 px);
3. culling: depth outside [near, far], non-positive determinant, opacity < 1/255;
   opacity-aware radii ``ceil(min(3.33, sqrt(2 ln(255 opacity))) * sigma)`` per axis;
   Gaussians entirely off-screen;
4. tiles: a Gaussian touches the 16x16 tiles of its radius rectangle (as gsplat's
   ``isect_tiles``), and only pixels of those tiles see it;
5. per pixel, front to back by depth: ``alpha = min(0.999, o exp(-sigma))``, skipped when
   ``sigma < 0`` or ``alpha < 1/255``; stop before the Gaussian that would bring the
   transmittance to 1e-4 or below; ``color += T alpha c``; background ``+ T bg``.

Gradients come from autograd. ``info["means2d"]`` is the tensor of projected means that the
compositing reads, so after ``info["means2d"].retain_grad()`` its ``.grad`` is the
screen-space gradient that gsplat's densification strategies accumulate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
TRANSMITTANCE_MIN = 1e-4
MAX_ALPHA = 0.999
RADIUS_SIGMAS = 3.33
RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
TILES_PER_GROUP = 32


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [N, 3, 3] from quaternions [N, 4] (wxyz, any norm)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))  # fmt: skip


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Real SH basis [..., (degree + 1)^2] at unit directions [..., 3], up to degree 3, in
    gsplat's order and sign convention."""
    x, y, z = dirs.unbind(-1)
    bases = [torch.full_like(x, 0.2820947917738781)]
    if degree >= 1:
        a = 0.48860251190292
        bases += [-a * y, a * z, -a * x]
    if degree >= 2:
        z2, fc1, fs1 = z * z, x * x - y * y, 2 * x * y
        bases += [
            0.5462742152960395 * fs1,
            -1.092548430592079 * z * y,
            0.9461746957575601 * z2 - 0.3153915652525201,
            -1.092548430592079 * z * x,
            0.5462742152960395 * fc1,
        ]
    if degree >= 3:
        tmp_c = -2.285228997322329 * z2 + 0.4570457994644658
        fc2, fs2 = x * fc1 - y * fs1, x * fs1 + y * fc1
        bases += [
            -0.5900435899266435 * fs2,
            1.445305721320277 * z * fs1,
            tmp_c * y,
            z * (1.865881662950577 * z2 - 1.119528997770346),
            tmp_c * x,
            1.445305721320277 * z * fc1,
            -0.5900435899266435 * fc2,
        ]
    if degree > 3:
        raise ValueError(f"SH degree {degree} is not supported (0..3).")
    return torch.stack(bases, dim=-1)


def eval_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colours [..., 3] = sum_k basis_k(normalised dirs [..., 3]) coeffs[..., k, :]."""
    n = (degree + 1) ** 2
    bases = sh_bases(degree, F.normalize(dirs, dim=-1))
    return (bases[..., None] * coeffs[..., :n, :]).sum(dim=-2)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> dict[str, Tensor]:
    """gsplat's fused projection for C cameras and N Gaussians.

    Returns ``means2d`` [C, N, 2], ``conics`` [C, N, 3] (inverse 2D covariance: a, b, c),
    ``depths`` [C, N], ``radii`` [C, N, 2] (int32, 0 where culled).
    """
    rot = quat_to_rotmat(quats)
    m = rot * scales[:, None, :]
    covars = m @ m.transpose(-1, -2)  # [N, 3, 3]
    R, t = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C, N, 3]
    covars_c = torch.einsum("cij,njk,clk->cnil", R, covars, R)  # [C, N, 3, 3]

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    x, y, z = means_c.unbind(-1)
    # The Jacobian is evaluated at the mean clamped to 1.3x the field of view (as gsplat),
    # so that Gaussians far off-screen do not get huge footprints.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    rz = 1.0 / z
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    zeros = torch.zeros_like(z)
    J = torch.stack(
        [fx * rz, zeros, -fx * tx * rz * rz, zeros, fy * rz, -fy * ty * rz * rz], dim=-1
    ).reshape(z.shape + (2, 3))
    cov2d = J @ covars_c @ J.transpose(-1, -2)  # [C, N, 2, 2]
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    a = cov2d[..., 0, 0] + eps2d
    b = 0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0])
    c = cov2d[..., 1, 1] + eps2d
    det = a * c - b * b
    safe_det = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)

    with torch.no_grad():
        opac = opacities.detach().expand_as(z)
        visible_opac = opac >= ALPHA_THRESHOLD
        extend = torch.sqrt(2.0 * torch.log(opac.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        extend = extend.clamp(max=RADIUS_SIGMAS)
        radius_x = torch.ceil(extend * torch.sqrt(a.detach().clamp(min=0)))
        radius_y = torch.ceil(extend * torch.sqrt(c.detach().clamp(min=0)))
        m2d = means2d.detach()
        valid = (
            (z.detach() >= near_plane)
            & (z.detach() <= far_plane)
            & (det.detach() > 0)
            & visible_opac
            & ((radius_x > 0) | (radius_y > 0))
            & (m2d[..., 0] + radius_x > 0)
            & (m2d[..., 0] - radius_x < width)
            & (m2d[..., 1] + radius_y > 0)
            & (m2d[..., 1] - radius_y < height)
        )
        radii = torch.stack([radius_x, radius_y], dim=-1) * valid[..., None]
    return {"means2d": means2d, "conics": conics, "depths": z, "radii": radii.int()}


def _tile_table(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, tiles_x: int, tiles_y: int
) -> tuple[Tensor, Tensor]:
    """Which Gaussians touch which tile, front to back (gsplat's ``isect_tiles``).

    Returns the ids of the non-empty tiles [T] and a table [T, L] of Gaussian indices per
    tile sorted by depth, padded with -1.
    """
    visible = torch.nonzero((radii > 0).all(dim=-1)).squeeze(1)
    # Front to back; a stable sort keeps index order for equal depths, like gsplat's.
    visible = visible[torch.sort(depths[visible], stable=True).indices]
    center = means2d[visible] / tile_size
    half = radii[visible].float() / tile_size
    limit = torch.tensor([tiles_x, tiles_y], dtype=center.dtype, device=center.device)
    lo = torch.minimum(torch.floor(center - half).clamp(min=0), limit).long()
    hi = torch.minimum(torch.ceil(center + half).clamp(min=0), limit).long()
    size = hi - lo  # tiles covered along x and y
    count = size[:, 0] * size[:, 1]
    owner = torch.repeat_interleave(torch.arange(len(visible), device=count.device), count)
    first = torch.cumsum(count, 0) - count
    k = torch.arange(len(owner), device=count.device) - first[owner]
    tile = (lo[owner, 1] + k // size[owner, 0]) * tiles_x + lo[owner, 0] + k % size[owner, 0]
    # Group by tile; the stable sort keeps the depth order inside each tile.
    tile, order = torch.sort(tile, stable=True)
    gauss = visible[owner[order]]
    tile_ids, per_tile = torch.unique_consecutive(tile, return_counts=True)
    row = torch.repeat_interleave(torch.arange(len(tile_ids), device=tile.device), per_tile)
    col = torch.arange(len(tile), device=tile.device) - (torch.cumsum(per_tile, 0) - per_tile)[row]
    table = torch.full((len(tile_ids), int(per_tile.max()) if len(per_tile) else 0), -1,
                       dtype=torch.long, device=tile.device)  # fmt: skip
    table[row, col] = gauss
    return tile_ids, table


def _gather(values: Tensor, ids: Tensor) -> Tensor:
    """``values[ids]`` ([N, ...] by ids [T, K] -> [T, K, ...]) through ``index_select``:
    its backward sums with ``index_add_``, which is deterministic on the CPU, where that
    of ``values[ids]`` (``index_put_`` with accumulation) adds duplicates in a varying
    order across threads, so that two runs of one seed drifted apart."""
    return values.index_select(0, ids.reshape(-1)).reshape(*ids.shape, *values.shape[1:])


def _composite(
    pix: Tensor,
    table: Tensor,
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    budget: int = 1 << 22,
) -> tuple[Tensor, Tensor]:
    """Front-to-back compositing of every tile at once, ``chunk`` Gaussians at a time.

    pix: pixel centres [T, P, 2]; table: Gaussian ids [T, L] (-1 = none), depth-sorted.
    Returns colours [T, P, D] (without background) and the final transmittance [T, P].
    """
    n_tiles, n_pix = pix.shape[:2]
    out = colors.new_zeros(n_tiles, n_pix, colors.shape[-1])
    T = colors.new_ones(n_tiles, n_pix)
    chunk = max(8, budget // max(1, n_tiles * n_pix))
    for start in range(0, table.shape[1], chunk):
        ids = table[:, start : start + chunk]  # [T, K]
        present = ids >= 0
        ids = ids.clamp(min=0)
        d = _gather(means2d, ids)[:, :, None, :] - pix[:, None]  # [T, K, P, 2]
        cn = _gather(conics, ids)[:, :, None, :]
        sigma = 0.5 * (cn[..., 0] * d[..., 0] ** 2 + cn[..., 2] * d[..., 1] ** 2)
        sigma = sigma + cn[..., 1] * d[..., 0] * d[..., 1]
        alpha = torch.clamp(_gather(opacities, ids)[..., None] * torch.exp(-sigma), max=MAX_ALPHA)
        alpha = torch.where(
            (sigma >= 0) & (alpha >= ALPHA_THRESHOLD) & present[..., None], alpha, 0.0
        )
        # Transmittance after each Gaussian; it only decreases, so those kept are a prefix.
        next_T = T[:, None] * torch.cumprod(1.0 - alpha, dim=1)  # [T, K, P]
        keep = next_T > TRANSMITTANCE_MIN
        weight = alpha * keep * torch.cat([T[:, None], next_T[:, :-1]], dim=1)
        out = out + torch.einsum("tkp,tkd->tpd", weight, _gather(colors, ids))
        T = torch.where(keep, next_T, 2.0).amin(dim=1).where(keep.any(dim=1), T)
        if not bool((T > TRANSMITTANCE_MIN).any()):  # every pixel is opaque already
            break
    return out, T


def rasterize_torch(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    sh_degree: int | None = None,
    tile_size: int = 16,
    backgrounds: Tensor | None = None,
    render_mode: str = "RGB",
    **unused: Any,
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render N Gaussians into C cameras, like ``gsplat.rasterization`` (classic mode).

    Args:
        means [N, 3], quats [N, 4] (wxyz), scales [N, 3], opacities [N] (activated).
        colors: [N, D] colours, or SH coefficients [N, K, 3] with ``sh_degree``.
        viewmats: world-to-camera [C, 4, 4] (OpenCV); Ks: intrinsics [C, 3, 3].
        backgrounds: [C, D] or None.
        render_mode: "RGB", "D", "ED", "RGB+D" or "RGB+ED" (depth as an extra channel;
            "ED" divides it by the alpha).

    Returns ``render_colors`` [C, H, W, D'], ``render_alphas`` [C, H, W, 1] and ``info``.
    """
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got '{render_mode}'.")
    n_cams = viewmats.shape[0]
    proj = project_gaussians(
        means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    means2d, conics, depths, radii = proj["means2d"], proj["conics"], proj["depths"], proj["radii"]

    if sh_degree is not None:
        campos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
        dirs = means[None] - campos[:, None]  # [C, N, 3]
        feats = torch.clamp_min(
            eval_sh(sh_degree, dirs, colors[None].expand(n_cams, -1, -1, -1)) + 0.5, 0.0
        )
    else:
        feats = colors[None].expand(n_cams, -1, -1)  # [C, N, D]
    if render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, depths[..., None]], dim=-1)
    elif render_mode in ("D", "ED"):
        feats = depths[..., None]
    if backgrounds is not None and render_mode != "RGB":
        extra = backgrounds.new_zeros(n_cams, 1)
        backgrounds = extra if render_mode in ("D", "ED") else torch.cat([backgrounds, extra], -1)

    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    ys, xs = torch.meshgrid(
        torch.arange(tile_size, device=means.device),
        torch.arange(tile_size, device=means.device),
        indexing="ij",
    )
    in_tile = torch.stack([xs, ys], dim=-1).reshape(-1, 2).to(means.dtype) + 0.5  # centres
    n_ch, n_pix = feats.shape[-1], tile_size * tile_size

    images, alphas = [], []
    for cam in range(n_cams):
        tile_ids, table = _tile_table(
            means2d[cam].detach(), radii[cam], depths[cam].detach(), tile_size, tiles_x, tiles_y
        )
        corner = torch.stack([tile_ids % tiles_x, tile_ids // tiles_x], dim=-1) * tile_size
        pix = corner[:, None, :].to(means.dtype) + in_tile[None]  # [T, P, 2]
        # Tiles in groups of similar length, so that little work goes into padding.
        counts = (table >= 0).sum(dim=1)
        by_length = torch.argsort(counts, descending=True)
        color = feats.new_zeros(len(tile_ids), n_pix, n_ch)
        T = feats.new_ones(len(tile_ids), n_pix)
        for group in torch.split(by_length, TILES_PER_GROUP):
            length = int(counts[group[0]])
            c, t = _composite(
                pix[group], table[group, :length], means2d[cam], conics[cam], opacities, feats[cam]
            )
            color = color.index_copy(0, group, c)
            T = T.index_copy(0, group, t)
        # Scatter the non-empty tiles into the full grid (empty tiles: no colour, T = 1).
        all_color = feats.new_zeros(tiles_x * tiles_y, n_pix, n_ch).index_copy(0, tile_ids, color)
        all_T = feats.new_ones(tiles_x * tiles_y, n_pix).index_copy(0, tile_ids, T)
        grid = (tiles_y, tiles_x, tile_size, tile_size)
        color = all_color.reshape(grid + (n_ch,)).permute(0, 2, 1, 3, 4)
        color = color.reshape(tiles_y * tile_size, tiles_x * tile_size, n_ch)[:height, :width]
        T = all_T.reshape(grid).permute(0, 2, 1, 3).reshape(tiles_y * tile_size, -1)
        T = T[:height, :width]
        if backgrounds is not None:
            color = color + T[..., None] * backgrounds[cam]
        images.append(color)
        alphas.append(1.0 - T[..., None])
    render_colors, render_alphas = torch.stack(images), torch.stack(alphas)
    if render_mode in ("ED", "RGB+ED"):
        render_colors = torch.cat(
            [render_colors[..., :-1], render_colors[..., -1:] / render_alphas.clamp(min=1e-10)], -1
        )
    info = {
        "means2d": means2d,
        "conics": conics,
        "depths": depths,
        "radii": radii,
        "opacities": opacities[None].expand(n_cams, -1),
        "width": width,
        "height": height,
        "n_cameras": n_cams,
        "tile_size": tile_size,
        "tile_width": tiles_x,
        "tile_height": tiles_y,
        "gaussian_ids": None,
        "camera_ids": None,
    }
    return render_colors, render_alphas, info
