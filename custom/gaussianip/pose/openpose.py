"""OpenPose condition images for ControlNet, drawn from 3D body keypoints for any camera.

The drawing copies controlnet_aux's ``draw_bodypose`` / ``draw_facepose`` (the images
``lllyasviel/control_v11p_sd15_openpose`` was trained on): the same 17 limbs and 18
colours, limbs as filled ellipses 4 px wide (half-width) in 0.6 x their colour, joints as
filled circles of radius 4 px in full colour drawn over the limbs, and the 68 face
landmarks as white dots of radius 3 px drawn last. Those sizes hold at 512 px on the short
side (controlnet_aux's default detect resolution) and scale with the image.

Everything is plain torch, so it runs on the device of the cameras. Drawing is a
painter's algorithm done with one integer "which shape is on top" buffer: every shape has
an id in drawing order, each pixel keeps the largest id that covers it (``amax``), and a
palette lookup turns ids into colours at the end.

Two ways to paint the limbs give the same images: ``"boxes"`` tests only each limb's
bounding box (fast on the CPU, but choosing the box sizes needs one device-to-host copy),
``"dense"`` tests every pixel against every limb in a few large tensor operations and never
waits for the device (fast on a GPU, where that wait stalled the distillation step: 17 ms
of a 131 ms step on an H100). ``method="auto"`` picks ``dense`` on CUDA.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gaussianip.cameras import c2w_to_viewmat, project_points

# OpenPose COCO-18 keypoint names, in order.
BODY_KEYPOINT_NAMES = (
    "nose", "neck",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle",
    "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip

# The body keypoints on the face: hidden when they face away from the camera.
FACE_BODY_INDICES = (0, 14, 15, 16, 17)

# controlnet_aux's ``limbSeq`` with its 1-based indices turned 0-based.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7),
    (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

# RGB; colour i paints limb i (at 0.6 x) and joint i (at full strength).
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_COLORS = tuple(tuple(int(c * 0.6) for c in color) for color in COLORS[: len(LIMBS)])
FACE_COLOR = (255, 255, 255)

# Sizes in pixels at 512 px on the image's short side.
REFERENCE_SIZE = 512
STICK_WIDTH = 4.0  # half-width of a limb ellipse (its minor semi-axis)
JOINT_RADIUS = 4.0
FACE_RADIUS = 3.0
# OpenCV fills every pixel its outline touches, so a radius-4 dot is 9 px across; testing
# pixel centres against the shape grown by half a pixel gives the same footprint.
_PIXEL_GROWTH = 0.5
# Keypoints closer than this to the camera plane (or behind it) are not drawn.
NEAR = 1e-2


def keypoint_visibility(
    body_keypoints: Tensor,
    face_keypoints: Tensor | None,
    head_center: Tensor,
    camera_positions: Tensor,
    threshold: float = -0.05,
    head_radius: float = 0.1,
) -> tuple[Tensor, Tensor]:
    """Which keypoints each camera sees: view-dependent cropping of the skeleton.

    A face point (nose, eyes, ears and every face landmark) is visible iff it faces the
    camera: ``cos(outward, to_camera) > threshold``, with ``to_camera`` the direction from
    the point to the camera and ``outward`` the direction from ``origin`` to the point.
    Limb keypoints (neck, shoulders, arms, hips, legs) are always visible.

    ``origin`` is ``head_radius`` behind ``head_center``, against the facing direction
    (head centre -> nose), i.e. near the back of the skull. Measured from there the ears,
    which sit level with the head centre, lean forwards instead of pointing straight
    sideways (seen exactly edge-on, a perspective camera sees them marginally from behind
    and would drop them even in a front view). Pass ``head_radius=0`` for outward =
    keypoint - head_center.

    With the defaults: a front view shows all face points; a back view (azimuth 180)
    shows none (no eyes, nose, ears or landmarks); a pure side view shows the eye and the
    ear on the camera's side and not the other two. The nose points straight ahead, so a
    pure side view sees it edge-on (cos ~ 0): the slightly negative threshold keeps it, as
    OpenPose detects the nose in profile; a few degrees further round it is dropped.

    Args:
        body_keypoints: [18, 3] world positions in OpenPose COCO-18 order.
        face_keypoints: [F, 3] face landmarks (F = 68, or 0), or None.
        head_center: [3] centre of the head.
        camera_positions: [B, 3] camera centres in world space.
        threshold: cosine a face point must exceed to count as facing the camera.
        head_radius: how far behind ``head_center`` the outward directions start (metres).

    Returns:
        body_visible [B, 18] and face_visible [B, F], both bool.
    """
    if face_keypoints is None:
        face_keypoints = body_keypoints.new_zeros(0, 3)
    face_index = torch.tensor(FACE_BODY_INDICES, device=body_keypoints.device)
    points = torch.cat([body_keypoints[face_index], face_keypoints])  # [5 + F, 3]

    forward = torch.nn.functional.normalize(body_keypoints[0] - head_center, dim=-1)  # nose
    origin = head_center - head_radius * forward
    outward = torch.nn.functional.normalize(points - origin, dim=-1)
    to_camera = torch.nn.functional.normalize(camera_positions[:, None] - points, dim=-1)
    facing = (outward * to_camera).sum(dim=-1) > threshold  # [B, 5 + F]

    n_views = camera_positions.shape[0]
    body_visible = torch.ones(n_views, 18, dtype=torch.bool, device=body_keypoints.device)
    body_visible[:, face_index] = facing[:, : len(FACE_BODY_INDICES)]
    return body_visible, facing[:, len(FACE_BODY_INDICES) :]


def draw_openpose(
    body_keypoints: Tensor,
    face_keypoints: Tensor | None,
    head_center: Tensor,
    c2w: Tensor,
    K: Tensor,
    width: int,
    height: int,
    draw_face: bool = True,
    method: str = "auto",
) -> Tensor:
    """OpenPose condition images [B, 3, H, W] (float32 in [0, 1], black background) of
    the body seen by B cameras.

    The keypoints go through the same ``c2w`` / ``K`` as the renderer, so the skeleton
    lines up with the rendered image pixel for pixel: a head close-up crops and zooms the
    face exactly as the render does (the stroke widths stay in image pixels, as they would
    for OpenPose run on a close-up photo).

    Not drawn: keypoints hidden by ``keypoint_visibility`` (face keypoints turned away
    from the camera), keypoints behind the camera (or closer than ``NEAR``), and, as
    OpenPose drops limbs with a missing joint, every limb with such an end.

    Args:
        body_keypoints: [18, 3] world positions in OpenPose COCO-18 order.
        face_keypoints: [F, 3] face landmarks (F = 68, or 0), or None.
        head_center: [3] centre of the head (for the visibility test).
        c2w: [B, 4, 4] OpenGL camera-to-world matrices; the output lives on their device.
        K: [B, 3, 3] pixel intrinsics.
        width, height: image size in pixels.
        draw_face: draw the face landmarks as white dots.
        method: "boxes", "dense" (same images; see the module docstring) or "auto" (dense on
            CUDA, boxes elsewhere).
    """
    if method not in ("auto", "boxes", "dense"):
        raise ValueError(f"method must be 'auto', 'boxes' or 'dense', got '{method}'.")
    device = c2w.device
    c2w = c2w.float()
    K = K.to(device, torch.float32)
    body = body_keypoints.to(device, torch.float32)
    face = (
        face_keypoints.to(device, torch.float32)
        if face_keypoints is not None and draw_face
        else body.new_zeros(0, 3)
    )
    if body.shape != (18, 3):
        raise ValueError(f"body_keypoints must be [18, 3], got {list(body.shape)}.")

    body_visible, face_visible = keypoint_visibility(
        body, face, head_center.to(device, torch.float32), c2w[:, :3, 3]
    )
    uv, depth = project_points(torch.cat([body, face]), c2w_to_viewmat(c2w), K)
    shown = torch.cat([body_visible, face_visible], dim=1) & (depth > NEAR)
    shown &= uv.isfinite().all(dim=-1)  # [B, 18 + F]

    scale = min(width, height) / REFERENCE_SIZE
    n_views, n_limbs, n_face = c2w.shape[0], len(LIMBS), face.shape[0]
    # Shape ids in drawing order; 0 is the background.
    limb_ids = 1 + torch.arange(n_limbs, dtype=torch.int32, device=device)
    joint_ids = 1 + n_limbs + torch.arange(18, dtype=torch.int32, device=device)
    face_ids = 1 + n_limbs + 18 + torch.arange(n_face, dtype=torch.int32, device=device)
    # Divided on the CPU, so that every device gets bit-identical colours.
    colors = [(0, 0, 0), *LIMB_COLORS, *COLORS, *[FACE_COLOR] * n_face]
    palette = (torch.tensor(colors, dtype=torch.float32) / 255.0).to(device)

    top = torch.zeros(n_views * height * width, dtype=torch.int32, device=device)
    dense = method == "dense" or (method == "auto" and device.type == "cuda")
    draw_limbs = _draw_limbs_dense if dense else _draw_limbs
    draw_limbs(top, uv[:, :18], shown[:, :18], limb_ids, scale * STICK_WIDTH, width, height)
    radii = torch.cat(
        [
            torch.full((18,), scale * JOINT_RADIUS, device=device),
            torch.full((n_face,), scale * FACE_RADIUS, device=device),
        ]
    )
    # The stencil's reach from the Python sizes: reading it off ``radii`` would wait for
    # the device.
    reach = math.ceil(scale * max(JOINT_RADIUS, FACE_RADIUS if n_face else 0.0) + _PIXEL_GROWTH + 1)
    ids = torch.cat([joint_ids, face_ids])
    _draw_dots(top, uv, shown, ids, radii, width, height, reach)
    # Ids -> colours, gathered straight into the [B, 3, H * W] layout (faster than
    # palette[top] followed by a permute).
    index = top.view(n_views, 1, -1).expand(-1, 3, -1).long()
    image = palette.t()[None].expand(n_views, -1, -1).gather(2, index)
    return image.view(n_views, 3, height, width)


def _limb_geometry(uv: Tensor, shown: Tensor) -> tuple[Tensor, ...]:
    """Per view and limb: end points p1, p2 [B, L, 2], valid [B, L] (both ends shown),
    ellipse centre [B, L, 2], unit major axis [B, L, 2] and major semi-axis a [B, L]."""
    device = uv.device
    start = torch.tensor([a for a, _ in LIMBS], device=device)
    end = torch.tensor([b for _, b in LIMBS], device=device)
    p1, p2 = uv[:, start], uv[:, end]
    valid = shown[:, start] & shown[:, end]
    centre = 0.5 * (p1 + p2)
    delta = p2 - p1
    a = 0.5 * delta.norm(dim=-1) + _PIXEL_GROWTH
    direction = torch.nn.functional.normalize(delta, dim=-1)
    direction = torch.where(valid[..., None] & (a > _PIXEL_GROWTH)[..., None], direction, 0)
    direction[..., 0] += (direction.abs().sum(-1) == 0).float()  # point-like: any axis
    return p1, p2, valid, centre, direction, a


# Elements per intermediate tensor of the dense limb test (views x limbs x pixels): about
# 256 MB of float32, so a 1024-px refinement ring is painted a few limbs at a time.
_DENSE_CHUNK = 1 << 26


def _draw_limbs_dense(
    top: Tensor,
    uv: Tensor,
    shown: Tensor,
    ids: Tensor,
    half_width: float,
    width: int,
    height: int,
) -> None:
    """``_draw_limbs`` without its host sync: every pixel is tested against every limb
    (the same ellipse test, so the same pixels). ``top`` [B * H * W] is updated in place."""
    n_views = uv.shape[0]
    device = uv.device
    _, _, valid, centre, direction, a = _limb_geometry(uv, shown)
    b = half_width + _PIXEL_GROWTH
    # Pixel centres as the box path computes them (integer + 0.5 in float32).
    xs = torch.arange(width, device=device) + 0.5  # [W]
    ys = torch.arange(height, device=device) + 0.5  # [H]
    out = top.view(n_views, height, width)
    per_limb = n_views * height * width
    step = max(1, _DENSE_CHUNK // per_limb)
    for first in range(0, len(LIMBS), step):
        limbs = slice(first, first + step)
        cx, cy = centre[:, limbs, 0, None, None], centre[:, limbs, 1, None, None]
        dx = xs - cx  # [B, l, 1, W]
        dy = ys[:, None] - cy  # [B, l, H, 1]
        cos = direction[:, limbs, 0, None, None]
        sin = direction[:, limbs, 1, None, None]
        along = dx * cos + dy * sin
        across = dy * cos - dx * sin
        inside = (along / a[:, limbs, None, None]) ** 2 + (across / b) ** 2 <= 1.0
        inside &= valid[:, limbs, None, None]
        values = torch.where(inside, ids[limbs, None, None], 0).amax(dim=1)  # [B, H, W]
        torch.maximum(out, values, out=out)


def _draw_limbs(
    top: Tensor,
    uv: Tensor,
    shown: Tensor,
    ids: Tensor,
    half_width: float,
    width: int,
    height: int,
) -> None:
    """Paint the limb ellipses into ``top`` [B * H * W] (largest id wins).

    uv [B, 18, 2] and shown [B, 18] are the projected body keypoints. Each ellipse has
    the limb as its major axis and ``half_width`` as its minor semi-axis; only the pixels
    of its bounding box are tested (one box size per limb, the largest over the views).
    """
    n_views = uv.shape[0]
    device = uv.device
    p1, p2, valid, centre, direction, a = _limb_geometry(uv, shown)
    b = half_width + _PIXEL_GROWTH
    limits = torch.tensor([width, height], dtype=uv.dtype, device=device)
    # Bounding boxes in whole pixels, clipped to the image; the ellipse lies within b of
    # the segment, so the segment's box grown by b holds it.
    lo = (torch.minimum(p1, p2) - b).floor().clamp(min=torch.zeros_like(limits), max=limits)
    hi = (torch.maximum(p1, p2) + b).ceil().clamp(min=torch.zeros_like(limits), max=limits)
    size = torch.where(valid[..., None], hi - lo, 0).long()  # [B, L, 2]
    box_sizes = size.amax(dim=0).tolist()  # the one host sync: [L] x (w, h)
    view_offset = (torch.arange(n_views, device=device) * height * width)[:, None, None]

    for limb, (box_w, box_h) in enumerate(box_sizes):
        if box_w == 0 or box_h == 0:
            continue
        # Slide the box inside the image so that every view can use the same size.
        x0 = lo[:, limb, 0].long().clamp(max=width - box_w)
        y0 = lo[:, limb, 1].long().clamp(max=height - box_h)
        xs = x0[:, None] + torch.arange(box_w, device=device)  # [B, w]
        ys = y0[:, None] + torch.arange(box_h, device=device)  # [B, h]
        dx = (xs + 0.5 - centre[:, limb, 0, None])[:, None, :]  # [B, 1, w]
        dy = (ys + 0.5 - centre[:, limb, 1, None])[:, :, None]  # [B, h, 1]
        cos, sin = direction[:, limb, 0, None, None], direction[:, limb, 1, None, None]
        along = dx * cos + dy * sin
        across = dy * cos - dx * sin
        inside = (along / a[:, limb, None, None]) ** 2 + (across / b) ** 2 <= 1.0
        inside &= valid[:, limb, None, None]
        pixel = view_offset + ys[:, :, None] * width + xs[:, None, :]  # [B, h, w]
        values = torch.where(inside, ids[limb], 0)
        top.scatter_reduce_(0, pixel.flatten(), values.flatten(), reduce="amax")


def _draw_dots(
    top: Tensor,
    uv: Tensor,
    shown: Tensor,
    ids: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    reach: int,
) -> None:
    """Paint filled circles (joints and face dots) into ``top`` [B * H * W], all at once.

    uv [B, N, 2] centres, shown [B, N], ids [N], radii [N] in pixels. Each circle tests
    the pixels of a square stencil of half-size ``reach`` (> every radius + 0.5) around
    its centre.
    """
    n_views = uv.shape[0]
    device = uv.device
    radius = radii + _PIXEL_GROWTH  # [N]
    offsets = torch.arange(-reach, reach + 1, device=device)

    # Far-off centres are clamped to just outside the image so that they stay off it and
    # their pixel indices stay small.
    margin = reach + 2.0
    cx = uv[..., 0].clamp(-margin, width + margin)  # [B, N]
    cy = uv[..., 1].clamp(-margin, height + margin)
    xs = cx.floor().long()[..., None, None] + offsets[None, :]  # [B, N, 1, S]
    ys = cy.floor().long()[..., None, None] + offsets[:, None]  # [B, N, S, 1]
    dist2 = (xs + 0.5 - cx[..., None, None]) ** 2 + (ys + 0.5 - cy[..., None, None]) ** 2
    inside = dist2 <= radius[:, None, None] ** 2  # [B, N, S, S]
    inside &= shown[..., None, None] & (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)

    view_offset = (torch.arange(n_views, device=device) * height * width)[:, None, None, None]
    pixel = view_offset + ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)
    values = torch.where(inside, ids[:, None, None], 0)
    top.scatter_reduce_(0, pixel.flatten(), values.flatten(), reduce="amax")
