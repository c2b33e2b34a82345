"""Animatable avatars: skeleton, binding, ``pose_gaussians``, motions, ``animate``."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.synthetic_smplx import write_synthetic_smplx

from gaussianip.animate import render_params
from gaussianip.body import build_body_model
from gaussianip.cameras import look_at
from gaussianip.errors import AssetError
from gaussianip.gaussians import save_ply
from gaussianip.motion import (
    DEFAULT_BODY_JOINT_MAP,
    animate_params,
    list_shipped_motions,
    load_motion,
    local_rotations,
    motion_joint_transforms,
)
from gaussianip.rig import (
    Binding,
    bind_gaussians,
    build_rig,
    load_rig,
    pose_gaussians,
    save_rig,
    skeleton_of,
)
from gaussianip.rig.rotations import axis_angle_to_matrix, quat_to_matrix

SMPLX_Z_UP = [math.pi / 2, 0.0, 0.0]  # AMASS's root rotation of an upright body


@pytest.fixture(scope="module")
def body():
    return build_body_model("default")


def _gaussians(body, n=300, seed=0, offset=0.0):
    """Anisotropic Gaussians near the body surface (pre-activation params)."""
    g = torch.Generator().manual_seed(seed)
    points, normals = body.sample_surface(n, g)
    return {
        "means": points + offset * normals,
        "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        "scales": torch.log(torch.tensor([0.03, 0.01, 0.005])).repeat(n, 1),
        "opacities": torch.full((n,), 2.0),
        "sh0": torch.rand(n, 1, 3, generator=g) - 0.5,
        "shN": torch.zeros(n, 0, 3),
    }


def _rigid(rotation, pivot):
    t = torch.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = pivot - rotation @ pivot
    return t


def _covariance(params):
    r = quat_to_matrix(params["quats"])
    s = torch.diag_embed(torch.exp(params["scales"]))
    return r @ s @ s @ r.transpose(-1, -2)


# ---------------------------------------------------------------- pose_gaussians


def _reference_pose(params, idx, w, transforms):
    """Per Gaussian, explicitly: blend the 4x4s, take the SVD's rotation, compose."""
    means, quats = [], []
    for i in range(params["means"].shape[0]):
        m = sum(float(w[i, k]) * transforms[int(idx[i, k])] for k in range(idx.shape[1]))
        x = torch.cat([params["means"][i].double(), torch.ones(1, dtype=torch.float64)])
        means.append((m.double() @ x)[:3])
        u, _, vh = torch.linalg.svd(m[:3, :3].double())
        quats.append(u @ vh @ quat_to_matrix(params["quats"][i].double()))
    return torch.stack(means), torch.stack(quats)


def test_pose_gaussians_matches_an_explicit_per_gaussian_reference(body):
    g = torch.Generator().manual_seed(1)
    params = _gaussians(body, n=64)
    j, k = 6, 3
    transforms = torch.stack([
        _rigid(axis_angle_to_matrix(torch.randn(3, generator=g) * 0.8), torch.randn(3, generator=g))
        for _ in range(j)
    ])  # fmt: skip
    idx = torch.randint(0, j, (64, k), generator=g)
    w = torch.rand(64, k, generator=g)
    w = w / w.sum(1, keepdim=True)
    posed = pose_gaussians(params, Binding(idx, w), transforms)
    ref_means, ref_rot = _reference_pose(params, idx, w, transforms)
    assert torch.allclose(posed["means"].double(), ref_means, atol=1e-5)
    assert torch.allclose(quat_to_matrix(posed["quats"]).double(), ref_rot, atol=1e-4)
    assert torch.allclose(posed["quats"].norm(dim=-1), params["quats"].norm(dim=-1), atol=1e-5)
    for key in ("scales", "opacities", "sh0", "shN"):
        assert posed[key] is params[key]
    # Leading dimensions batch the poses: frame 1 equals a separate call.
    both = pose_gaussians(params, Binding(idx, w), torch.stack([torch.eye(4).expand(j, 4, 4),
                                                                transforms]))  # fmt: skip
    assert both["means"].shape == (2, 64, 3) and both["quats"].shape == (2, 64, 4)
    assert torch.allclose(both["means"][1], posed["means"], atol=1e-6)
    assert torch.allclose(both["means"][0], params["means"], atol=1e-6)


# ---------------------------------------------------------------- skeleton and rest pose


