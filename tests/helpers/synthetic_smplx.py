"""A synthetic SMPL-X model file in the real .npz layout, for testing the loading code.

The real SMPL-X files are license-gated, so the tests build a stand-in with every array
``smplx`` reads, at the real sizes (10,475 vertices, 55 joints; smplx picks extra joints
by fixed vertex ids). The shape comes from our default body, moved into SMPL-X's frame
(y up, facing +z); each joint sits at a plausible place and owns its nearest vertices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gaussianip.body.template import load_template

N_VERTS, N_JOINTS = 10475, 55
# SMPL-X's kinematic tree: the parent of each of the 55 joints.
BODY_PARENTS = [
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    15,
    15,
    15,
]


def _parents() -> list[int]:
    parents = list(BODY_PARENTS)
    for wrist in (20, 21):  # 5 fingers x 3 joints per hand
        for _ in range(5):
            start = len(parents)
            parents += [wrist, start, start + 1]
    return parents


def write_synthetic_smplx(path: Path, seed: int = 0) -> Path:
    """Write a synthetic SMPLX_NEUTRAL.npz to ``path`` (a file path) and return it."""
    rng = np.random.default_rng(seed)
    body = load_template()
    ours = body.vertices.numpy().astype(np.float64)
    # Ours (x forward, y left, z up) -> SMPL-X (x left, y up, z forward).
    to_smplx = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    verts = ours @ to_smplx.T
    # Take vertices 0..N-1 (repeating if the template had fewer) and the faces among them.
    idx = np.arange(N_VERTS) % len(verts)
    verts = verts[idx] + rng.normal(scale=1e-4, size=(N_VERTS, 3))
    faces = body.faces.numpy()
    faces = faces[(faces < N_VERTS).all(axis=1)].astype(np.uint32)

    kp = body.body_keypoints.numpy() @ to_smplx.T  # OpenPose order
    pelvis = (kp[8] + kp[11]) / 2
    spots = {  # joint index -> position
        0: pelvis, 1: kp[11], 2: kp[8], 3: pelvis + [0, 0.1, 0], 4: kp[12], 5: kp[9],
        6: pelvis + [0, 0.25, 0], 7: kp[13], 8: kp[10], 9: pelvis + [0, 0.4, 0],
        10: kp[13] + [0, -0.05, 0.1], 11: kp[10] + [0, -0.05, 0.1], 12: kp[1],
        13: (kp[1] + kp[5]) / 2, 14: (kp[1] + kp[2]) / 2, 15: body.head_center.numpy() @ to_smplx.T,
        16: kp[5], 17: kp[2], 18: kp[6], 19: kp[3], 20: kp[7], 21: kp[4],
        22: kp[0] + [0, -0.05, 0], 23: kp[15], 24: kp[14],
    }  # fmt: skip
    hands = body.hand_centers.numpy() @ to_smplx.T  # right, left
    joints = np.zeros((N_JOINTS, 3))
    for j in range(N_JOINTS):
        if j in spots:
            joints[j] = spots[j]
        else:  # finger joints: around the hand centre
            joints[j] = (hands[1] if j < 40 else hands[0]) + rng.normal(scale=0.01, size=3)
    nearest_vertex = np.argmin(((verts[None] - joints[:, None]) ** 2).sum(-1), axis=1)
    J_regressor = np.zeros((N_JOINTS, N_VERTS))
    J_regressor[np.arange(N_JOINTS), nearest_vertex] = 1.0
    owner = np.argmin(((verts[:, None] - joints[None]) ** 2).sum(-1), axis=1)
    weights = np.zeros((N_VERTS, N_JOINTS))
    weights[np.arange(N_VERTS), owner] = 1.0

    head_faces = np.nonzero(verts[faces[:, 0], 1] > joints[12, 1])[0]
    np.savez(
        path,
        v_template=verts,
        f=faces,
        shapedirs=rng.normal(scale=1e-3, size=(N_VERTS, 3, 20)),
        posedirs=np.zeros((N_VERTS, 3, (N_JOINTS - 1) * 9)),
        J_regressor=J_regressor,
        weights=weights,
        kintree_table=np.stack([np.array(_parents()), np.arange(N_JOINTS)]).astype(np.int64),
        lmk_faces_idx=rng.choice(head_faces, 51).astype(np.int64),
        lmk_bary_coords=np.full((51, 3), 1 / 3),
        dynamic_lmk_faces_idx=rng.choice(head_faces, (79, 17)).astype(np.int64),
        dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3),
        hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45),
        hands_meanl=np.zeros(45),
        hands_meanr=np.zeros(45),
    )
    return path
