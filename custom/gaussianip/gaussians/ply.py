"""Standard 3D Gaussian splatting PLY files (the format of the original 3DGS code).

Vertex fields: ``x y z nx ny nz f_dc_0..2 f_rest_0.. opacity scale_0..2 rot_0..3``, all
float32 and pre-activation (log scales, logit opacity, raw wxyz quaternion), with
``f_rest`` stored channel-major (all of red's higher bands, then green's, then blue's), so
any common 3DGS viewer opens our files and their files seed our runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement
from torch import Tensor

from gaussianip.errors import AssetError
from gaussianip.output_files import writing
from gaussianip.safe_load import regular_file

log = logging.getLogger(__name__)


def _field_names(num_rest: int) -> list[str]:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


def save_ply(path: str | Path, params: dict[str, Tensor]) -> Path:
    """Write Gaussian ``params`` (the pre-activation dict of ``GaussianModel``) to ``path``.

    The file is written to a temporary name first and then renamed, so an interrupted
    write never leaves a truncated PLY behind.
    """
    path = Path(path)
    n = params["means"].shape[0]
    shn = params["shN"].detach().cpu().float()  # [N, K-1, 3]
    columns = [
        params["means"].detach().cpu().float(),
        torch.zeros(n, 3),  # normals, unused but expected by viewers
        params["sh0"].detach().cpu().float().reshape(n, 3),
        shn.transpose(1, 2).reshape(n, -1),  # channel-major, as 3DGS writes it
        params["opacities"].detach().cpu().float().reshape(n, 1),
        params["scales"].detach().cpu().float(),
        params["quats"].detach().cpu().float(),
    ]
    data = torch.cat(columns, dim=1).numpy()
    names = _field_names(shn.shape[1] * 3)
    vertex = np.empty(n, dtype=[(name, "f4") for name in names])
    for i, name in enumerate(names):
        vertex[name] = data[:, i]
    with writing(path, needed=vertex.nbytes) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")]).write(str(tmp))
    return path


def load_ply(path: str | Path, drop_nonfinite: bool = True) -> dict[str, Tensor]:
    """Read a 3DGS PLY into the pre-activation parameter dict (SH degree from ``f_rest``).
    An empty PLY is an ``AssetError``; Gaussians with NaN / Inf values are left out with a
    warning that counts them (``drop_nonfinite``; ``False`` keeps them, for a caller that
    refuses them itself, as ``export`` does)."""
    path = Path(path)
    if not path.exists():
        raise AssetError(f"PLY file not found: '{path}'. Check the path.")
    regular_file(path, "PLY file")
    try:
        vertex = PlyData.read(str(path))["vertex"]
    except Exception as err:  # plyfile raises several types for damaged files
        raise AssetError(f"'{path}' is not a readable PLY file ({err}).") from None
    names = set(vertex.data.dtype.names)
    required = set(_field_names(0)) - {"nx", "ny", "nz"}
    missing = sorted(required - names)
    if missing:
        raise AssetError(
            f"'{path}' is not a 3D Gaussian splatting PLY: missing fields {', '.join(missing)}."
        )
    num_rest = sum(1 for name in names if name.startswith("f_rest_"))
    if num_rest % 3 or round(np.sqrt(num_rest // 3 + 1)) ** 2 != num_rest // 3 + 1:
        raise AssetError(f"'{path}' has {num_rest} f_rest fields, which matches no SH degree.")

    def stack(fields: list[str]) -> Tensor:
        return torch.from_numpy(
            np.stack([np.asarray(vertex[f], dtype=np.float32) for f in fields], 1)
        )

    n = len(vertex.data)
    if n == 0:
        raise AssetError(f"'{path}' holds 0 Gaussians (an empty PLY): there is no avatar in it.")
    rest = stack([f"f_rest_{i}" for i in range(num_rest)]) if num_rest else torch.zeros(n, 0)
    params = {
        "means": stack(["x", "y", "z"]),
        "scales": stack(["scale_0", "scale_1", "scale_2"]),
        "quats": stack(["rot_0", "rot_1", "rot_2", "rot_3"]),
        "opacities": stack(["opacity"])[:, 0],
        "sh0": stack(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None, :],
        "shN": rest.reshape(n, 3, num_rest // 3).transpose(1, 2).contiguous(),
    }
    return nonfinite_dropped(params, path) if drop_nonfinite else params


def nonfinite_dropped(params: dict[str, Tensor], source: str | Path) -> dict[str, Tensor]:
    """``params`` without the Gaussians that have a NaN or infinite value (they break
    renderers and viewers), with a warning that counts them; ``AssetError`` when none is
    left."""
    n = params["means"].shape[0]
    keep = torch.ones(n, dtype=torch.bool)
    for value in params.values():
        keep &= torch.isfinite(value.reshape(n, -1)).all(dim=1)
    dropped = n - int(keep.sum())
    if dropped == n:
        raise AssetError(f"'{source}': every one of its {n} Gaussians has a NaN or infinite "
                         "value; there is no avatar in it.")  # fmt: skip
    if dropped:
        log.warning("'%s': %d of its %d Gaussians have NaN or infinite values; they are left "
                    "out.", source, dropped, n)  # fmt: skip
        params = {k: v[keep].contiguous() for k, v in params.items()}
    return params