def test_default_body_has_a_skeleton_and_skin_weights(body):
    skeleton = skeleton_of(body)
    assert skeleton.num_joints == len(body.joint_names) == body.skin_weights.shape[1]
    assert torch.allclose(body.skin_weights.sum(1), torch.ones(len(body.vertices)), atol=1e-5)
    assert set(DEFAULT_BODY_JOINT_MAP.values()) <= set(skeleton.names)
    # Left is +y; the wrists hang below the shoulders in the A-pose, and the zero pose
    # (a T-pose) lifts each arm level with its shoulder joint.
    left, wrist = skeleton.index("upperarm01.L"), skeleton.index("wrist.L")
    assert skeleton.joints[left, 1] > 0 > skeleton.joints[skeleton.index("upperarm01.R"), 1]
    assert skeleton.joints[wrist, 2] < skeleton.joints[left, 2] - 0.2
    zero = skeleton.zero_pose_joints()
    assert abs(float(zero[wrist, 2] - zero[left, 2])) < 0.02
    assert torch.allclose(skeleton.joint_transforms(skeleton.apose_rotations),
                          torch.eye(4).expand(skeleton.num_joints, 4, 4), atol=1e-5)  # fmt: skip


def test_rest_pose_reproduces_the_canonical_render(body):
    params = _gaussians(body, n=400)
    rig = build_rig(params["means"], body)
    rest = rig.skeleton.joint_transforms(rig.skeleton.apose_rotations)
    posed = pose_gaussians(params, rig.binding, rest)
    c2w = look_at(torch.tensor([[3.0, 0.5, 0.3]]), torch.zeros(1, 3))[0]
    fovy = torch.tensor(math.radians(40.0))
    canonical = render_params(params, c2w, fovy, 64)
    again = render_params(posed, c2w, fovy, 64)
    assert canonical.max() > 0.2  # the body is in view
    assert (canonical - again).abs().max() < 1e-5


def test_rotating_one_joint_moves_only_its_subtree(body):
    params = _gaussians(body, n=3000, seed=2)
    rig = build_rig(params["means"], body)
    s = rig.skeleton
    elbow = s.index("lowerarm01.L")
    rotation = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 1.2]))
    local = s.apose_rotations.clone()
    local[elbow] = rotation @ local[elbow]
    posed = pose_gaussians(params, rig.binding, s.joint_transforms(local))

    weights = rig.binding.dense(s.num_joints)
    inside = weights[:, s.subtree(elbow)].sum(1)
    outside, owned = inside == 0, inside > 1 - 1e-6
    assert outside.sum() > 2000 and owned.sum() > 20
    # Outside the subtree every transform is the identity (up to float rounding).
    assert torch.allclose(posed["means"][outside], params["means"][outside], atol=1e-6)
    moved = (posed["means"][owned] - params["means"][owned]).norm(dim=1)
    assert moved.max() > 0.1
    # Owned Gaussians turn rigidly about the elbow: centres and covariances. Local
    # rotations are in the zero pose's axes; the upper arm's A-pose turn carries that
    # axis into the canonical frame.
    upper = s.apose_rotations[s.index("upperarm01.L")]
    rotation = upper @ rotation @ upper.T
    pivot = s.joints[elbow]
    expected = (params["means"][owned] - pivot) @ rotation.T + pivot
    assert torch.allclose(posed["means"][owned], expected, atol=1e-5)
    cov = _covariance({k: v[owned] for k, v in params.items()})
    assert torch.allclose(_covariance({k: v[owned] for k, v in posed.items()}),
                          rotation @ cov @ rotation.T, atol=1e-7)  # fmt: skip


# ---------------------------------------------------------------- binding


def test_far_gaussians_take_the_weights_of_their_nearest_surface_point():
    vertices = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    skin = torch.eye(4)  # vertex i belongs to joint i
    means = torch.tensor([
        [0.7, 0.2, 0.05],  # just above triangle 0
        [0.7, 0.2, 3.0],  # far above the same point
        [0.2, 0.7, -1.0],  # below triangle 1
        [2.0, 0.5, 0.5],  # beyond the edge x = 1: nearest point (1, 0.5, 0)
    ])  # fmt: skip
    binding = bind_gaussians(means, vertices, faces, skin, top_k=4)
    dense = binding.dense(4)
    # Barycentric weights of (0.7, 0.2) in (v0, v1, v2): (0.3, 0.5, 0.2).
    assert torch.allclose(dense[0], torch.tensor([0.3, 0.5, 0.2, 0.0]), atol=1e-5)
    assert torch.allclose(dense[1], dense[0], atol=1e-5)
    assert torch.allclose(dense[2], torch.tensor([0.3, 0.0, 0.2, 0.5]), atol=1e-5)
    assert torch.allclose(dense[3], torch.tensor([0.0, 0.5, 0.5, 0.0]), atol=1e-5)


