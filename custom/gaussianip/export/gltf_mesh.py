"""The rigged, textured avatar mesh as one binary glTF 2.0 file (``.glb``), via pygltflib.

(pygltflib writes skins, animations and binary chunks as the specification has them;
trimesh's glTF exporter has no skins.) Contents:

- one mesh, one primitive: ``POSITION``, ``NORMAL``, ``TEXCOORD_0``, ``JOINTS_0``
  (unsigned byte/short, 4 a vertex) and ``WEIGHTS_0`` (float, summing to 1); the vertex
  colours as ``_COLOR_0`` (an application attribute: glTF multiplies ``COLOR_0`` into
  the texture, which would darken it);
- one material: the baked texture as ``baseColorTexture`` (PNG, sRGB), not metallic,
  fully rough, and ``KHR_materials_unlit`` (the texture already holds the avatar's
  shading; engines without the extension light it as a matte surface);
- one skin: a node per joint in the rest pose (``skin.skeleton`` is the root joint),
  ``inverseBindMatrices`` (see ``skin``);
- with a motion, one animation: the root joint's translation and every joint's rotation
  per frame (linear), which glTF viewers and Blender play on import.

Positions and rotations are converted to glTF's frame by ``skin.GltfFrame`` (y up, the
front facing +z, standing on y = 0).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygltflib as gl
from PIL import Image

from gaussianip.export.skin import NodePoses
from gaussianip.export.texture import TexturedMesh

UNLIT = "KHR_materials_unlit"


@dataclass
class GltfSkin:
    """The skeleton in glTF terms: joint ``names`` [J], ``parents`` [J] (-1: the root),
    rest ``translations`` [J, 3] (local), ``inverse_bind`` [J, 4, 4]; per vertex
    ``joints`` [V, 4] and ``weights`` [V, 4]."""

    names: list[str]
    parents: list[int]
    translations: np.ndarray
    inverse_bind: np.ndarray
    joints: np.ndarray
    weights: np.ndarray


@dataclass
class GltfClip:
    """An animation: ``times`` [T] seconds and the node ``poses`` at those times."""

    name: str
    times: np.ndarray
    poses: NodePoses


class _Blob:
    """The GLB's binary chunk, assembled view by view (4-byte aligned)."""

    def __init__(self, doc: gl.GLTF2) -> None:
        self.doc, self.data = doc, bytearray()

    def view(self, raw: bytes, target: int | None = None) -> int:
        self.data += b"\0" * (-len(self.data) % 4)
        self.doc.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(self.data),
                                                  byteLength=len(raw), target=target))  # fmt: skip
        self.data += raw
        return len(self.doc.bufferViews) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None,
                 bounds: bool = False, normalized: bool = False) -> int:  # fmt: skip
        component = {np.dtype(np.float32): gl.FLOAT, np.dtype(np.uint32): gl.UNSIGNED_INT,
                     np.dtype(np.uint16): gl.UNSIGNED_SHORT,
                     np.dtype(np.uint8): gl.UNSIGNED_BYTE}[array.dtype]  # fmt: skip
        array = np.ascontiguousarray(array)
        flat = array.reshape(len(array), -1)
        acc = gl.Accessor(bufferView=self.view(array.tobytes(), target), componentType=component,
                          count=len(array), type=kind, normalized=normalized or None)  # fmt: skip
        if bounds:
            acc.min = flat.min(0).tolist()
            acc.max = flat.max(0).tolist()
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1


