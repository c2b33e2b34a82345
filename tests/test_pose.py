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
from gaussianip.pose import (
    COLORS,
    FACE_BODY_INDICES,
    LIMB_COLORS,
    LIMBS,
    draw_openpose,
    keypoint_visibility,
)

SIZE = 512
NOSE, NECK, R_EYE, L_EYE, R_EAR, L_EAR = 0, 1, 14, 15, 16, 17
HEAD_CENTER = torch.tensor([0.0, 0.0, 0.72])
HEAD_RADIUS = 0.11
WHITE = (255, 255, 255)


def _on_head(azimuth_deg: float, elevation_deg: float) -> list[float]:
    """A point on the head sphere; azimuth 0 is straight ahead (+x), 90 the left (+y)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    direction = torch.tensor([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az),
                              math.sin(el)])  # fmt: skip
    return (HEAD_CENTER + HEAD_RADIUS * direction).tolist()


def _a_pose() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 1.7 m person in A-pose, facing +x, z up, centred at the origin; the face points
    (nose, eyes, ears and 68 landmarks) lie on a head sphere around the head centre."""
    body = torch.tensor(
        [
            _on_head(0, -10),  # nose
            [0.0, 0.0, 0.55],  # neck
            [0.0, -0.18, 0.50], [0.0, -0.36, 0.30], [0.0, -0.52, 0.12],  # right arm
            [0.0, 0.18, 0.50], [0.0, 0.36, 0.30], [0.0, 0.52, 0.12],  # left arm
            [0.0, -0.10, 0.0], [0.0, -0.11, -0.42], [0.0, -0.12, -0.80],  # right leg
            [0.0, 0.10, 0.0], [0.0, 0.11, -0.42], [0.0, 0.12, -0.80],  # left leg
            _on_head(-25, 10), _on_head(25, 10),  # eyes
            _on_head(-80, 0), _on_head(80, 0),  # ears
        ]
    )  # fmt: skip
    face = torch.tensor(
        [_on_head(az, el) for el in (-30, -10, 10, 25) for az in torch.linspace(-60, 60, 17)]
    )
    return body, face, HEAD_CENTER.clone()


def _orbit(azimuths, elevation=5.0, distance=1.8, fovy=70.0, target=(0.0, 0.0, 0.0)):
    """Cameras around ``target`` (the preview's turntable by default): c2w [B, 4, 4], K."""
    n = len(azimuths)
    look = torch.tensor(target).expand(n, 3)
    eye = look + spherical_to_position(
        torch.full((n,), elevation), torch.tensor(azimuths), torch.full((n,), distance)
    )
    return look_at(eye, look), intrinsics(torch.full((n,), math.radians(fovy)), SIZE, SIZE)


def _draw(c2w, K, width=SIZE, height=SIZE, **kwargs):
    body, face, head = _a_pose()
    return draw_openpose(body, face, head, c2w, K, width, height, **kwargs)