def test_rig_file_round_trip_and_no_overwrite(body, tmp_path):
    params = _gaussians(body, n=200, offset=0.1)  # loose "clothing" 10 cm off the skin
    rig = build_rig(params["means"], body)
    assert rig.binding.joint_weights.sum(1).allclose(torch.ones(200), atol=1e-5)
    path = save_rig(tmp_path / "avatar_rig.npz", rig)
    loaded = load_rig(path)
    assert loaded.body == "default" and loaded.skeleton.names == rig.skeleton.names
    assert torch.equal(loaded.binding.joint_indices, rig.binding.joint_indices)
    assert torch.allclose(loaded.binding.joint_weights, rig.binding.joint_weights, atol=2e-3)
    before = path.read_bytes()
    with pytest.raises(AssetError, match="exists"):
        save_rig(path, rig)
    assert path.read_bytes() == before
    data = dict(np.load(path))
    data["joints"] = data["joints"][:, :2]
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(AssetError, match=r"bad.npz.*'joints' has shape \(\d+, 2\)"):
        load_rig(tmp_path / "bad.npz")


# ---------------------------------------------------------------- motions


def _write_motion(path, frames=4, **extra):
    data = {"poses": np.zeros((frames, 165), np.float32), "trans": np.zeros((frames, 3)),
            "mocap_frame_rate": np.array(30.0)}  # fmt: skip
    data["poses"][:, :3] = SMPLX_Z_UP
    data.update(extra)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def test_shipped_motions_load():
    names = sorted(p.stem for p in list_shipped_motions())
    assert names == ["turn", "walk", "wave"]
    for path in list_shipped_motions():
        motion = load_motion(path)
        assert motion.fps == 30 and 30 <= motion.num_frames <= 120
        assert motion.axis_angles.abs().max() > 0.3  # it moves


def test_motion_layouts_agree(tmp_path):
    g = np.random.default_rng(0)
    poses = (g.normal(size=(5, 165)) * 0.3).astype(np.float32)
    trans = g.normal(size=(5, 3))
    full = load_motion(_write_motion(tmp_path / "x.npz", 5, poses=poses, trans=trans))
    split = tmp_path / "split.npz"
    np.savez(split, root_orient=poses[:, :3], pose_body=poses[:, 3:66],
             pose_hand=poses[:, 75:], trans=trans, mocap_framerate=np.array(30.0))  # fmt: skip
    other = load_motion(split)
    assert torch.equal(full.axis_angles[:, :22], other.axis_angles[:, :22])
    assert torch.equal(full.axis_angles[:, 25:], other.axis_angles[:, 25:])
    smplh = np.concatenate([poses[:, :66], poses[:, 75:]], axis=1)
    h = load_motion(_write_motion(tmp_path / "h.npz", 5, poses=smplh))
    assert torch.equal(h.axis_angles[:, 25:], full.axis_angles[:, 25:]) and h.has_hands


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("width.npz", {"poses": np.zeros((4, 70))},
         r"'poses' has shape \(4, 70\).*\[T, 165\]"),
        ("nan.npz", {"trans": np.full((4, 3), np.nan)}, r"'trans' holds NaN.*\[T, 3\]"),
        ("zero_fps.npz", {"mocap_frame_rate": np.array(0.0)},
         r"'mocap_frame_rate' is .*0\.0.*> 0"),
        ("no_fps.npz", {"mocap_frame_rate": None}, r"no frame rate.*'mocap_frame_rate'"),
        ("frames.npz", {"trans": np.zeros((3, 3))}, r"'trans' has 3 frames, expected 4"),
        ("empty.npz", {"poses": None, "trans": None}, r"no pose keys.*'poses' \[T, 165\]"),
    ],
)  # fmt: skip
def test_bad_motion_files_name_the_file_key_and_shape(tmp_path, name, extra, message):
    path = _write_motion(tmp_path / name, **extra)
    with pytest.raises(AssetError, match=rf"'{path}'.*{message}"):
        load_motion(path)


def test_not_a_motion_file(tmp_path):
    text = tmp_path / "walk.npz"
    text.write_text("not a zip")
    with pytest.raises(AssetError, match=r"walk.npz.*not an .npz.*'poses' \[T, 165\]"):
        load_motion(text)
    with pytest.raises(AssetError, match="not found.*load/motions/walk.npz"):
        load_motion(tmp_path / "missing.npz")