def glb_document(
    mesh: TexturedMesh, skin: GltfSkin, clip: GltfClip | None, extras: dict | None = None
) -> gl.GLTF2:
    """The glTF document (buffer included) of the textured mesh, skin and clip;
    ``extras`` go into the scene's ``extras`` (how our frame maps to glTF's)."""
    doc = gl.GLTF2(asset=gl.Asset(version="2.0", generator="gaussianip export"))
    blob = _Blob(doc)
    n_joints = len(skin.names)
    joint_type = np.uint8 if n_joints <= 256 else np.uint16
    attributes = gl.Attributes(
        POSITION=blob.accessor(mesh.vertices.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER, True),
        NORMAL=blob.accessor(mesh.normals.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER),
        TEXCOORD_0=blob.accessor(mesh.uvs.astype(np.float32), gl.VEC2, gl.ARRAY_BUFFER),
        JOINTS_0=blob.accessor(skin.joints.astype(joint_type), gl.VEC4, gl.ARRAY_BUFFER),
        WEIGHTS_0=blob.accessor(skin.weights.astype(np.float32), gl.VEC4, gl.ARRAY_BUFFER),
    )
    colours = blob.accessor(mesh.colours.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER)
    attributes._COLOR_0 = colours  # pygltflib writes any extra attribute
    indices = blob.accessor(mesh.faces.astype(np.uint32).reshape(-1), gl.SCALAR,
                            gl.ELEMENT_ARRAY_BUFFER)  # fmt: skip
    doc.meshes.append(gl.Mesh(name="avatar", primitives=[
        gl.Primitive(attributes=attributes, indices=indices, material=0, mode=gl.TRIANGLES)
    ]))  # fmt: skip

    png = io.BytesIO()
    Image.fromarray(mesh.texture).save(png, format="PNG")
    doc.images.append(gl.Image(bufferView=blob.view(png.getvalue()), mimeType="image/png",
                               name="avatar_texture"))  # fmt: skip
    doc.samplers.append(gl.Sampler(magFilter=gl.LINEAR, minFilter=gl.LINEAR_MIPMAP_LINEAR,
                                   wrapS=gl.CLAMP_TO_EDGE, wrapT=gl.CLAMP_TO_EDGE))  # fmt: skip
    doc.textures.append(gl.Texture(sampler=0, source=0))
    doc.materials.append(gl.Material(
        name="avatar",
        pbrMetallicRoughness=gl.PbrMetallicRoughness(
            baseColorTexture=gl.TextureInfo(index=0), metallicFactor=0.0, roughnessFactor=1.0),
        extensions={UNLIT: {}},
    ))  # fmt: skip
    doc.extensionsUsed = [UNLIT]

    # Joint nodes 0..J-1, then the mesh node.
    children: list[list[int]] = [[] for _ in range(n_joints)]
    for j, p in enumerate(skin.parents):
        if p >= 0:
            children[p].append(j)
    for j in range(n_joints):
        doc.nodes.append(gl.Node(name=skin.names[j], translation=skin.translations[j].tolist(),
                                 children=children[j] or None))  # fmt: skip
    ibm = blob.accessor(skin.inverse_bind.transpose(0, 2, 1).astype(np.float32).reshape(-1, 16),
                        gl.MAT4)  # column-major  # fmt: skip
    doc.skins.append(gl.Skin(name="avatar_skeleton", joints=list(range(n_joints)),
                             skeleton=0, inverseBindMatrices=ibm))  # fmt: skip
    doc.nodes.append(gl.Node(name="avatar", mesh=0, skin=0))
    doc.scenes.append(gl.Scene(name="avatar", nodes=[0, n_joints], extras=extras or {}))
    doc.scene = 0

    if clip is not None:
        _add_clip(doc, blob, clip, n_joints)
    doc.buffers.append(gl.Buffer(byteLength=len(blob.data)))
    doc.set_binary_blob(bytes(blob.data))
    return doc


def _add_clip(doc: gl.GLTF2, blob: _Blob, clip: GltfClip, n_joints: int) -> None:
    times = blob.accessor(clip.times.astype(np.float32), gl.SCALAR, bounds=True)
    samplers, channels = [], []

    def channel(node: int, path: str, values: np.ndarray, kind: str) -> None:
        output = blob.accessor(values.astype(np.float32), kind)
        samplers.append(gl.AnimationSampler(input=times, output=output, interpolation="LINEAR"))
        target = gl.AnimationChannelTarget(node=node, path=path)
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1, target=target))

    channel(0, "translation", clip.poses.translation[:, 0], gl.VEC3)
    for j in range(n_joints):
        rot = clip.poses.rotation[:, j].copy()
        # Consecutive quaternions in the same hemisphere: linear blending takes the short way.
        for t in range(1, len(rot)):
            if np.dot(rot[t], rot[t - 1]) < 0:
                rot[t] = -rot[t]
        channel(j, "rotation", rot, gl.VEC4)
    doc.animations.append(gl.Animation(name=clip.name, samplers=samplers, channels=channels))


def write_glb(path: str | Path, doc: gl.GLTF2) -> Path:
    """Write ``doc`` as one ``.glb`` at ``path`` (the caller renames it into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(doc.save_to_bytes()))
    return path
