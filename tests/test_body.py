import math

import numpy as np
import pytest
import torch
from helpers.synthetic_smplx import write_synthetic_smplx

from gaussianip.body import OPENPOSE_BODY_NAMES, BodyModel, build_body_model
from gaussianip.errors import BodyModelError

K = {name: i for i, name in enumerate(OPENPOSE_BODY_NAMES)}


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return build_body_model("default")


def test_default_body_is_in_our_frame(body):
    kp = body.body_keypoints
    assert kp.shape == (18, 3) and body.faces.shape[1] == 3
    assert body.height == pytest.approx(1.8, abs=1e-3)
    centre = (body.vertices.max(0).values + body.vertices.min(0).values) / 2
    assert torch.allclose(centre, torch.zeros(3), atol=1e-5)
    z = {name: kp[i, 2] for name, i in K.items()}
    for side in ("left", "right"):  # z up
        assert z[f"{side}_ankle"] < z[f"{side}_knee"] < z[f"{side}_hip"]
        assert z[f"{side}_hip"] < z[f"{side}_shoulder"] < z[f"{side}_eye"]
        assert z[f"{side}_wrist"] < z[f"{side}_shoulder"]  # arms down (A-pose)
    for name, i in K.items():  # the person's left at +y
        if name.startswith("left_"):
            assert kp[i, 1] > 0.02 and kp[K[name.replace("left_", "right_")], 1] < -0.02, name
    # The face looks at +x: nose and eyes in front of the head centre.
    for name in ("nose", "left_eye", "right_eye"):
        assert kp[K[name], 0] > body.head_center[0] + 0.05
    # A-pose: upper arms 45 +- 10 degrees below horizontal.
    arm = kp[K["left_elbow"]] - kp[K["left_shoulder"]]
    angle = math.degrees(math.atan2(-arm[2], arm[1]))
    assert 35 < angle < 55
    assert (body.hand_centers[1, 1] > 0.4) and (body.hand_centers[0, 1] < -0.4)


def _two_triangles() -> BodyModel:
    # Areas 0.5 and 1.5: a unit right triangle and one three times larger.
    vertices = torch.tensor(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [13, 0, 0], [10, 1, 0]], dtype=torch.float32
    )
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    z3 = torch.zeros(3)
    return BodyModel("two", vertices, faces, torch.zeros(18, 3), torch.zeros(0, 3), z3,
                     torch.zeros(2, 3))  # fmt: skip


def test_surface_sampling_is_area_uniform():
    mesh = _two_triangles()
    n = 40_000
    points, normals = mesh.sample_surface(n, torch.Generator().manual_seed(0))
    on_second = points[:, 0] >= 10
    # Binomial(n, 0.75): 5 standard deviations is about 0.011.
    assert abs(on_second.float().mean().item() - 0.75) < 0.011
    first = points[~on_second]
    assert (first[:, 0] >= 0).all() and (first[:, 1] >= 0).all()
    assert (first[:, 0] + first[:, 1] <= 1 + 1e-6).all()  # inside the triangle
    assert torch.allclose(normals.norm(dim=1), torch.ones(n))
    # Uniform inside a triangle: the mean is the centroid.
    assert torch.allclose(first[:, :2].mean(0), torch.tensor([1 / 3, 1 / 3]), atol=0.01)


def test_sampling_bad_count_and_unknown_body(body):
    with pytest.raises(BodyModelError, match="must be >= 1, got 0"):
        body.sample_surface(0)
    with pytest.raises(BodyModelError, match="Unknown body model 'robot'.*default"):
        build_body_model("robot")


def test_smplx_loads_from_a_synthetic_model_file(tmp_path):
    write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL.npz")
    for where in (tmp_path, tmp_path / "SMPLX_NEUTRAL.npz"):
        body = build_body_model("smplx", model_path=str(where))
        assert body.vertices.shape == (10475, 3) and body.face_keypoints.shape == (68, 3)
        centre = (body.vertices.max(0).values + body.vertices.min(0).values) / 2
        assert torch.allclose(centre, torch.zeros(3), atol=1e-5)
        kp = body.body_keypoints
        assert kp[K["left_shoulder"], 1] > 0 > kp[K["right_shoulder"], 1]  # left at +y
        assert kp[K["left_ankle"], 2] < kp[K["left_hip"], 2] < kp[K["neck"], 2]  # z up
        assert body.skin_weights.shape == (10475, 55)


def test_smplx_official_folder_layout(tmp_path):
    (tmp_path / "smplx").mkdir()
    write_synthetic_smplx(tmp_path / "smplx" / "SMPLX_NEUTRAL.npz")
    assert build_body_model("smplx", model_path=str(tmp_path)).name == "smplx"


def test_smplx_missing_files_say_where_to_get_them(tmp_path):
    with pytest.raises(BodyModelError, match="smpl-x.is.tue.mpg.de.*system.body.model_path"):
        build_body_model("smplx", model_path=str(tmp_path))
    with pytest.raises(BodyModelError, match="does not exist"):
        build_body_model("smplx", model_path=str(tmp_path / "nowhere"))


def test_smplx_malformed_files_are_named(tmp_path):
    good = write_synthetic_smplx(tmp_path / "good.npz")
    truncated = tmp_path / "SMPLX_NEUTRAL.npz"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(BodyModelError, match="not a zip archive|could not be read"):
        build_body_model("smplx", model_path=str(truncated))
    data = dict(np.load(good))
    del data["J_regressor"]
    np.savez(tmp_path / "nojreg.npz", **data)
    with pytest.raises(BodyModelError, match="missing 'J_regressor'"):
        build_body_model("smplx", model_path=str(tmp_path / "nojreg.npz"))
    data = dict(np.load(good))
    data["v_template"] = data["v_template"][:100]
    np.savez(tmp_path / "short.npz", **data)
    with pytest.raises(BodyModelError, match="'v_template' has shape"):
        build_body_model("smplx", model_path=str(tmp_path / "short.npz"))
    with pytest.raises(BodyModelError, match="gender"):
        build_body_model("smplx", model_path=str(good), gender="robot")


def test_bad_template_file(tmp_path):
    bad = tmp_path / "t.npz"
    np.savez(bad, vertices=np.zeros((3, 3)))
    with pytest.raises(BodyModelError, match="lacks faces.*build_default_body"):
        build_body_model("default", model_path=str(bad))