def test_smplx_a_pose_motion_is_the_rest_pose(tmp_path):
    """SMPL-X's own A-pose as motion parameters (in AMASS's z-up world, turned and moved)
    gives identity joint transforms: the retargeting conventions are consistent."""
    body = build_body_model("smplx", write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL.npz"))
    skeleton = skeleton_of(body)
    poses = np.zeros((1, 165), np.float32)
    heading = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.7]))
    root = heading @ axis_angle_to_matrix(torch.tensor(SMPLX_Z_UP))
    angle = torch.acos((root.trace() - 1) / 2)
    axis = torch.stack([root[2, 1] - root[1, 2], root[0, 2] - root[2, 0], root[1, 0] - root[0, 1]])
    poses[0, :3] = (axis / axis.norm() * angle).numpy()
    poses[0, 16 * 3 + 2] = -math.radians(45)  # left shoulder, as load_smplx lowers it
    poses[0, 17 * 3 + 2] = math.radians(45)
    motion = load_motion(_write_motion(tmp_path / "a.npz", 1, poses=poses,
                                       trans=np.array([[0.3, -1.0, 0.9]])))  # fmt: skip
    transforms = motion_joint_transforms(skeleton, motion)
    assert torch.allclose(transforms, torch.eye(4).expand_as(transforms), atol=1e-5)


def test_default_body_follows_a_motion(body, tmp_path):
    """A T-pose lifts the default body's arms level; a root translation moves everything."""
    rig = build_rig(_gaussians(body, n=50)["means"], body)
    s = rig.skeleton
    trans = np.array([[0.0, 0.0, 0.0], [0.0, -0.5, 0.0]])  # AMASS: facing -y, so 0.5 m forward
    motion = load_motion(_write_motion(tmp_path / "t.npz", 2, trans=trans))
    local, offset = local_rotations(motion, s)
    assert torch.allclose(offset[1], torch.tensor([0.5, 0.0, 0.0]), atol=1e-6)
    posed_joints = s.global_transforms(local)[:, :, :3, 3]
    shoulder, wrist = s.index("upperarm01.L"), s.index("wrist.L")
    assert abs(float(posed_joints[0, wrist, 2] - posed_joints[0, shoulder, 2])) < 0.02
    params = _gaussians(body, n=50)
    frame1 = animate_params(params, rig, motion, 1)
    zero = animate_params(params, rig, motion, 0)
    step = torch.tensor([0.5, 0.0, 0.0]).expand(50, 3)
    assert torch.allclose(frame1["means"] - zero["means"], step, atol=1e-5)
    with pytest.raises(AssetError, match="binds 50 Gaussians but the avatar has 49"):
        animate_params({k: v[:49] for k, v in params.items()}, rig, motion, 0)


# ---------------------------------------------------------------- the command


def test_animate_command_writes_video_rig_and_plys(body, tmp_path):
    save = tmp_path / "run" / "save"
    save.mkdir(parents=True)
    save_ply(save / "gaussians.ply", _gaussians(body, n=300))
    (tmp_path / "run" / "config.yaml").write_text("system:\n  body:\n    name: default\n")
    cmd = [sys.executable, "-m", "gaussianip", "animate", str(tmp_path / "run"),
           "--motion", "load/motions/wave.npz", "--resolution", "32", "--max-frames", "3",
           "--fps", "10"]  # fmt: skip
    done = subprocess.run(cmd + ["--ply-every", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "animate wave" in done.stderr  # the progress bar
    assert "avatar_rig.npz" in done.stdout and "animation.mp4" in done.stdout
    assert sorted(p.name for p in (save / "animation_ply").iterdir()) == [
        "frame_00000.ply", "frame_00006.ply"]  # fmt: skip
    rig_bytes = (save / "avatar_rig.npz").read_bytes()
    video = (save / "animation.mp4").read_bytes()
    again = subprocess.run(cmd + ["--camera", "orbit"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "animation-2.mp4" in again.stdout and "avatar_rig.npz" not in again.stdout
    assert (save / "avatar_rig.npz").read_bytes() == rig_bytes
    assert (save / "animation.mp4").read_bytes() == video
    bad = subprocess.run(cmd[:5] + ["--motion", str(tmp_path / "nothing.npz")],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "Motion file not found" in bad.stderr
