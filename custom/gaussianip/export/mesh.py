"""A triangle surface from the Gaussians: ring renders -> TSDF -> marching cubes -> clean-up.

1. ``ring_cameras``: a dense ring of cameras around the avatar (several elevations, plus
   one from above and one from below), each framing the whole avatar.
2. ``render_ring``: colour, opacity and expected depth of every view through our renderer
   (gsplat on CUDA, our exact PyTorch rasterizer on the CPU).
3. ``fuse_tsdf``: Open3D's TSDF, ``t.geometry.VoxelBlockGrid``, integrates the depth of
   every view where the opacity is at least ``alpha_threshold``; its marching cubes gives
   the triangles. Open3D's is the field's standard TSDF; its hashed blocks cost memory
   only near the surface and it runs on the CPU, so GPU and CPU exports give the same
   mesh. (Its older ``ScalableTSDFVolume`` extracts no triangles at all in Open3D 0.20's
   wheels, even for a flat wall: the block grid replaces it.)
4. ``clean_surface``: keep the largest connected piece, fill small holes (Open3D's
   ``fill_holes``), decimate to the face budget (quadric decimation).

Everything here is in our frame (metres, z up, facing +x); ``gltf_mesh`` converts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gaussianip.cameras import c2w_to_viewmat, intrinsics, look_at
from gaussianip.errors import AssetError, ConfigError

RING_ELEVATIONS_DEG = (-35.0, -10.0, 15.0, 40.0)  # plus one view from straight above/below
FOVY_DEG = 30.0  # narrow: close to orthographic, so depth is sampled evenly


@dataclass
class SurfaceOptions:
    views_per_ring: int = 16  # azimuths per elevation ring
    resolution: int = 512  # px, square ring renders
    voxels: int = 256  # TSDF voxels along the avatar's longest side
    alpha_threshold: float = 0.5  # a pixel is surface where the render's opacity >= this
    hole_fraction: float = 0.02  # fill holes up to this fraction of the avatar's size
    faces: int = 50_000  # face budget after decimation


@dataclass
class RingRenders:
    """The ring's cameras and renders: ``viewmats`` [V, 4, 4] (world-to-camera, OpenCV),
    ``Ks`` [V, 3, 3], ``rgb`` [V, H, W, 3] in [0, 1], ``alpha`` [V, H, W], ``depth``
    [V, H, W] (camera z, metres; expected depth, valid where alpha > 0)."""

    viewmats: Tensor
    Ks: Tensor
    rgb: Tensor
    alpha: Tensor
    depth: Tensor

    @property
    def num_views(self) -> int:
        return self.viewmats.shape[0]


@dataclass
class SurfaceMesh:
    """A triangle mesh: ``vertices`` [V, 3] float32, ``faces`` [F, 3] int32
    (counter-clockwise seen from outside), ``normals`` [V, 3] float32 (unit, outward)."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])


def open3d():
    """The ``open3d`` module, or a ``ConfigError`` saying what to install."""
    try:
        import open3d as o3d
    except ImportError as err:
        raise ConfigError(f"The mesh export needs Open3D, which did not import ({err}). "
                          "pip install open3d; on Debian/Ubuntu it also needs "
                          "`apt-get install libusb-1.0-0`.") from None  # fmt: skip
    return o3d


def visible_means(params: dict[str, Tensor], min_opacity: float = 0.05) -> Tensor:
    """[M, 3] centres of the Gaussians that show (opacity above ``min_opacity``)."""
    means = params["means"].detach().float()
    visible = torch.sigmoid(params["opacities"].detach().float().reshape(-1)) > min_opacity
    return means[visible]


