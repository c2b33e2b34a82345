"""The avatar's Gaussians as SPZ (Niantic's compressed splat format, a quarter of a PLY
or less), written by ``gsply`` (PyPI, maintained) as SPZ version 3 (gzip), which older
and newer SPZ readers decode. Our tests decode it with Niantic's own SPZ library (npm
``@adobe/spz``); PlayCanvas's ``splat-transform`` 3.10.2 reads it the same way.

Same frame and conventions as our PLY: z up, facing +x, no axis flip (splat-transform
writes its SPZ the same way); colours from the SH DC term, opacity ``sigmoid(opacity)``.
What the format quantises (its limits, not ours): positions to 24-bit fixed point with 12
fractional bits (0.24 mm steps, +-2048 m), log-scales to 1/16 in [-10, 5.9], colour and
opacity to 8 bits, and the higher SH bands to 8 bits clamped to [-1, 1) (trained bands are
well inside that).

Broken Gaussians (NaN / Inf, zero quaternion) are refused with their count, as for glTF.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from gaussianip.export.gltf_splats import refuse_broken
from gaussianip.output_files import writing


def write_spz(path: str | Path, params: dict[str, Tensor]) -> Path:
    """Write the Gaussian ``params`` (the pre-activation dict: ``means`` [N, 3], ``scales``
    [N, 3] log, ``quats`` [N, 4] wxyz, ``opacities`` [N] logit, ``sh0`` [N, 1, 3], ``shN``
    [N, K-1, 3]) to ``path`` as SPZ v3, through a temporary file; returns ``path``."""
    import gsply  # numba-backed: a second to import, so only when asked for

    refuse_broken(params)
    p = {k: v.detach().cpu().float() for k, v in params.items()}
    n = p["means"].shape[0]
    quats = p["quats"] / p["quats"].norm(dim=-1, keepdim=True)
    data = gsply.GSData(
        means=p["means"].numpy(),
        scales=p["scales"].numpy(),
        quats=quats.numpy(),  # wxyz, as gsply's PLY convention
        opacities=p["opacities"].reshape(n).numpy(),
        sh0=p["sh0"].reshape(n, 3).numpy(),
        shN=p["shN"].reshape(n, -1, 3).numpy(),
    )
    path = Path(path)
    with writing(path) as tmp:  # a temporary file of its own, renamed when complete
        gsply.write_spz(tmp, data, version=3)
    return path
