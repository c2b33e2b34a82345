"""``gaussianip export`` and our PLY: every file is read back by a reader that is not the
writer's code (plyfile, and decoders written here from the formats' specifications) and
compared with the model, colours and opacities included (the washed-out-colours bug:
sRGB-converted or premultiplied colours)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from plyfile import PlyData
from scipy.spatial import cKDTree

from gaussianip.cli import main
from gaussianip.gaussians import save_ply
from gaussianip.gaussians.model import SH_C0

N = 3 * 256 + 1  # the last compressed-PLY chunk holds one Gaussian: flat bounds


def random_params(n: int = N, sh_degree: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rest = (sh_degree + 1) ** 2 - 1
    return {
        "means": torch.rand(n, 3, generator=g) * 2 - 1,
        "scales": torch.rand(n, 3, generator=g) * 4 - 7,  # 1 mm .. 5 cm
        "quats": torch.randn(n, 4, generator=g) * 2,  # unnormalised, as optimised
        "opacities": torch.randn(n, generator=g) * 2,
        "sh0": (torch.rand(n, 1, 3, generator=g) - 0.5) / SH_C0,  # colours in [0, 1]
        "shN": torch.randn(n, rest, 3, generator=g) * 0.3,
    }


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def unit_wxyz(q: np.ndarray) -> np.ndarray:
    """Normalised, sign-fixed (largest |component| positive) quaternions."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    largest = np.abs(q).argmax(axis=1)
    return q * np.sign(q[np.arange(len(q)), largest])[:, None]


@pytest.fixture
def run_dir(tmp_path):
    params = random_params()
    save_ply(tmp_path / "save" / "gaussians.ply", params)
    return tmp_path, {k: v.numpy() for k, v in params.items()}


def test_our_ply_is_the_standard_3dgs_layout(run_dir):
    folder, p = run_dir
    vertex = PlyData.read(str(folder / "save" / "gaussians.ply"))["vertex"]
    rest = p["shN"].shape[1] * 3
    expected = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                + [f"f_rest_{i}" for i in range(rest)]
                + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2",
                   "rot_3"])  # fmt: skip
    assert list(vertex.data.dtype.names) == expected
    assert all(vertex.data.dtype[name] == np.float32 for name in expected)
    for i, axis in enumerate("xyz"):
        np.testing.assert_array_equal(vertex[axis], p["means"][:, i])
        np.testing.assert_array_equal(vertex[f"n{axis}"], 0)
        np.testing.assert_array_equal(vertex[f"scale_{i}"], p["scales"][:, i])  # log scales
        np.testing.assert_array_equal(vertex[f"f_dc_{i}"], p["sh0"][:, 0, i])
    for i in range(4):
        np.testing.assert_array_equal(vertex[f"rot_{i}"], p["quats"][:, i])  # wxyz, raw
    np.testing.assert_array_equal(vertex["opacity"], p["opacities"])  # logit
    bands = p["shN"].shape[1]  # channel-major: red's bands, then green's, then blue's
    for channel in range(3):
        for band in range(bands):
            np.testing.assert_array_equal(vertex[f"f_rest_{channel * bands + band}"],
                                          p["shN"][:, band, channel])  # fmt: skip