def gaussian_spacing(means: Tensor) -> float:
    """Median distance from each of ``means`` [N, 3] to its nearest neighbour (metres).

    Twice this is the finest TSDF voxel used: finer voxels resolve the gaps between the
    Gaussians of a sparse, translucent avatar and break its surface into pieces (the
    tiny config's avatar, 1.1 cm apart: its largest piece was 0.9 m of the 1.8 m body
    at 5 mm voxels, 1.75 m at 1.1 cm, the whole body at 2 cm). A trained avatar's
    Gaussians lie a few millimetres apart: there the ring's pixels set the voxel size."""
    from scipy.spatial import cKDTree

    points = means.detach().cpu().double().numpy()
    if len(points) < 2:
        return 0.0
    distance, _ = cKDTree(points).query(points, k=2)
    return float(np.median(distance[:, 1]))


def ring_cameras(means: Tensor, views_per_ring: int, size: int) -> tuple[Tensor, Tensor]:
    """Cameras around points ``means`` [N, 3]: ``views_per_ring`` azimuths at each of
    ``RING_ELEVATIONS_DEG``, plus one above and one below; each frames the points' bounding
    sphere. Returns ``viewmats`` [V, 4, 4] (OpenCV world-to-camera) and ``Ks`` [V, 3, 3]."""
    lo, hi = means.amin(0).cpu(), means.amax(0).cpu()
    centre = (lo + hi) / 2
    radius = float((hi - lo).norm()) / 2
    half_fov = math.radians(FOVY_DEG) / 2
    distance = radius / math.sin(half_fov) * 1.05
    directions = []
    for elevation in RING_ELEVATIONS_DEG:
        e = math.radians(elevation)
        for i in range(views_per_ring):
            # Rings offset by half a step, so that the azimuths of neighbours interleave.
            a = 2 * math.pi * (i + 0.5 * (len(directions) // views_per_ring % 2)) / views_per_ring
            directions.append([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    directions = torch.tensor(directions)
    eye = centre + distance * directions
    c2w = look_at(eye, centre.expand_as(eye))
    # Straight above / below: "up" in the image is the avatar's front (+x).
    poles = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    pole_eye = centre + distance * poles
    pole_c2w = look_at(pole_eye, centre.expand_as(pole_eye), up=torch.tensor([1.0, 0.0, 0.0]))
    c2w = torch.cat([c2w, pole_c2w])
    fovy = torch.full((c2w.shape[0],), 2 * half_fov)
    return c2w_to_viewmat(c2w), intrinsics(fovy, size, size)


def render_ring(
    params: dict[str, Tensor],
    viewmats: Tensor,
    Ks: Tensor,
    size: int,
    device: torch.device | str = "cpu",
    views_per_call: int = 4,
) -> RingRenders:
    """Render Gaussian ``params`` (pre-activation, ``gaussians.ply``'s) into the cameras
    ``viewmats`` [V, 4, 4] / ``Ks`` [V, 3, 3] at ``size`` px: colour (view-dependent, as
    any viewer shows it), opacity and expected depth, black background."""
    from gaussianip.render import rasterize

    device = torch.device(device)
    p = {k: v.detach().to(device).float() for k, v in params.items()}
    colors = torch.cat([p["sh0"], p["shN"]], dim=1)
    sh_degree = round(math.sqrt(colors.shape[1])) - 1
    rgb, alpha, depth = [], [], []
    with torch.no_grad():
        for start in range(0, viewmats.shape[0], views_per_call):
            vm = viewmats[start : start + views_per_call].to(device)
            image, a, _ = rasterize(
                means=p["means"],
                quats=p["quats"],
                scales=torch.exp(p["scales"]),
                opacities=torch.sigmoid(p["opacities"].reshape(-1)),
                colors=colors,
                viewmats=vm,
                Ks=Ks[start : start + views_per_call].to(device),
                width=size,
                height=size,
                sh_degree=sh_degree,
                backgrounds=torch.zeros(vm.shape[0], 3, device=device),
                render_mode="RGB+ED",
            )
            rgb.append(image[..., :3].clamp(0, 1).cpu())
            depth.append(image[..., 3].cpu())
            alpha.append(a[..., 0].cpu())
    return RingRenders(viewmats.cpu(), Ks.cpu(), torch.cat(rgb), torch.cat(alpha), torch.cat(depth))


def fuse_tsdf(renders: RingRenders, voxel_size: float, alpha_threshold: float = 0.5) -> SurfaceMesh:
    """Integrate the ring's depth (where the opacity is at least ``alpha_threshold``)
    into Open3D's ``VoxelBlockGrid`` TSDF (truncation: 4 voxels) and extract its zero level
    set with Open3D's marching cubes (voxels seen at least once)."""
    o3d = open3d()
    o3c = o3d.core

    points = _surface_points(renders, alpha_threshold)
    if points.shape[0] == 0:
        return SurfaceMesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32),
                           np.zeros((0, 3), np.float32))  # fmt: skip
    # An upper bound of the blocks that can be touched: the surface's box, plus margins.
    block = 8 * voxel_size
    span = (points.amax(0) - points.amin(0)) / block + 3
    block_count = int(torch.prod(span.ceil()).item())
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight"),
        attr_dtypes=(o3c.float32, o3c.float32),
        attr_channels=(1, 1),
        voxel_size=voxel_size,
        block_resolution=8,
        block_count=block_count,
        device=o3c.Device("CPU:0"),
    )
    # Open3D reads pixel (u, v) at integer coordinates; ours sit at +0.5.
    shift = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [0.0, 0.0, 0.0]])
    for v in range(renders.num_views):
        K = o3c.Tensor((renders.Ks[v] - shift).double().numpy())
        extrinsic = o3c.Tensor(renders.viewmats[v].double().numpy())
        depth = torch.where(renders.alpha[v] >= alpha_threshold, renders.depth[v], 0.0)
        image = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth.numpy())))
        blocks = grid.compute_unique_block_coordinates(
            image, K, extrinsic, depth_scale=1.0, depth_max=1e6, trunc_voxel_multiplier=4.0
        )
        grid.integrate(blocks, image, K, extrinsic, depth_scale=1.0, depth_max=1e6,
                       trunc_voxel_multiplier=4.0)  # fmt: skip
    mesh = grid.extract_triangle_mesh(weight_threshold=1.0).to_legacy()
    return _from_open3d(mesh)


