"""SMPL-X through the ``smplx`` package, in our canonical A-pose and frame.

The SMPL-X files are license-gated: https://smpl-x.is.tue.mpg.de (register, download
"SMPL-X v1.1 (NPZ+PKL)"), then put ``SMPLX_NEUTRAL.npz`` into ``load/smplx/`` or point
``system.body.model_path`` at the file or its folder. Files are checked here, before
``smplx`` reads them, so that a missing or damaged file gives one clear message.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import torch

from gaussianip.body.base import OPENPOSE_BODY_NAMES, BodyModel
from gaussianip.errors import BodyModelError
from gaussianip.paths import REPO_ROOT

DEFAULT_FOLDER = "load/smplx"
GENDERS = ("neutral", "male", "female")
# What smplx reads from an SMPL-X .npz, and the leading shape each must have.
REQUIRED_KEYS = {
    "v_template": (10475, 3),
    "f": (None, 3),
    "shapedirs": (10475, 3),
    "posedirs": (10475, 3),
    "J_regressor": (55, 10475),
    "weights": (10475, 55),
    "kintree_table": (2, 55),
    "lmk_faces_idx": (51,),
    "lmk_bary_coords": (51, 3),
    "dynamic_lmk_faces_idx": (79, 17),
    "dynamic_lmk_bary_coords": (79, 17, 3),
    "hands_componentsl": (45, 45),
    "hands_componentsr": (45, 45),
    "hands_meanl": (45,),
    "hands_meanr": (45,),
}
HOW_TO_GET = (
    "SMPL-X files are license-gated: register at https://smpl-x.is.tue.mpg.de, download "
    "'SMPL-X v1.1 (NPZ+PKL)', and put SMPLX_NEUTRAL.npz into load/smplx/ (or set "
    "system.body.model_path to the file or its folder). Or use the free default body "
    "(system.body.name=default)."
)
# SMPL-X (y up, facing +z, the person's left at +x) -> ours (z up, facing +x, left at +y).
SMPLX_TO_OURS = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
ARM_DROP_DEG = 45.0


def find_smplx_file(model_path: str | None, gender: str = "neutral") -> Path:
    """The SMPL-X .npz: ``model_path`` itself, or SMPLX_<GENDER>.npz in it (or in its
    ``smplx/`` subfolder, the layout of the official download)."""
    if gender not in GENDERS:
        raise BodyModelError(f"Unknown SMPL-X gender '{gender}'; use one of {', '.join(GENDERS)}.")
    path = Path(model_path) if model_path else REPO_ROOT / DEFAULT_FOLDER
    if path.is_file():
        return path
    name = f"SMPLX_{gender.upper()}.npz"
    for candidate in (path / name, path / "smplx" / name):
        if candidate.is_file():
            return candidate
    where = f"'{path}'" if path.exists() else f"'{path}' (which does not exist)"
    raise BodyModelError(f"SMPL-X model file {name} not found in {where}. {HOW_TO_GET}")


def check_smplx_file(path: Path) -> None:
    """Raise ``BodyModelError`` unless ``path`` is an .npz with every array smplx needs."""
    if not zipfile.is_zipfile(path):
        raise BodyModelError(
            f"'{path}' is not an SMPL-X .npz file (not a zip archive; truncated download?). "
            f"{HOW_TO_GET}"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            problems = []
            for key, shape in REQUIRED_KEYS.items():
                if key not in data.files:
                    problems.append(f"missing '{key}'")
                    continue
                actual = data[key].shape
                if len(actual) < len(shape) or any(
                    want is not None and want != got
                    for want, got in zip(shape, actual, strict=False)
                ):
                    problems.append(f"'{key}' has shape {actual}, expected {shape}+")
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise BodyModelError(f"'{path}' could not be read as an SMPL-X .npz ({err}).") from None
    if problems:
        raise BodyModelError(f"'{path}' is not a valid SMPL-X model: {'; '.join(problems)}.")


def load_smplx(model_path: str | None = None, gender: str = "neutral") -> BodyModel:
    """SMPL-X with neutral shape in A-pose, in our frame, bounding box centred."""
    import smplx
    from smplx.joint_names import JOINT_NAMES

    path = find_smplx_file(model_path, gender)
    check_smplx_file(path)
    model = smplx.SMPLX(
        model_path=str(path), gender=gender, use_face_contour=True, use_pca=False, ext="npz"
    )
    body_pose = torch.zeros(1, 63)
    drop = math.radians(ARM_DROP_DEG)
    # Arms along +-x in SMPL-X's T-pose; rotating about +z lowers them towards -y.
    body_pose[0, (JOINT_NAMES.index("left_shoulder") - 1) * 3 + 2] = -drop
    body_pose[0, (JOINT_NAMES.index("right_shoulder") - 1) * 3 + 2] = drop
    apose = torch.eye(3).repeat(55, 1, 1)
    for i in range(21):  # the same rotations in our frame: R_ours = M R_smplx M^T
        angle = body_pose[0, 3 * i : 3 * i + 3]
        if angle.any():
            apose[i + 1] = SMPLX_TO_OURS @ _rotation(angle) @ SMPLX_TO_OURS.T
    with torch.no_grad():
        out = model(body_pose=body_pose, return_verts=True)
    rot = SMPLX_TO_OURS
    vertices = out.vertices[0] @ rot.T
    joints = out.joints[0] @ rot.T
    centre = (vertices.max(0).values + vertices.min(0).values) / 2
    vertices, joints = vertices - centre, joints - centre

    def joint(name: str) -> torch.Tensor:
        return joints[JOINT_NAMES.index(name)]

    body = []
    for name in OPENPOSE_BODY_NAMES:
        body.append(joint(name))
    face = torch.cat([joints[-17:], joints[-68:-17]])  # iBUG order: contour, then the 51
    hands = [
        joints[[i for i, n in enumerate(JOINT_NAMES[:55]) if n.startswith(side)][-15:]].mean(0)
        for side in ("right_", "left_")
    ]
    head = (joint("left_ear") + joint("right_ear")) / 2
    return BodyModel(
        name="smplx",
        vertices=vertices.float(),
        faces=torch.as_tensor(model.faces.astype(np.int64)),
        body_keypoints=torch.stack(body).float(),
        face_keypoints=face.float(),
        head_center=head.float(),
        hand_centers=torch.stack(hands).float(),
        skin_weights=model.lbs_weights.float(),
        joints=joints[:55].float(),
        joint_parents=model.parents.long().clone(),
        joint_names=tuple(JOINT_NAMES[:55]),
        joint_apose_rotations=apose,
    )


def _rotation(axis_angle: torch.Tensor) -> torch.Tensor:
    """[3] axis-angle -> [3, 3] (Rodrigues)."""
    angle = axis_angle.norm()
    k = axis_angle / angle
    cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return torch.eye(3) + torch.sin(angle) * cross + (1 - torch.cos(angle)) * cross @ cross
