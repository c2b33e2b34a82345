"""gsplat (CUDA) against our pure-PyTorch rasterizer: images, alphas, depths, gradients.

Run on a machine with a CUDA GPU (gsplat compiles its kernels at first use):

    PYTHONPATH=custom python3 scripts/gpu_parity.py --out parity.json

``--device cpu --self-check`` runs the same comparison of the PyTorch rasterizer against
itself on the CPU (a smoke test of the script). Prints one JSON object; exits 1 when a
difference exceeds its tolerance.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from gaussianip.body import build_body_model
from gaussianip.cameras import c2w_to_viewmat, intrinsics, look_at, spherical_to_position
from gaussianip.gaussians import GaussianConfig
from gaussianip.gaussians.init import gaussians_from_body
from gaussianip.render import rasterize_gsplat, rasterize_torch

# Float32 on different hardware and summation orders: image-space values agree to ~1e-5;
# gradients accumulate many terms (atomics on the GPU), hence the looser relative bound.
TOL_IMAGE = 1e-3
TOL_GRAD_REL = 1e-2


def random_scene(n: int, sh_degree: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return {
        "means": torch.rand(n, 3, generator=g) - 0.5,
        "quats": torch.randn(n, 4, generator=g),
        "scales": 0.005 + 0.04 * torch.rand(n, 3, generator=g),
        "opacities": 0.05 + 0.9 * torch.rand(n, generator=g),
        "colors": torch.rand(n, k, 3, generator=g) * (0.5 if k > 1 else 1.0),
    }


def body_scene(n: int) -> dict[str, torch.Tensor]:
    model = gaussians_from_body(
        build_body_model("default"),
        GaussianConfig(init_num_points=n),
        torch.Generator().manual_seed(0),
    )
    return {
        "means": model.means.detach(),
        "quats": model.quats.detach(),
        "scales": model.scales.detach(),
        "opacities": torch.full((n,), 0.5),  # more opaque than the init: a harder test
        "colors": model.sh_coeffs.detach() + 0.3 * torch.randn(n, 1, 3),
    }


def cameras(n: int, size: int, distance: float) -> tuple[torch.Tensor, torch.Tensor]:
    eye = spherical_to_position(
        torch.full((n,), 10.0), torch.linspace(0, 240, n), torch.full((n,), distance)
    )
    return c2w_to_viewmat(look_at(eye, torch.zeros(n, 3))), intrinsics(
        torch.full((n,), math.radians(50.0)), size, size
    )


def run(fn, scene, viewmats, Ks, size, sh_degree, device, weights):
    leaves = {k: v.to(device).clone().requires_grad_() for k, v in scene.items()}
    img, alpha, info = fn(
        means=leaves["means"], quats=leaves["quats"], scales=leaves["scales"],
        opacities=leaves["opacities"], colors=leaves["colors"], viewmats=viewmats.to(device),
        Ks=Ks.to(device), width=size, height=size, sh_degree=sh_degree,
        backgrounds=torch.full((viewmats.shape[0], 3), 0.2, device=device), render_mode="RGB+ED",
    )  # fmt: skip
    info["means2d"].retain_grad()
    loss = (img[..., :3] * weights.to(device)).sum() + alpha.sum()
    loss.backward()
    grads = {k: v.grad.detach().cpu() for k, v in leaves.items()}
    grads["means2d"] = info["means2d"].grad.detach().cpu()
    valid = (info["radii"] > 0).all(-1).cpu()
    return img.detach().cpu(), alpha.detach().cpu(), grads, valid


def compare(name, scene, size, n_cams, sh_degree, device, reference_fn):
    viewmats, Ks = cameras(n_cams, size, 2.0)
    weights = torch.rand(n_cams, size, size, 3, generator=torch.Generator().manual_seed(1))
    ours = run(rasterize_torch, scene, viewmats, Ks, size, sh_degree, "cpu", weights)
    ref = run(reference_fn, scene, viewmats, Ks, size, sh_degree, device, weights)
    covered = ref[1][..., 0] > 1e-3
    row = {
        "scene": name, "gaussians": scene["means"].shape[0], "cameras": n_cams, "size": size,
        "sh_degree": sh_degree, "visible_pairs": int(ref[3].sum()),
    }  # fmt: skip
    for key, a, b in (
        ("rgb", ours[0][..., :3], ref[0][..., :3]),
        ("alpha", ours[1], ref[1]),
        ("depth", ours[0][..., 3][covered], ref[0][..., 3][covered]),
    ):
        diff = (a - b).abs()
        row[f"{key}_max_abs"], row[f"{key}_mean_abs"] = float(diff.max()), float(diff.mean())
    for key in ("means", "quats", "scales", "opacities", "colors", "means2d"):
        a, b = ours[2][key], ref[2][key]
        if key == "means2d":  # gsplat leaves culled entries untouched
            a, b = a[ref[3]], b[ref[3]]
        diff = (a - b).abs()
        scale = float(b.abs().max()) or 1.0
        row[f"grad_{key}_max_abs"] = float(diff.max())
        row[f"grad_{key}_mean_abs"] = float(diff.mean())
        row[f"grad_{key}_max_rel"] = float(diff.max()) / scale
    row["ok"] = (
        row["rgb_max_abs"] < TOL_IMAGE
        and row["alpha_max_abs"] < TOL_IMAGE
        and all(
            row[f"grad_{k}_max_rel"] < TOL_GRAD_REL
            for k in ("means", "scales", "opacities", "colors")
        )
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--self-check", action="store_true", help="torch vs torch (CPU smoke)")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.self_check:
        reference, device = rasterize_torch, "cpu"
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: run on a GPU machine, or use --device cpu --self-check")
            return 2
        reference, device = rasterize_gsplat, args.device
    cases = [
        ("random", random_scene(500, 0, 0), 64, 3, 0),
        ("random", random_scene(5000, 0, 1), 256, 3, 0),
        ("random_sh1", random_scene(2000, 1, 2), 128, 3, 1),
        ("body", body_scene(20000), 256, 4, 0),
    ]
    if args.self_check:
        cases = cases[:1]
    start = time.time()
    rows = [
        compare(name, scene, size, n, sh, device, reference) for name, scene, size, n, sh in cases
    ]
    result = {
        "reference": "torch (self-check)" if args.self_check else "gsplat",
        "device": torch.cuda.get_device_name() if device != "cpu" else "cpu",
        "torch": torch.__version__,
        "tolerances": {"image_max_abs": TOL_IMAGE, "grad_max_rel": TOL_GRAD_REL},
        "seconds": round(time.time() - start, 1),
        "cases": rows,
        "ok": all(r["ok"] for r in rows),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
