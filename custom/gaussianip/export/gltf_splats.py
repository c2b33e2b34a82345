"""The avatar's Gaussians as glTF: a GLB with the Khronos ``KHR_gaussian_splatting``
extension (Babylon.js, PlayCanvas, Cesium and three.js read it).

Layout, as the specification asks (KhronosGroup/glTF, extensions/2.0/Khronos/
KHR_gaussian_splatting, the Release Candidate text of 2026): one mesh with one
primitive of ``mode`` POINTS (0), all attributes float32, one value a Gaussian:

- ``POSITION`` VEC3 (with its min / max, as glTF requires);
- ``KHR_gaussian_splatting:ROTATION`` VEC4, unit quaternions in glTF's order **xyzw**
  (ours are wxyz and not normalised);
- ``KHR_gaussian_splatting:SCALE`` VEC3, **linear** sizes ``exp(scales)``;
- ``KHR_gaussian_splatting:OPACITY`` SCALAR, the straight opacity ``sigmoid(opacity)``;
- ``KHR_gaussian_splatting:SH_DEGREE_0_COEF_0`` VEC3, the SH DC term ``sh0`` as trained
  (a reader's base colour is ``0.5 + 0.2821 * sh0``, as in our other formats), and
  ``SH_DEGREE_l_COEF_n`` for every band of every degree l = 1..3 the avatar has (n from
  m = -l to m = l, gsplat's order, which is the specification's);
- ``COLOR_0`` VEC4, the fallback for viewers without the extension, which then draw a
  point cloud: the base colour clamped to [0, 1] and decoded from sRGB to **linear** (glTF
  vertex colours are linear; the specification says so for this colour space), alpha the
  opacity.

The extension object says ``kernel: "ellipse"``, ``colorSpace: "srgb_rec709_display"``
(our colours are display sRGB: the diffusion model saw the renders as images),
``projection: "perspective"``, ``sortingMethod: "cameraDistance"``. The extension is in
``extensionsUsed`` and not in ``extensionsRequired``: the point-cloud fallback is part of
its design.

Coordinates: ours are metres, z up, facing +x, the avatar's left at +y; glTF's are y up,
the front facing +z, left at +x. The data is rotated (not the node), as the specification
recommends, since not every renderer rotates SH by a node's transform: positions by
``Z_UP_TO_GLTF`` (a proper rotation: (x, y, z) -> (y, z, x)), quaternions by the same
rotation, and every SH band by its rotation matrix (``sh_rotation``), so the
view-dependent colours turn with the avatar.

Gaussians with NaN / Inf parameters, a zero quaternion or a scale whose ``exp`` overflows
are refused with their count (``refuse_broken``), never dropped silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gaussianip.errors import AssetError
from gaussianip.export.formats import _write_bytes, base_colour
from gaussianip.render.torch_rasterizer import sh_bases
from gaussianip.rig.rotations import matrix_to_quat, quat_multiply

KHR = "KHR_gaussian_splatting"
# Rows: glTF's x, y, z in our axes. Our +y (left) -> glTF +x, our +z (up) -> glTF +y,
# our +x (front) -> glTF +z. Determinant +1.
Z_UP_TO_GLTF = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
EXTENSION = {
    "kernel": "ellipse",
    "colorSpace": "srgb_rec709_display",
    "projection": "perspective",
    "sortingMethod": "cameraDistance",
}


def refuse_broken(params: dict[str, Tensor]) -> None:
    """Raise ``AssetError`` naming the count of Gaussians a viewer cannot draw (NaN / Inf
    parameters, a zero quaternion, a log-scale whose ``exp`` overflows float32), or when
    there are none at all."""
    n = params["means"].shape[0]
    if n == 0:
        raise AssetError("The avatar has no Gaussians: there is nothing to export.")
    bad = torch.zeros(n, dtype=torch.bool)
    for value in params.values():
        bad |= ~torch.isfinite(value.detach().cpu().double().reshape(n, -1)).all(dim=1)
    bad |= params["quats"].detach().cpu().double().norm(dim=-1) < 1e-12
    bad |= params["scales"].detach().cpu().double().amax(dim=-1) > 88.0  # exp -> inf
    if bad.any():
        raise AssetError(
            f"{int(bad.sum())} of the avatar's {n} Gaussians are broken (NaN / Inf values, "
            "a zero rotation or an overflowing scale); nothing was written. The run's "
            "training diverged: re-run it (or an earlier checkpoint) before exporting."
        )


def sh_rotation(rot: Tensor, degree: int) -> list[Tensor]:
    """Per degree l = 1..``degree``, the [2l+1, 2l+1] matrix X that rotates SH coefficients
    [..., 2l+1] by the rotation ``rot`` [3, 3]: ``f'(rot @ d) = f(d)`` for the colour f of
    coefficients c and f' of ``X @ c``, in gsplat's basis (``sh_bases``).

    Solved by least squares from the basis at fixed directions; exact (to float64) since
    each degree's functions span a rotation-invariant space."""
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=torch.float64))
    rot = rot.double()
    before, after = sh_bases(degree, dirs), sh_bases(degree, dirs @ rot.T)  # [64, K]
    out = []
    for lvl in range(1, degree + 1):
        band = slice(lvl * lvl, (lvl + 1) * (lvl + 1))
        # B(rot d) X = B(d): then f(d) = B(d) c = B(rot d) (X c) = f'(rot d).
        out.append(torch.linalg.lstsq(after[:, band], before[:, band]).solution)
    return out


