"""``gaussianip export --format gltf`` (KHR_gaussian_splatting) and ``--format spz``.

Each file is read three ways and compared with the model we exported (our PLY):
- a GLB reader written here from the glTF 2.0 and KHR_gaussian_splatting specifications
  (chunks, accessors, the spec's rotation matrix and SH polynomials), not pygltflib;
- Babylon.js's own glTF loader (npm ``@babylonjs/core`` + ``@babylonjs/loaders``, run in
  Node on its NullEngine): what Babylon would render;
- for SPZ, Niantic's own SPZ library (npm ``@adobe/spz``, its C++ compiled to WebAssembly).
And Babylon.js draws the file in headless Chromium: upright, facing glTF's front, in colour.
The npm readers are installed into ``tests/js/splat_readers`` (git-ignored node_modules)
on first use; those tests are skipped, with the reason, only where npm cannot install them.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import math
import shutil
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gaussianip.cli import main
from gaussianip.gaussians import save_ply
from gaussianip.gaussians.model import SH_C0

sys.path.insert(0, str(Path(__file__).parent))
from helpers.headless_chromium import HeadlessChromium, chromium_binary  # noqa: E402

READERS = Path(__file__).parent / "js" / "splat_readers"
KHR = "KHR_gaussian_splatting"
N = 300
# ours (z up, facing +x, left +y) -> glTF (y up, facing +z, left +x)
R = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def random_params(n: int = N, sh_degree: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "scales": torch.rand(n, 3, generator=g) * 4 - 7,  # 1 mm .. 5 cm
        "quats": torch.randn(n, 4, generator=g) * 2,  # unnormalised, as optimised
        "opacities": torch.randn(n, generator=g) * 2,
        "sh0": (torch.rand(n, 1, 3, generator=g) - 0.5) / SH_C0,  # colours in [0, 1]
        "shN": torch.randn(n, (sh_degree + 1) ** 2 - 1, 3, generator=g) * 0.3,
    }


@pytest.fixture
def run_dir(tmp_path):
    params = random_params()
    save_ply(tmp_path / "save" / "gaussians.ply", params)
    return tmp_path, {k: v.double().numpy() for k, v in params.items()}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def rotmat_wxyz(q: np.ndarray) -> np.ndarray:
    """[N, 4] wxyz (any norm) -> [N, 3, 3]."""
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                    axis=1).reshape(-1, 3, 3)  # fmt: skip


# --- a GLB reader from the specifications ------------------------------------------------


def read_glb(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(the JSON, semantic -> [count, components] float64) of a GLB: 12-byte header
    'glTF', 2, length; then a JSON chunk and a BIN chunk (length, type, data)."""
    raw = path.read_bytes()
    magic, version, length = struct.unpack_from("<4sII", raw, 0)
    assert (magic, version, length) == (b"glTF", 2, len(raw))
    json_len, json_type = struct.unpack_from("<II", raw, 12)
    assert json_type == 0x4E4F534A  # "JSON"
    doc = json.loads(raw[20 : 20 + json_len])
    bin_off = 20 + json_len
    bin_len, bin_type = struct.unpack_from("<II", raw, bin_off)
    assert bin_type == 0x004E4942  # "BIN\0"
    blob = raw[bin_off + 8 : bin_off + 8 + bin_len]
    sizes = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
    out = {}
    primitive = doc["meshes"][0]["primitives"][0]
    for semantic, index in primitive["attributes"].items():
        acc = doc["accessors"][index]
        view = doc["bufferViews"][acc["bufferView"]]
        assert acc["componentType"] == 5126  # FLOAT
        start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        k = sizes[acc["type"]]
        values = np.frombuffer(blob, "<f4", acc["count"] * k, start).reshape(-1, k)
        assert start % 4 == 0 and "byteStride" not in view  # tightly packed, aligned
        out[semantic] = values.astype(np.float64)
    return doc, out


def spec_rotation(q_xyzw: np.ndarray) -> np.ndarray:
    """The rotation of glTF quaternions [N, 4] (xyzw), as the specification's C / s."""
    x, y, z, w = q_xyzw.T
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                    axis=1).reshape(-1, 3, 3)  # fmt: skip


