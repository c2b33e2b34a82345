"""The static textured mesh as Wavefront OBJ: ``NAME.obj`` + ``NAME.mtl`` + ``NAME.png``.

``v x y z r g b`` lines carry the vertex colours too (read by Blender, MeshLab, trimesh;
others ignore them); ``vt`` uses OBJ's upward v (1 - glTF's); ``vn`` normals; faces are
1-based ``v/vt/vn`` triangles, counter-clockwise seen from outside. The frame is glTF's,
as Blender's and most tools' OBJ importers expect (y up, the front facing +z, standing on
y = 0). The three files are written under temporary names and renamed into place.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from gaussianip.export.texture import TexturedMesh


def obj_files(obj_path: Path) -> dict[str, Path]:
    """{"obj", "mtl", "texture"}: the three files of an export to ``obj_path``."""
    return {"obj": obj_path, "mtl": obj_path.with_suffix(".mtl"),
            "texture": obj_path.with_suffix(".png")}  # fmt: skip


def obj_texts(mesh: TexturedMesh, name: str) -> tuple[str, str, bytes]:
    """The OBJ text, MTL text and PNG bytes of ``mesh`` (files named ``name``.*);
    ``mesh`` positions/normals already in the file's frame."""
    lines = [f"# gaussianip export: {len(mesh.vertices)} vertices, {mesh.num_faces} faces",
             f"mtllib {name}.mtl", "o avatar"]  # fmt: skip
    v = np.concatenate([mesh.vertices, np.clip(mesh.colours, 0, 1)], 1)
    lines += [f"v {a:.6f} {b:.6f} {c:.6f} {r:.4f} {g:.4f} {bl:.4f}" for a, b, c, r, g, bl in v]
    lines += [f"vt {u:.6f} {1 - w:.6f}" for u, w in mesh.uvs]
    lines += [f"vn {a:.5f} {b:.5f} {c:.5f}" for a, b, c in mesh.normals]
    lines += ["usemtl avatar", "s 1"]
    f = mesh.faces.astype(np.int64) + 1
    lines += [f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}" for a, b, c in f]
    mtl = "\n".join(["newmtl avatar", "Ka 1 1 1", "Kd 1 1 1", "Ks 0 0 0", "d 1", "illum 1",
                     f"map_Kd {name}.png", ""])  # fmt: skip
    png = io.BytesIO()
    Image.fromarray(mesh.texture).save(png, format="PNG")
    return "\n".join(lines) + "\n", mtl, png.getvalue()