def _surface_points(renders: RingRenders, alpha_threshold: float) -> Tensor:
    """[P, 3] world points of the ring's surface pixels (to size the TSDF)."""
    out = []
    size = renders.rgb.shape[1]
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    for v in range(renders.num_views):
        mask = renders.alpha[v] >= alpha_threshold
        z = renders.depth[v][mask]
        K = renders.Ks[v]
        cam = torch.stack([(xs[mask] - K[0, 2]) / K[0, 0] * z, (ys[mask] - K[1, 2]) / K[1, 1] * z,
                           z], -1)  # fmt: skip
        c2w = torch.linalg.inv(renders.viewmats[v])
        out.append(cam @ c2w[:3, :3].T + c2w[:3, 3])
    return torch.cat(out)


def _to_open3d(mesh: SurfaceMesh):
    o3d = open3d()

    out = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(mesh.vertices.astype(np.float64)),
        o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)),
    )
    return out


def _from_open3d(mesh) -> SurfaceMesh:
    mesh.compute_vertex_normals()
    return SurfaceMesh(
        np.asarray(mesh.vertices, dtype=np.float32),
        np.asarray(mesh.triangles, dtype=np.int32).reshape(-1, 3),
        np.asarray(mesh.vertex_normals, dtype=np.float32).reshape(-1, 3),
    )


def largest_component(mesh: SurfaceMesh) -> SurfaceMesh:
    """The connected piece with the most triangles (floaters and specks go)."""
    m = _to_open3d(mesh)
    clusters, counts, _ = m.cluster_connected_triangles()
    clusters = np.asarray(clusters)
    if len(counts) > 1:
        m.remove_triangles_by_mask(clusters != int(np.argmax(counts)))
        m.remove_unreferenced_vertices()
    return _from_open3d(m)