def gltf_splat_attributes(params: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """The primitive's attributes (semantic -> float32 [N, C]) of the Gaussian ``params``
    (the pre-activation dict: ``means`` [N, 3], ``scales`` [N, 3] log, ``quats`` [N, 4]
    wxyz, ``opacities`` [N] logit, ``sh0`` [N, 1, 3], ``shN`` [N, K-1, 3]), in glTF's frame.
    Raises ``AssetError`` on broken Gaussians (``refuse_broken``)."""
    refuse_broken(params)
    p = {k: v.detach().cpu().double() for k, v in params.items()}
    n = p["means"].shape[0]
    rot = Z_UP_TO_GLTF.double()
    quats = quat_multiply(matrix_to_quat(rot).expand(n, 4), p["quats"])
    quats = quats / quats.norm(dim=-1, keepdim=True)
    base = base_colour({"sh0": p["sh0"]}).double().clamp(0, 1)
    linear = torch.where(base <= 0.04045, base / 12.92, ((base + 0.055) / 1.055) ** 2.4)
    opacity = torch.sigmoid(p["opacities"].reshape(n, 1))
    attributes = {
        "POSITION": p["means"] @ rot.T,
        "COLOR_0": torch.cat([linear, opacity], dim=1),
        f"{KHR}:ROTATION": quats[:, [1, 2, 3, 0]],  # wxyz -> glTF's xyzw
        f"{KHR}:SCALE": torch.exp(p["scales"]),  # rotation-invariant: axes are the quat's
        f"{KHR}:OPACITY": opacity,
        f"{KHR}:SH_DEGREE_0_COEF_0": p["sh0"].reshape(n, 3),  # DC is rotation-invariant
    }
    shn = p["shN"].reshape(n, -1, 3)
    degree = round((shn.shape[1] + 1) ** 0.5) - 1
    for lvl, matrix in enumerate(sh_rotation(rot, degree), start=1):
        band = shn[:, lvl * lvl - 1 : (lvl + 1) * (lvl + 1) - 1]  # [N, 2l+1, 3]
        rotated = torch.einsum("km,nmc->nkc", matrix, band)
        for m in range(2 * lvl + 1):
            attributes[f"{KHR}:SH_DEGREE_{lvl}_COEF_{m}"] = rotated[:, m]
    return {k: v.float().numpy() for k, v in attributes.items()}


def gltf_splats_bytes(params: dict[str, Tensor]) -> bytes:
    """The GLB file of ``params`` (see the module docstring)."""
    import pygltflib  # 0.4 s to import: not on every CLI start

    attributes = gltf_splat_attributes(params)
    types = {1: "SCALAR", 3: "VEC3", 4: "VEC4"}
    accessors, views, chunks, offset = [], [], [], 0
    for semantic, values in attributes.items():
        data = np.ascontiguousarray(values, dtype="<f4").tobytes()  # 4-byte aligned
        views.append(pygltflib.BufferView(buffer=0, byteOffset=offset, byteLength=len(data),
                                          target=pygltflib.ARRAY_BUFFER))  # fmt: skip
        accessor = pygltflib.Accessor(bufferView=len(views) - 1,
                                      componentType=pygltflib.FLOAT, count=len(values),
                                      type=types[values.shape[1]])  # fmt: skip
        if semantic == "POSITION":  # glTF requires the bounds of positions
            accessor.min = values.min(axis=0).tolist()
            accessor.max = values.max(axis=0).tolist()
        accessors.append(accessor)
        chunks.append(data)
        offset += len(data)
    primitive = pygltflib.Primitive(
        attributes=pygltflib.Attributes(),
        mode=pygltflib.POINTS,
        extensions={KHR: dict(EXTENSION)},
    )
    # pygltflib's Attributes only knows the standard semantics: set each by name.
    for i, semantic in enumerate(attributes):
        setattr(primitive.attributes, semantic, i)
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0", generator="gaussianip"),
        scene=0,
        scenes=[pygltflib.Scene(nodes=[0])],
        nodes=[pygltflib.Node(name="avatar_splats", mesh=0)],
        meshes=[pygltflib.Mesh(name="avatar_splats", primitives=[primitive])],
        accessors=accessors,
        bufferViews=views,
        buffers=[pygltflib.Buffer(byteLength=offset)],
        extensionsUsed=[KHR],
    )
    gltf.set_binary_blob(b"".join(chunks))
    return b"".join(gltf.save_to_bytes())


def write_gltf_splats(path: str | Path, params: dict[str, Tensor]) -> Path:
    """Write the GLB of ``params`` to ``path`` (through a temporary file); returns it."""
    return _write_bytes(Path(path), gltf_splats_bytes(params))