def read_splat(path) -> dict[str, np.ndarray]:
    """antimatter15's .splat, from its specification: 32-byte records."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 32)
    return {
        "position": raw[:, 0:12].copy().view("<f4"),
        "scale": raw[:, 12:24].copy().view("<f4"),
        "rgba": raw[:, 24:28].astype(float) / 255,
        "rot": (raw[:, 28:32].astype(float) - 128) / 128,
    }


def test_splat_export_keeps_colours_opacities_and_shapes(run_dir):
    folder, p = run_dir
    assert main(["export", str(folder), "--format", "splat"]) == 0
    out = read_splat(folder / "save" / "avatar.splat")
    assert len(out["position"]) == N
    index = cKDTree(p["means"]).query(out["position"])[1]
    np.testing.assert_array_equal(out["position"], p["means"][index])
    np.testing.assert_allclose(out["scale"], np.exp(p["scales"][index]), rtol=1e-6)
    colour = np.clip(0.5 + SH_C0 * p["sh0"][index, 0], 0, 1)  # the SH DC colour, not sRGB
    np.testing.assert_allclose(out["rgba"][:, :3], colour, atol=0.5 / 255 + 1e-6)
    alpha = sigmoid(p["opacities"][index])  # straight, not premultiplied
    np.testing.assert_allclose(out["rgba"][:, 3], alpha, atol=0.5 / 255 + 1e-6)
    # quaternions: 8 bits a component, up to sign
    q = unit_wxyz(p["quats"][index])
    dot = np.abs((q * out["rot"]).sum(axis=1)) / np.linalg.norm(out["rot"], axis=1)
    assert dot.min() > 0.999
    # biggest and most opaque first (antimatter15's order)
    importance = np.exp(p["scales"][index].sum(axis=1)) * alpha
    assert np.all(np.diff(importance) <= 1e-9)


def unpack(words: np.ndarray, bits: list[int]) -> list[np.ndarray]:
    """Unsigned fields of ``bits`` widths, most significant first, each as a unorm."""
    out, shift = [], sum(bits)
    for width in bits:
        shift -= width
        out.append(((words >> shift) & ((1 << width) - 1)) / ((1 << width) - 1))
    return out


def read_compressed_ply(path) -> dict[str, np.ndarray]:
    """SuperSplat's compressed PLY, decoded from its specification (PlayCanvas)."""
    ply = PlyData.read(str(path))
    chunk, vertex = ply["chunk"].data, ply["vertex"].data
    c = np.arange(len(vertex)) // 256

    def lerp(names_min, names_max, t):
        low = np.stack([chunk[n][c] for n in names_min], 1)
        high = np.stack([chunk[n][c] for n in names_max], 1)
        return low + (high - low) * np.stack(t, 1)

    xyz = [f"min_{a}" for a in "xyz"], [f"max_{a}" for a in "xyz"]
    position = lerp(*xyz, unpack(vertex["packed_position"].astype(np.int64), [11, 10, 11]))
    sxyz = [f"min_scale_{a}" for a in "xyz"], [f"max_scale_{a}" for a in "xyz"]
    log_scale = lerp(*sxyz, unpack(vertex["packed_scale"].astype(np.int64), [11, 10, 11]))
    rgba = unpack(vertex["packed_color"].astype(np.int64), [8, 8, 8, 8])
    rgb = [f"min_{a}" for a in "rgb"], [f"max_{a}" for a in "rgb"]
    colour = lerp(*rgb, rgba[:3])
    words = vertex["packed_rotation"].astype(np.int64)
    largest = words >> 30
    small = (np.stack(unpack(words & 0x3FFFFFFF, [10, 10, 10]), 1) - 0.5) * math.sqrt(2)
    rot = np.zeros((len(words), 4))
    for i in range(4):
        others = [j for j in range(4) if j != i]
        rows = largest == i
        rot[np.ix_(rows, others)] = small[rows]
        rot[rows, i] = np.sqrt(np.clip(1 - (small[rows] ** 2).sum(axis=1), 0, 1))
    out = {"position": position, "log_scale": log_scale, "colour": colour,
           "alpha": rgba[3], "rot": rot}  # fmt: skip
    if "sh" in ply:
        names = ply["sh"].data.dtype.names
        quantised = np.stack([ply["sh"].data[n] for n in names], 1).astype(float)
        out["f_rest"] = (quantised / 256 - 0.5) * 8
    return out


def test_compressed_ply_export_decodes_to_the_model(run_dir):
    folder, p = run_dir
    out_file = folder / "web" / "avatar.compressed.ply"
    assert main(["export", str(folder / "save"), "--format", "compressed-ply",
                 "--out", str(out_file)]) == 0  # fmt: skip
    out = read_compressed_ply(out_file)
    assert len(out["position"]) == N and all(np.isfinite(v).all() for v in out.values())
    index = cKDTree(p["means"]).query(out["position"])[1]
    assert len(set(index.tolist())) == N  # every Gaussian once
    extent = np.ptp(p["means"], axis=0)  # 11/10-bit positions within a chunk's box
    assert (np.abs(out["position"] - p["means"][index]) <= extent / 1023).all()
    assert np.abs(out["log_scale"] - p["scales"][index]).max() < 4 / 1023 + 1e-4
    colour = 0.5 + SH_C0 * p["sh0"][index, 0]
    assert np.abs(out["colour"] - colour).max() < 0.5 / 255 + 1e-5
    assert np.abs(out["alpha"] - sigmoid(p["opacities"][index])).max() < 0.5 / 255 + 1e-6
    dot = np.abs((unit_wxyz(p["quats"][index]) * out["rot"]).sum(axis=1))
    assert dot.min() > 0.998
    rest = p["shN"][index].transpose(0, 2, 1).reshape(N, -1)  # channel-major, like the PLY
    assert np.abs(out["f_rest"] - np.clip(rest, -4, 4)).max() <= 8 / 256 + 1e-6


def test_export_never_overwrites_and_names_bad_input(run_dir, tmp_path, capsys):
    folder, _ = run_dir
    assert main(["export", str(folder), "--format", "ply"]) == 0
    written = folder / "save" / "avatar.ply"
    assert PlyData.read(str(written))["vertex"].count == N
    assert main(["export", str(folder), "--format", "ply"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["export", str(folder), "--format", "ply", "--force"]) == 0
    assert main(["export", str(folder), "--format", "splat", "--stage", "stage1"]) == 2
    assert "no stage1 avatar" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), "--format", "splat"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(folder), "--format", "usdz"])