def fill_small_holes(mesh: SurfaceMesh, hole_size: float) -> SurfaceMesh:
    """Close boundary loops shorter than ``hole_size`` metres (Open3D's ``fill_holes``).

    The tensor mesh is built from the arrays directly: through ``from_legacy`` /
    ``to_legacy`` Open3D 0.20 returned a vertex of uninitialised memory here."""
    o3d = open3d()

    tensor_mesh = o3d.t.geometry.TriangleMesh(
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.faces, dtype=np.int64)),
    )
    filled = tensor_mesh.fill_holes(hole_size=hole_size)
    vertices = filled.vertex.positions.numpy().astype(np.float32)
    faces = filled.triangle.indices.numpy().astype(np.int32)
    return _from_open3d(_to_open3d(SurfaceMesh(vertices, faces, np.zeros_like(vertices))))


def decimate(mesh: SurfaceMesh, faces: int) -> SurfaceMesh:
    """At most ``faces`` triangles by quadric error decimation (unchanged if fewer)."""
    if mesh.num_faces <= faces:
        return mesh
    m = _to_open3d(mesh).simplify_quadric_decimation(target_number_of_triangles=faces)
    m.remove_degenerate_triangles()
    m.remove_unreferenced_vertices()
    return _from_open3d(m)


def clean_surface(mesh: SurfaceMesh, faces: int, hole_size: float) -> SurfaceMesh:
    """Largest piece, small holes filled, decimated to ``faces``, without non-manifold
    edges (hole filling and the UV atlas need a manifold)."""
    mesh = _manifold(largest_component(mesh))
    mesh = decimate(fill_small_holes(mesh, hole_size), faces)
    return largest_component(_manifold(mesh))


def _manifold(mesh: SurfaceMesh) -> SurfaceMesh:
    m = _to_open3d(mesh)
    m.remove_duplicated_vertices()
    m.remove_degenerate_triangles()
    m.remove_non_manifold_edges()
    m.remove_unreferenced_vertices()
    return _from_open3d(m)


def extract_surface(
    params: dict[str, Tensor],
    opts: SurfaceOptions,
    device: torch.device | str = "cpu",
    timings: dict[str, float] | None = None,
) -> tuple[SurfaceMesh, RingRenders, float]:
    """The avatar's surface from its Gaussians ``params`` (pre-activation), the ring
    renders it was fused from (the texture is baked from the same views) and the TSDF's
    voxel size (metres). ``timings`` receives seconds per phase."""
    timings = {} if timings is None else timings
    means = visible_means(params)
    if means.shape[0] < 4:
        raise AssetError(f"The avatar has {means.shape[0]} visible Gaussians; a mesh needs "
                         "a body of them. Export a finished run's avatar.")  # fmt: skip
    start = time.perf_counter()
    viewmats, Ks = ring_cameras(means, opts.views_per_ring, opts.resolution)
    renders = render_ring(params, viewmats, Ks, opts.resolution, device)
    timings["render"] = time.perf_counter() - start
    start = time.perf_counter()
    extent = float((means.amax(0) - means.amin(0)).max())
    voxel = max(extent / opts.voxels, 2 * gaussian_spacing(means))
    raw = fuse_tsdf(renders, voxel, opts.alpha_threshold)
    timings["tsdf"] = time.perf_counter() - start
    if raw.num_faces == 0:
        raise AssetError("No surface came out of the avatar's renders (it is empty or "
                         "transparent everywhere); nothing was written.")  # fmt: skip
    start = time.perf_counter()
    mesh = clean_surface(raw, opts.faces, opts.hole_fraction * extent)
    timings["clean"] = time.perf_counter() - start
    return mesh, renders, voxel