def spec_sh_colour(sh: list[np.ndarray], d: np.ndarray) -> np.ndarray:
    """The specification's "Calculating color from Spherical Harmonics": colour [N, 3]
    from coefficients ``sh[l][m]`` [N, 3] (m = -l..l) at unit directions ``d`` [N, 3]."""
    x, y, z = (d[:, i : i + 1] for i in range(3))
    colour = sh[0][0] * 0.2820947917738781 + 0.5
    if len(sh) > 1:
        c = sh[1]
        colour = colour + (c[0] * y * -0.4886025119029199 + c[1] * z * 0.4886025119029199
                           + c[2] * x * -0.4886025119029199)  # fmt: skip
    if len(sh) > 2:
        c = sh[2]
        colour = colour + (c[0] * x * y * 1.092548430592079
                           + c[1] * y * z * -1.092548430592079
                           + c[2] * (2 * z * z - x * x - y * y) * 0.3153915652525200
                           + c[3] * x * z * -1.092548430592079
                           + c[4] * (x * x - y * y) * 0.5462742152960395)  # fmt: skip
    if len(sh) > 3:
        c = sh[3]
        colour = colour + (c[0] * y * (3 * x * x - y * y) * -0.5900435899266435
                           + c[1] * x * y * z * 2.890611442640554
                           + c[2] * y * (4 * z * z - x * x - y * y) * -0.4570457994644657
                           + c[3] * z * (2 * z * z - 3 * x * x - 3 * y * y) * 0.3731763325901154
                           + c[4] * x * (4 * z * z - x * x - y * y) * -0.4570457994644657
                           + c[5] * z * (x * x - y * y) * 1.445305721320277
                           + c[6] * x * (x * x - 3 * y * y) * -0.5900435899266435)  # fmt: skip
    return colour


