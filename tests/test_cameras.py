import math

import pytest
import torch

from gaussianip.cameras import (
    c2w_to_viewmat,
    intrinsics,
    look_at,
    project_points,
    spherical_to_position,
)
from gaussianip.config import parse_config
from gaussianip.data import HumanCameraConfig, HumanCameraSampler, ViewKind
from gaussianip.errors import ConfigError


def _camera(azimuth: float, elevation: float = 0.0, distance: float = 2.0):
    eye = spherical_to_position(
        torch.tensor([elevation]), torch.tensor([azimuth]), torch.tensor([distance])
    )
    c2w = look_at(eye, torch.zeros(1, 3))
    return c2w, c2w_to_viewmat(c2w), intrinsics(torch.tensor([math.radians(60.0)]), 64, 48)


def test_front_camera_sees_person_left_on_image_right_and_up_as_up():
    _, viewmat, K = _camera(azimuth=0.0)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.3]])
    uv, depth = project_points(points, viewmat, K)
    assert torch.allclose(uv[0, 0], torch.tensor([32.0, 24.0]))  # origin at the image centre
    assert uv[0, 1, 0] > 32.0  # +y (the person's left) on the right of the image
    assert uv[0, 2, 1] < 24.0  # +z above the centre (image y grows downwards)
    assert torch.allclose(depth, torch.full((1, 3), 2.0))


def test_projection_matches_pinhole_formula():
    _, viewmat, K = _camera(azimuth=30.0, elevation=10.0)
    point = torch.tensor([[0.1, -0.2, 0.3]])
    uv, depth = project_points(point, viewmat, K)
    cam = viewmat[0, :3, :3] @ point[0] + viewmat[0, :3, 3]
    focal = 0.5 * 48 / math.tan(math.radians(30.0))
    expected = torch.tensor([focal * cam[0] / cam[2] + 32, focal * cam[1] / cam[2] + 24])
    assert torch.allclose(uv[0, 0], expected, atol=1e-4)
    assert torch.isclose(depth[0, 0], cam[2])


def test_c2w_is_rigid_and_viewmat_is_its_opencv_inverse():
    c2w, viewmat, _ = _camera(azimuth=123.0, elevation=-20.0)
    rot = c2w[0, :3, :3]
    assert torch.allclose(rot @ rot.T, torch.eye(3), atol=1e-6)
    assert torch.isclose(torch.det(rot), torch.tensor(1.0))
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))
    assert torch.allclose(flip @ viewmat[0] @ c2w[0], torch.eye(4), atol=1e-5)


def test_sampler_batch_keys_shapes_and_units():
    sampler = HumanCameraSampler(HumanCameraConfig(batch_size=6, height=64, width=32))
    batch = sampler.sample(0, torch.Generator().manual_seed(0))
    assert batch["c2w"].shape == (6, 4, 4) and batch["mvp_mtx"].shape == (6, 4, 4)
    assert batch["intrinsics"].shape == (6, 3, 3) and batch["look_at"].shape == (6, 3)
    assert batch["height"] == 64 and batch["width"] == 32
    assert (batch["fovy"] >= math.radians(40) - 1e-6).all()
    assert (batch["fovy"] <= math.radians(70) + 1e-6).all()
    distance = (batch["camera_positions"] - batch["look_at"]).norm(dim=-1)
    assert torch.allclose(distance, batch["camera_distances"], atol=1e-5)


def test_no_close_ups_before_start_step_and_kind_ranges_after():
    cfg = HumanCameraConfig(batch_size=4000)
    sampler = HumanCameraSampler(cfg)
    early = sampler.sample(cfg.close_up_start_step - 1, torch.Generator().manual_seed(1))
    assert (early["view_kind"] == ViewKind.BODY).all()

    late = sampler.sample(cfg.close_up_start_step, torch.Generator().manual_seed(1))
    kind, dist, azim = late["view_kind"], late["camera_distances"], late["azimuth"]
    # Binomial proportions: 4000 draws, 5 standard deviations is about 0.035.
    assert abs((kind == ViewKind.HEAD).float().mean() - 0.25) < 0.035
    assert abs((kind == ViewKind.BACK).float().mean() - 0.20) < 0.035
    head, back, body = kind == ViewKind.HEAD, kind == ViewKind.BACK, kind == ViewKind.BODY
    assert dist[head].min() >= 0.4 and dist[head].max() <= 0.6
    assert dist[back].min() >= 0.6 and dist[back].max() <= 0.8
    assert dist[body].min() >= 1.3 and dist[body].max() <= 1.7
    assert azim[head].abs().max() <= 90.0  # front half
    assert azim[back].abs().min() >= 90.0  # back half
    assert torch.allclose(late["look_at"][head, 2], torch.tensor(cfg.head_height))


def test_sampler_is_deterministic_with_a_seed():
    sampler = HumanCameraSampler(HumanCameraConfig())
    a = sampler.sample(1500, torch.Generator().manual_seed(7))
    b = sampler.sample(1500, torch.Generator().manual_seed(7))
    assert torch.equal(a["c2w"], b["c2w"]) and torch.equal(a["view_kind"], b["view_kind"])


def test_refinement_ring_and_turntable():
    sampler = HumanCameraSampler(HumanCameraConfig())
    ring = sampler.refinement_ring()
    assert ring["c2w"].shape[0] == 32 and ring["height"] == 1024
    assert torch.allclose(ring["azimuth"], -180.0 + 11.25 * torch.arange(32.0))
    assert torch.allclose(ring["elevation"], torch.full((32,), 17.0))
    assert torch.allclose(ring["camera_distances"], torch.full((32,), 1.5))
    table = sampler.turntable(8)
    assert table["azimuth"][0] == 0.0 and torch.allclose(
        table["camera_distances"], torch.tensor(1.8)
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"height": 500}, "multiple of 8"),
        ({"head_prob": 1.5}, "probability"),
        ({"head_prob": 0.6, "back_prob": 0.6}, "<= 1"),
        ({"batch_size": 0}, ">= 1"),
        ({"camera_distance_range": [2.0, 1.0]}, "low <= high"),
        ({"fovy_rnage": [40, 70]}, "Did you mean 'fovy_range'"),
    ],
)
def test_bad_camera_settings_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(HumanCameraConfig, overrides, "data")
