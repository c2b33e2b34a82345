"""``gaussianip export --format glb | obj``: the avatar as a rigged, textured triangle mesh.

Steps: check the options and the Gaussians (seconds, before any work) -> surface from
the Gaussians (``mesh``) -> UV atlas and baked texture (``texture``) -> per-vertex skinning
weights from the body and the skeleton as a glTF skin, with an optional motion baked into
an animation clip (``skin``) -> ``gltf_mesh`` (GLB) or ``obj`` (OBJ + MTL + PNG). Files are
written under temporary names and renamed into place at the end, so a failed export
leaves the run as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gaussianip.errors import AssetError, ConfigError
from gaussianip.export.mesh import SurfaceOptions, extract_surface
from gaussianip.export.skin import (
    GltfFrame,
    inverse_bind_matrices,
    node_poses,
    rest_translations,
    skin_vertices,
)
from gaussianip.export.texture import TexturedMesh, bake_texture

MESH_FORMATS = {"glb": ".glb", "obj": ".obj"}
FACES_RANGE = (1_000, 1_000_000)
TEXTURE_RANGE = (64, 8192)
CLIP_FPS = 30.0  # motions are resampled to at most this many keyframes a second


@dataclass
class MeshExportOptions:
    """Options of the mesh formats (CLI: ``--faces``, ``--texture-size``, ``--motion``,
    ``--device``). ``views_per_ring`` / ``ring_resolution``: the ring renders the surface
    is fused from (None: 16 azimuths at 512 px with CUDA, 8 at 384 px on the CPU, where
    our exact rasterizer is far slower)."""

    faces: int = 50_000
    texture_size: int = 2048
    motion: str | Path | None = None
    device: str = "cpu"
    views_per_ring: int | None = None
    ring_resolution: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (filled in)


def check_options(opts: MeshExportOptions) -> None:
    """``ConfigError`` naming the option, the value and the allowed range."""
    lo, hi = FACES_RANGE
    if not isinstance(opts.faces, int) or not lo <= opts.faces <= hi:
        raise ConfigError(f"--faces must be between {lo:,} and {hi:,} triangles, got "
                          f"{opts.faces}; the default is 50,000.")  # fmt: skip
    lo, hi = TEXTURE_RANGE
    if not isinstance(opts.texture_size, int) or not lo <= opts.texture_size <= hi:
        raise ConfigError(f"--texture-size must be between {lo} and {hi} pixels, got "
                          f"{opts.texture_size}; the default is 2048.")  # fmt: skip
    device = torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but no CUDA GPU is visible; use --device cpu.")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got '{opts.device}'.")


def check_gaussians(params: dict[str, Tensor], source: Path) -> None:
    """``AssetError`` for an avatar with no Gaussians or with NaN / Inf parameters."""
    n = params["means"].shape[0]
    if n == 0:
        raise AssetError(f"'{source}' holds no Gaussians: there is no avatar to make a mesh "
                         "of. Export the PLY of a finished run.")  # fmt: skip
    bad = torch.zeros(n, dtype=torch.bool)
    for value in params.values():
        bad |= ~torch.isfinite(value.reshape(n, -1)).all(1)
    if bad.any():
        raise AssetError(f"'{source}' has {int(bad.sum())} of {n} Gaussians with NaN or Inf "
                         "parameters (a diverged run); no mesh was written. Re-run or resume "
                         "the run from an earlier checkpoint.")  # fmt: skip


def output_files(out: Path, fmt: str) -> list[Path]:
    """Every file an export to ``out`` writes."""
    if fmt == "obj":
        from gaussianip.export.obj import obj_files

        return list(obj_files(out).values())
    return [out]


def _ring(opts: MeshExportOptions) -> tuple[int, int]:
    cuda = torch.device(opts.device).type == "cuda"
    views = opts.views_per_ring or (16 if cuda else 8)
    resolution = opts.ring_resolution or (512 if cuda else 384)
    return views, resolution


def build_mesh(
    params: dict[str, Tensor], opts: MeshExportOptions, log: Callable[[str], None] = print
) -> TexturedMesh:
    """The textured surface of Gaussians ``params`` (our frame); seconds per phase go to
    ``opts.timings``."""
    views, resolution = _ring(opts)
    # TSDF voxels about the size of a ring pixel (the ring frames a sphere around the
    # avatar: a pixel is ~1.1 / resolution of the avatar's height). Finer voxels do not
    # add detail the renders lack; they only thin the truncation band (measured: the
    # silhouette IoU drops from 0.92 to 0.90 at 1.5x finer voxels, 128 px renders).
    voxels = max(64, min(512, round(0.9 * resolution)))
    surface_opts = SurfaceOptions(views_per_ring=views, resolution=resolution,
                                  faces=opts.faces, voxels=voxels)  # fmt: skip
    start = time.perf_counter()
    surface, renders, voxel = extract_surface(params, surface_opts, opts.device, opts.timings)
    log(f"export: surface of {surface.num_faces:,} triangles from {renders.num_views} ring "
        f"views ({time.perf_counter() - start:.0f} s)")  # fmt: skip
    start = time.perf_counter()
    textured = bake_texture(surface, renders, opts.texture_size, depth_tolerance=3 * voxel)
    opts.timings["texture"] = time.perf_counter() - start
    log(f"export: {opts.texture_size} px texture baked ({opts.timings['texture']:.0f} s)")
    return textured


def _body_and_skeleton(save: Path, params: dict[str, Tensor], stage: str):
    """The run's body model and skeleton (the rig file's for the final avatar, written as
    ``animate`` does where missing)."""
    from gaussianip.animate import _body_settings, rig_for_run
    from gaussianip.body import build_body_model
    from gaussianip.rig import skeleton_of

    body = build_body_model(**_body_settings(save))
    if body.skin_weights is None or body.joints is None:
        raise AssetError(f"The run's '{body.name}' body has no skeleton or skinning weights; "
                         "a rigged mesh needs them (rebuild the default body with "
                         "scripts/build_default_body.py, or use SMPL-X).")  # fmt: skip
    if stage == "final":
        rig, _ = rig_for_run(save, params)
        return body, rig.skeleton
    return body, skeleton_of(body)


def export_mesh(
    source: Path, stage: str, fmt: str, out: Path, opts: MeshExportOptions,
    log: Callable[[str], None] = print,
) -> Path:  # fmt: skip
    """Write the avatar of the PLY ``source`` as ``fmt`` ("glb" or "obj") to ``out``
    (the caller has checked that ``out`` may be written). Returns ``out``."""
    from gaussianip.gaussians import load_ply

    check_options(opts)
    motion = None
    if opts.motion is not None:
        if fmt != "glb":
            raise ConfigError("--motion bakes an animation clip into the GLB; OBJ has no "
                              "animation. Use --format glb, or drop --motion.")  # fmt: skip
        from gaussianip.motion import load_motion

        motion = load_motion(opts.motion)  # a bad motion file fails here, in seconds
    params = load_ply(source, drop_nonfinite=False)  # refused below, never dropped
    check_gaussians(params, source)
    save = source.parent
    start = time.perf_counter()
    body, skeleton = _body_and_skeleton(save, params, stage)
    opts.timings["rig_setup"] = time.perf_counter() - start

    mesh = build_mesh(params, opts, log)
    frame = GltfFrame(lift=-float(mesh.vertices[:, 2].min()))
    start = time.perf_counter()
    if fmt == "obj":
        from gaussianip.export.obj import obj_files, obj_texts

        files = obj_files(out)
        texts = obj_texts(_in_frame(mesh, frame), out.stem)
        payload = {files["obj"]: texts[0].encode(), files["mtl"]: texts[1].encode(),
                   files["texture"]: texts[2]}  # fmt: skip
    else:
        from gaussianip.export.gltf_mesh import GltfClip, GltfSkin, glb_document

        binding = skin_vertices(torch.from_numpy(mesh.vertices), body.vertices, body.faces,
                                body.skin_weights)  # fmt: skip
        joints, weights = _four(binding.joint_indices.numpy(), binding.joint_weights.numpy())
        skin = GltfSkin(list(skeleton.names), skeleton.parents.tolist(),
                        rest_translations(skeleton, frame), inverse_bind_matrices(skeleton, frame),
                        joints, weights)  # fmt: skip
        clip = None
        if motion is not None:
            from gaussianip.motion import motion_joint_transforms

            step = max(1, round(motion.fps / CLIP_FPS))
            frames = list(range(0, motion.num_frames, step))
            transforms = motion_joint_transforms(skeleton, motion)[frames]
            clip = GltfClip(motion.name, np.asarray(frames, np.float32) / motion.fps,
                            node_poses(skeleton, transforms, frame))  # fmt: skip
        doc = glb_document(_in_frame(mesh, frame), skin, clip, extras=frame.extras())
        payload = {out: b"".join(doc.save_to_bytes())}
    opts.timings["write"] = time.perf_counter() - start
    _write_all(payload)
    return out


def _four(idx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad joint indices / weights to 4 a vertex (bodies with fewer joints)."""
    k = idx.shape[1]
    if k < 4:
        idx = np.pad(idx, ((0, 0), (0, 4 - k)))
        w = np.pad(w, ((0, 0), (0, 4 - k)))
    w = w.astype(np.float32)
    w = w / w.sum(1, keepdims=True)
    return idx.astype(np.int64), w


def _in_frame(mesh: TexturedMesh, frame: GltfFrame) -> TexturedMesh:
    """``mesh`` with positions and normals in glTF's frame."""
    return TexturedMesh(
        vertices=frame.points(torch.from_numpy(mesh.vertices)).float().numpy(),
        normals=frame.directions(torch.from_numpy(mesh.normals)).float().numpy(),
        uvs=mesh.uvs, colours=mesh.colours, faces=mesh.faces, texture=mesh.texture,
        source=mesh.source,
    )  # fmt: skip


def _write_all(payload: dict[Path, bytes]) -> None:
    """Write every file under a temporary name, then rename them all into place."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in payload.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            temps.append((tmp, path))
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