def _visible(azimuth: float, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    body, face, head = _a_pose()
    c2w, _ = _orbit([azimuth])
    body_visible, face_visible = keypoint_visibility(body, face, head, c2w[:, :3, 3], **kwargs)
    return body_visible[0], face_visible[0]


def _pixel(image: torch.Tensor, uv: torch.Tensor) -> tuple[int, ...]:
    """The 0-255 RGB colour of image [3, H, W] at the pixel holding the point uv [2]."""
    x, y = int(uv[0].floor()), int(uv[1].floor())
    return tuple(int(v) for v in (image[:, y, x] * 255).round())


def _has_color(image: torch.Tensor, color: tuple[int, ...]) -> bool:
    target = torch.tensor(color, dtype=torch.float32)[:, None, None] / 255.0
    return bool(((image - target).abs() < 1e-3).all(dim=0).any())


def _project(points: torch.Tensor, c2w: torch.Tensor, K: torch.Tensor):
    return project_points(points, c2w_to_viewmat(c2w), K)


def test_output_shape_dtype_range_and_black_background():
    c2w, _ = _orbit([0.0, 30.0])
    K = intrinsics(torch.full((2,), math.radians(70.0)), 320, 256)
    image = _draw(c2w, K, width=320, height=256)
    assert image.shape == (2, 3, 256, 320)
    assert image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert image[:, :, 0, 0].eq(0).all()  # a corner is background
    assert 0.001 < (image.sum(1) > 0).float().mean() < 0.2  # a skeleton, not a blob


def test_front_view_draws_limb_colors_at_limb_midpoints():
    c2w, K = _orbit([0.0])
    body, _, _ = _a_pose()
    image = _draw(c2w, K, draw_face=False)[0]  # the face dots would cover the face limbs
    midpoints = torch.stack([0.5 * (body[a] + body[b]) for a, b in LIMBS])
    uv, _ = _project(midpoints, c2w, K)
    for limb, color in enumerate(LIMB_COLORS):
        assert _pixel(image, uv[0, limb]) == color, f"limb {LIMBS[limb]}"
    for joint, color in enumerate(COLORS):  # every joint shows from the front
        assert _has_color(image, color), f"joint {joint}"
    assert _has_color(_draw(c2w, K)[0], WHITE)  # face dots


def test_front_view_sees_every_face_keypoint():
    body_visible, face_visible = _visible(0.0)
    assert body_visible.all() and face_visible.all()


def test_back_view_hides_eyes_ears_nose_and_face_landmarks():
    body_visible, face_visible = _visible(180.0)
    hidden = list(FACE_BODY_INDICES)
    assert not body_visible[hidden].any() and not face_visible.any()
    assert body_visible[[i for i in range(18) if i not in hidden]].all()

    c2w, K = _orbit([180.0])
    image = _draw(c2w, K)[0]
    uv, _ = _project(_a_pose()[0], c2w, K)
    face_colors = {COLORS[i] for i in hidden}
    face_colors |= {LIMB_COLORS[i] for i, (a, b) in enumerate(LIMBS) if {a, b} & set(hidden)}
    for joint in hidden:
        assert _pixel(image, uv[0, joint]) not in face_colors
    for color in face_colors | {WHITE}:
        assert not _has_color(image, color)
    assert _has_color(image, COLORS[NECK])  # the rest of the body is still drawn


@pytest.mark.parametrize("azimuth, eye, ear", [(90.0, L_EYE, L_EAR), (-90.0, R_EYE, R_EAR)])
def test_side_view_sees_only_the_near_eye_and_ear_and_the_nose(azimuth, eye, ear):
    body_visible, face_visible = _visible(azimuth)
    assert {i for i in (R_EYE, L_EYE, R_EAR, L_EAR) if body_visible[i]} == {eye, ear}
    assert body_visible[NOSE]  # edge-on, kept by the slightly negative threshold
    assert 0 < face_visible.sum() < face_visible.numel()  # one half of the face

    c2w, K = _orbit([azimuth])
    image = _draw(c2w, K)[0]
    far_eye, far_ear = {R_EYE, L_EYE} - {eye}, {R_EAR, L_EAR} - {ear}
    assert _has_color(image, COLORS[eye]) and _has_color(image, COLORS[ear])
    assert not _has_color(image, COLORS[far_eye.pop()])
    assert not _has_color(image, COLORS[far_ear.pop()])


def test_plain_rule_without_the_origin_shift():
    # head_radius=0, threshold=0: outward = keypoint - head_center, cos > 0.
    body_visible, _ = _visible(90.0, threshold=0.0, head_radius=0.0)
    assert [bool(body_visible[i]) for i in (R_EYE, L_EYE, R_EAR, L_EAR)] == [0, 1, 0, 1]
    body_visible, face_visible = _visible(180.0, threshold=0.0, head_radius=0.0)
    assert not body_visible[list(FACE_BODY_INDICES)].any() and not face_visible.any()


def test_head_close_up_draws_the_eyes_where_project_points_puts_them():
    body, _, head = _a_pose()
    c2w, K = _orbit([20.0], elevation=6.0, distance=0.5, fovy=40.0, target=head.tolist())
    image = _draw(c2w, K)[0]
    uv, _ = _project(body, c2w, K)
    for joint in (R_EYE, L_EYE):
        assert 0 < uv[0, joint, 0] < SIZE and 0 < uv[0, joint, 1] < SIZE
        assert _pixel(image, uv[0, joint]) == COLORS[joint]
    # Zoomed in: the eyes are far apart in the image, unlike in the full-body view.
    assert (uv[0, L_EYE] - uv[0, R_EYE]).norm() > 100


def test_keypoints_behind_the_camera_are_not_drawn():
    # A camera at chest height looking down at the feet: the head, neck and shoulders
    # are behind it and must not appear (a naive projection mirrors them into the image).
    c2w = look_at(torch.tensor([[0.0, 0.0, 0.35]]), torch.tensor([[0.0, 0.0, -1.0]]),
                  up=torch.tensor([1.0, 0.0, 0.0]))  # fmt: skip
    K = intrinsics(torch.tensor([math.radians(90.0)]), SIZE, SIZE)
    body, _, _ = _a_pose()
    _, depth = _project(body, c2w, K)
    assert (depth[0, [NOSE, NECK, 2, 5]] < 0).all()  # the set-up is what it claims

    image = _draw(c2w, K)[0]
    for joint in (NOSE, NECK, 2, 5, R_EYE, L_EYE, R_EAR, L_EAR):
        assert not _has_color(image, COLORS[joint])
    assert not _has_color(image, WHITE)
    for limb, (a, b) in enumerate(LIMBS):
        if depth[0, a] < 0 or depth[0, b] < 0:
            assert not _has_color(image, LIMB_COLORS[limb]), f"limb {LIMBS[limb]}"
    for joint in (9, 12):  # the knees are in front of it
        assert _has_color(image, COLORS[joint])
    assert _has_color(image, LIMB_COLORS[7])  # right thigh


def test_draw_face_false_draws_no_face_dots():
    c2w, K = _orbit([0.0])
    assert not _has_color(_draw(c2w, K, draw_face=False)[0], WHITE)


def test_drawing_is_deterministic_and_views_are_independent():
    c2w, K = _orbit([0.0, 90.0, 180.0, -90.0])
    first = _draw(c2w, K)
    assert torch.equal(first, _draw(c2w, K))
    assert torch.equal(first[2:3], _draw(c2w[2:3], K[2:3]))


def test_strokes_scale_with_image_size():
    sides = []
    for size in (256, 1024):
        c2w, _ = _orbit([0.0])
        K = intrinsics(torch.tensor([math.radians(70.0)]), size, size)
        image = draw_openpose(*_a_pose(), c2w, K, size, size, draw_face=False)[0]
        # The neck joint is a disc: the square root of its area grows with the image.
        target = torch.tensor(COLORS[NECK], dtype=torch.float32)[:, None, None] / 255
        sides.append(((image - target).abs() < 1e-3).all(0).sum().item() ** 0.5)
    assert sides[1] == pytest.approx(4 * sides[0], rel=0.25)


def test_default_body_face_cropping():
    """The shipped body (head centre level with the ears) crops as the A-pose does."""
    from gaussianip.body import build_body_model

    body = build_body_model("default")
    c2w, _ = _orbit([0.0, 90.0, 180.0, -90.0])
    visible, _ = keypoint_visibility(
        body.body_keypoints, body.face_keypoints, body.head_center, c2w[:, :3, 3]
    )
    face = list(FACE_BODY_INDICES)  # nose, r_eye, l_eye, r_ear, l_ear
    assert visible[0, face].all()
    assert visible[1, face].tolist() == [True, False, True, False, True]
    assert not visible[2, face].any()
    assert visible[3, face].tolist() == [True, True, False, True, False]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    c2w, K = _orbit([0.0, 45.0, 180.0])
    cpu = _draw(c2w, K)
    gpu = _draw(c2w.cuda(), K.cuda())
    assert gpu.device.type == "cuda"
    # Rounding may move a few edge pixels; the colours themselves are bit-identical.
    assert (gpu.cpu() != cpu).any(dim=1).float().mean() < 1e-4


def test_dense_limbs_paint_the_same_pixels_as_boxes(monkeypatch):
    """The sync-free dense path (CUDA's default) and the bounding-box path give identical
    images: whole bodies, a head close-up whose limbs leave the image, a view from behind,
    an off-centre camera, non-square images, and limbs painted a few at a time."""
    import gaussianip.pose.openpose as openpose

    c2w, K = _orbit([0.0, 37.0, 90.0, 180.0, -123.0])
    close_c2w, close_K = _orbit([10.0, -30.0], distance=0.35, target=HEAD_CENTER.tolist())
    tall_K = intrinsics(torch.full((5,), math.radians(70.0)), 96, 160)
    for cams, (w, h) in (((c2w, K), (SIZE, SIZE)), ((close_c2w, close_K), (SIZE, SIZE)),
                         ((c2w, tall_K), (96, 160))):  # fmt: skip
        boxes = _draw(*cams, width=w, height=h, method="boxes")
        dense = _draw(*cams, width=w, height=h, method="dense")
        assert boxes.abs().sum() > 0
        assert torch.equal(dense, boxes)
    monkeypatch.setattr(openpose, "_DENSE_CHUNK", 3 * SIZE * SIZE * 5)  # 3 limbs a chunk
    assert torch.equal(_draw(c2w, K, method="dense"), _draw(c2w, K, method="boxes"))
    with pytest.raises(ValueError, match="method"):
        _draw(c2w, K, method="fast")