def test_gltf_export_follows_the_extension_and_keeps_the_avatar(run_dir):
    folder, p = run_dir
    assert main(["export", str(folder), "--format", "gltf"]) == 0
    doc, attr = read_glb(folder / "save" / "avatar_splats.glb")  # avatar.glb is the mesh's

    # The document: one POINTS primitive with the extension, used but not required.
    assert doc["asset"]["version"] == "2.0"
    assert doc["extensionsUsed"] == [KHR]
    assert KHR not in doc.get("extensionsRequired", [])
    primitive = doc["meshes"][0]["primitives"][0]
    assert primitive["mode"] == 0
    assert primitive["extensions"][KHR] == {"kernel": "ellipse",
                                            "colorSpace": "srgb_rec709_display",
                                            "projection": "perspective",
                                            "sortingMethod": "cameraDistance"}  # fmt: skip
    sh_names = [f"{KHR}:SH_DEGREE_{lvl}_COEF_{m}" for lvl in range(4) for m in range(2 * lvl + 1)]
    splat = [f"{KHR}:ROTATION", f"{KHR}:SCALE", f"{KHR}:OPACITY"]
    assert set(primitive["attributes"]) == {"POSITION", "COLOR_0", *splat, *sh_names}
    node = doc["nodes"][doc["scenes"][doc["scene"]]["nodes"][0]]
    assert not {"matrix", "rotation", "scale", "translation"} & set(node)  # data in glTF frame
    accessors = {s: doc["accessors"][i] for s, i in primitive["attributes"].items()}
    assert {a["count"] for a in accessors.values()} == {N}
    assert accessors[f"{KHR}:OPACITY"]["type"] == "SCALAR"
    assert accessors[f"{KHR}:ROTATION"]["type"] == "VEC4"

    # Positions: rotated z-up -> y-up (the avatar's up +y, front +z, left +x), min / max.
    pos = attr["POSITION"]
    np.testing.assert_allclose(pos, p["means"] @ R.T, atol=1e-6)
    np.testing.assert_allclose(accessors["POSITION"]["min"], pos.min(axis=0), atol=1e-6)
    np.testing.assert_allclose(accessors["POSITION"]["max"], pos.max(axis=0), atol=1e-6)

    # Colour, opacity, scale: the conventions of our other formats.
    base = 0.5 + SH_C0 * p["sh0"][:, 0]
    np.testing.assert_allclose(0.5 + SH_C0 * attr[f"{KHR}:SH_DEGREE_0_COEF_0"], base, atol=1e-6)
    opacity = sigmoid(p["opacities"])
    np.testing.assert_allclose(attr[f"{KHR}:OPACITY"][:, 0], opacity, atol=1e-6)
    np.testing.assert_allclose(attr[f"{KHR}:SCALE"], np.exp(p["scales"]), rtol=1e-6)
    # COLOR_0 (the point-cloud fallback) holds linear values, as glTF vertex colours do.
    srgb = base.clip(0, 1)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(attr["COLOR_0"], np.c_[linear, opacity], atol=1e-6)

    # Rotations: unit xyzw; each Gaussian's axes turned by the same R, so the covariance
    # the specification builds (M C C^T M^T, M = identity) is R Sigma_ours R^T.
    q = attr[f"{KHR}:ROTATION"]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(spec_rotation(q), R @ rotmat_wxyz(p["quats"]), atol=1e-5)
    c = spec_rotation(q) * attr[f"{KHR}:SCALE"][:, None, :]
    ours = rotmat_wxyz(p["quats"]) * np.exp(p["scales"])[:, None, :]
    np.testing.assert_allclose(c @ c.transpose(0, 2, 1),
                               R @ ours @ ours.transpose(0, 2, 1) @ R.T, atol=1e-9)  # fmt: skip

    # View-dependent colour: the file's SH seen from R d is ours seen from d (spec formula).
    g = np.random.default_rng(1)
    d = g.normal(size=(N, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    bands = [p["sh0"]] + [p["shN"][:, lvl * lvl - 1 : (lvl + 1) ** 2 - 1] for lvl in (1, 2, 3)]
    ours_sh = [[b[:, m] for m in range(b.shape[1])] for b in bands]
    file_sh = [[attr[f"{KHR}:SH_DEGREE_{lvl}_COEF_{m}"] for m in range(2 * lvl + 1)]
               for lvl in range(4)]  # fmt: skip
    expected = spec_sh_colour(ours_sh, d)
    np.testing.assert_allclose(spec_sh_colour(file_sh, d @ R.T), expected, atol=1e-5)
    assert np.abs(spec_sh_colour(file_sh, d) - expected).max() > 0.05  # the test can fail


def test_gltf_and_spz_never_overwrite_and_refuse_broken_gaussians(tmp_path, capsys):
    params = random_params(n=20, sh_degree=1)
    save_ply(tmp_path / "save" / "gaussians.ply", params)
    save_ply(tmp_path / "save" / "stage1.ply", params)
    for fmt, name in (("gltf", "avatar_splats.glb"), ("spz", "avatar.spz")):
        assert main(["export", str(tmp_path), "--format", fmt]) == 0
        written = tmp_path / "save" / name
        before = written.read_bytes()
        assert main(["export", str(tmp_path), "--format", fmt]) == 2
        assert "exists" in capsys.readouterr().err
        assert written.read_bytes() == before
        assert main(["export", str(tmp_path), "--format", fmt, "--force"]) == 0
    assert main(["export", str(tmp_path), "--format", "gltf", "--stage", "stage1"]) == 0
    assert (tmp_path / "save" / "avatar_stage1_splats.glb").is_file()

    # NaN / Inf Gaussians: refused with their count; nothing written, nothing changed.
    broken = {k: v.clone() for k, v in params.items()}
    broken["means"][3, 1] = float("nan")
    broken["opacities"][7] = float("inf")
    bad = tmp_path / "bad"
    save_ply(bad / "save" / "gaussians.ply", broken)
    ply_before = (bad / "save" / "gaussians.ply").read_bytes()
    for fmt in ("gltf", "spz"):
        assert main(["export", str(bad), "--format", fmt]) == 2
        err = capsys.readouterr().err
        assert "2 of the avatar's 20 Gaussians are broken" in err
        assert "Traceback" not in err
    assert sorted(p.name for p in (bad / "save").iterdir()) == ["gaussians.ply"]
    assert (bad / "save" / "gaussians.ply").read_bytes() == ply_before


# --- independent readers from npm --------------------------------------------------------


@pytest.fixture(scope="module")
def npm_readers() -> Path:
    """``tests/js/splat_readers`` with its node_modules (``npm ci`` on first use)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node / npm are not installed: the npm readers cannot be installed")
    wanted = json.loads((READERS / "package.json").read_text())["dependencies"]
    have = all((READERS / "node_modules" / name / "package.json").is_file() for name in wanted)
    if not have:
        run = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=READERS, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if run.returncode:
            pytest.skip(f"npm could not install the readers: {run.stderr.strip()[-400:]}")
    return READERS


def test_babylon_js_reads_our_gltf_like_our_ply(run_dir, npm_readers, tmp_path):
    folder, p = run_dir
    assert main(["export", str(folder), "--format", "gltf"]) == 0
    out = tmp_path / "babylon"
    run = subprocess.run(
        ["node", "babylon_read.mjs", str(folder / "save" / "avatar_splats.glb"), str(out)],
        cwd=npm_readers, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["meshes"] == 1 and report["count"] == N and report["shDegree"] == 3

    raw = np.fromfile(f"{out}.bin", dtype=np.uint8).reshape(N, 32)
    position = raw[:, 0:12].copy().view("<f4").astype(np.float64)
    scale = raw[:, 12:24].copy().view("<f4").astype(np.float64)
    rgba = raw[:, 24:28] / 255.0
    quat = (raw[:, 28:32] - 127.5) / 127.5  # wxyz
    base = 0.5 + SH_C0 * p["sh0"][:, 0]
    opacity = sigmoid(p["opacities"])
    # The check: same count, mean colour and opacity as our PLY ...
    np.testing.assert_allclose(rgba[:, :3].mean(axis=0), base.clip(0, 1).mean(axis=0), atol=1e-3)
    assert abs(rgba[:, 3].mean() - opacity.mean()) < 1e-3
    # ... and each Gaussian, within Babylon's 8-bit storage.
    assert np.abs(rgba[:, :3] - base.clip(0, 1)).max() <= 0.5 / 255 + 1e-6
    assert np.abs(rgba[:, 3] - opacity).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_allclose(position, p["means"] @ R.T, atol=1e-6)
    np.testing.assert_allclose(scale, np.exp(p["scales"]), rtol=1e-6)
    turned = spec_rotation(quat[:, [1, 2, 3, 0]] / np.linalg.norm(quat, axis=1, keepdims=True))
    assert np.abs(turned - R @ rotmat_wxyz(p["quats"])).max() < 0.03
    # SH: 45 coefficients a Gaussian, each as a byte coefficient * 128 + 128, 16 bytes per
    # Gaussian in each of its textures; compare with the file's (rotated) coefficients.
    sh = np.fromfile(f"{out}.sh.bin", dtype=np.uint8).reshape(report["shTextures"], N, 16)
    sh = sh.transpose(1, 0, 2).reshape(N, -1)[:, :45].astype(np.float64)
    _, attr = read_glb(folder / "save" / "avatar_splats.glb")
    names = [f"{KHR}:SH_DEGREE_{lvl}_COEF_{m}" for lvl in (1, 2, 3) for m in range(2 * lvl + 1)]
    file_sh = np.stack([attr[name] for name in names], axis=1).reshape(N, 45)
    assert np.abs((sh - 128) / 128 - file_sh.clip(-1, 127 / 128)).max() <= 0.5 / 128 + 1e-6


def test_niantics_spz_library_reads_our_spz_like_our_ply(run_dir, npm_readers, tmp_path):
    folder, p = run_dir
    assert main(["export", str(folder), "--format", "spz"]) == 0
    spz = folder / "save" / "avatar.spz"
    assert spz.stat().st_size < (folder / "save" / "gaussians.ply").stat().st_size / 3
    out = tmp_path / "niantic"
    run = subprocess.run(["node", "spz_read.mjs", str(spz), str(out)], cwd=npm_readers,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"count": N, "shDegree": 3}
    flat = np.fromfile(f"{out}.bin", dtype="<f4").astype(np.float64)
    sizes = {"positions": 3, "scales": 3, "rotations": 4, "alphas": 1, "colors": 3, "sh": 45}
    assert flat.size == N * sum(sizes.values())
    cloud, start = {}, 0
    for name, k in sizes.items():
        cloud[name] = flat[start : start + N * k].reshape(N, k)
        start += N * k

    # Same frame as our PLY (no flip); 12 fractional bits of fixed point.
    np.testing.assert_allclose(cloud["positions"], p["means"], atol=0.5 / 4096 + 1e-6)
    base = 0.5 + SH_C0 * p["sh0"][:, 0]
    colour = 0.5 + SH_C0 * cloud["colors"]
    opacity = sigmoid(cloud["alphas"][:, 0])
    # The check: same count, mean colour and opacity as our PLY ...
    np.testing.assert_allclose(colour.mean(axis=0), base.mean(axis=0), atol=1e-3)
    assert abs(opacity.mean() - sigmoid(p["opacities"]).mean()) < 1e-3
    # ... and each Gaussian, within SPZ's quantisation.
    assert np.abs(colour - base).max() <= 1 / 255
    assert np.abs(opacity - sigmoid(p["opacities"])).max() <= 1 / 255
    assert np.abs(cloud["scales"] - p["scales"]).max() <= 1 / 32 + 1e-6
    unit = p["quats"] / np.linalg.norm(p["quats"], axis=1, keepdims=True)
    dot = np.abs((cloud["rotations"][:, [3, 0, 1, 2]] * unit).sum(axis=1))  # xyzw -> wxyz
    assert dot.min() > 0.999
    sh = p["shN"].reshape(N, 45)  # [N, K, 3] coefficient-major, as SPZ's
    assert np.abs(cloud["sh"] - sh.clip(-1, 127 / 128)).max() <= 0.5 / 128 + 1e-6


def figure_params() -> dict[str, torch.Tensor]:
    """A flat figure in our frame (z up, facing +x): a 1.5 m body of two opaque slabs, the
    front one green on the figure's left (+y) and red on its right, the back one blue, and
    a yellow head on top."""
    means, colours = [], []

    def slab(x: float, y: tuple[float, float], z: tuple[float, float], rgb: list[float]):
        ys, zs = torch.arange(*y, 0.025), torch.arange(*z, 0.025)
        grid_y, grid_z = torch.meshgrid(ys, zs, indexing="ij")
        points = torch.stack([torch.full_like(grid_y, x), grid_y, grid_z], -1).reshape(-1, 3)
        means.append(points)
        colours.append(torch.tensor(rgb).expand(len(points), 3))

    slab(0.08, (0.0, 0.25), (-0.9, 0.6), [0.1, 0.9, 0.1])  # front, the figure's left
    slab(0.08, (-0.25, 0.0), (-0.9, 0.6), [0.9, 0.1, 0.1])  # front, its right
    slab(-0.08, (-0.25, 0.25), (-0.9, 0.6), [0.1, 0.1, 0.9])  # back
    for x in (0.08, -0.08):
        slab(x, (-0.1, 0.1), (0.65, 0.9), [0.9, 0.9, 0.1])  # head
    points, rgb = torch.cat(means), torch.cat(colours)
    n = len(points)
    return {
        "means": points,
        "scales": torch.full((n, 3), math.log(0.015)),
        "quats": torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4).clone(),
        "opacities": torch.full((n,), 4.0),
        "sh0": ((rgb - 0.5) / SH_C0)[:, None],
        "shN": torch.zeros(n, 0, 3),
    }


def test_babylon_js_draws_our_gltf_upright_facing_its_front(npm_readers, tmp_path):
    if chromium_binary() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    save_ply(tmp_path / "save" / "gaussians.ply", figure_params())
    assert main(["export", str(tmp_path), "--format", "gltf"]) == 0
    glb = base64.b64encode((tmp_path / "save" / "avatar_splats.glb").read_bytes()).decode()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(npm_readers))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shots = {}
    try:
        with HeadlessChromium(320, 320, timeout=90) as browser:
            browser.open(f"http://127.0.0.1:{server.server_port}/babylon_view.html")
            deadline = time.monotonic() + 90
            while browser.evaluate("window.babylonReady === true") is not True:
                assert time.monotonic() < deadline, "Babylon.js did not load"
                time.sleep(0.2)
            browser.evaluate(f"showGlb('{glb}')")
            # Babylon's camera at +z sees glTF's front; at -z the back.
            for view, alpha in (("front", math.pi / 2), ("back", -math.pi / 2)):
                browser.evaluate(f"look({alpha})")
                while browser.evaluate("window.drawn") is None:
                    assert time.monotonic() < deadline, f"Babylon.js drew no {view} view"
                    time.sleep(0.2)
                assert browser.evaluate("window.drawn") == 1  # one GaussianSplattingMesh
                shots[view] = browser.screenshot().astype(int)
    finally:
        server.shutdown()

    def colour(image: np.ndarray, name: str) -> np.ndarray:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        hi, lo = 150, 90
        return {"red": (r > hi) & (g < lo) & (b < lo), "green": (g > hi) & (r < lo) & (b < lo),
                "blue": (b > hi) & (r < lo) & (g < lo),
                "yellow": (r > hi) & (g > hi) & (b < lo)}[name]  # fmt: skip

    front = shots["front"]
    rows, cols = np.nonzero(front.sum(axis=-1) > 60)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    assert height > 2.5 * width  # upright: 1.8 m tall, 0.5 m wide
    head_rows = np.nonzero(colour(front, "yellow"))[0]
    assert head_rows.max() < rows.min() + 0.2 * height  # the head on top
    red, green = colour(front, "red"), colour(front, "green")
    assert red.sum() > 1000 and green.sum() > 1000 and colour(front, "blue").sum() < 20
    # Facing the viewer: the figure's left (green) on the picture's right, as a person's.
    assert np.nonzero(green)[1].mean() > np.nonzero(red)[1].mean() + 0.3 * width
    # Colours as stored (0.9 / 0.1 of 255), not washed out or darkened.
    np.testing.assert_allclose(np.median(front[red], axis=0), [230, 25, 25], atol=20)
    back = shots["back"]
    assert colour(back, "blue").sum() > 2000
    assert colour(back, "red").sum() + colour(back, "green").sum() < 20
