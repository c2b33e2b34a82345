"""Stage 2's reconstruction (method.md): the refined ring views become ground truth and
the Gaussians are fitted to them, ``lambda_l1 * L1 + lambda_lpips * LPIPS(VGG)`` on random
batches of views, optionally with the same loss on face and hand patches.

LPIPS is the ``lpips`` package (VGG backbone, version 0.1 linear heads) on images in
[0, 1] (``normalize=True``), averaged over the batch; with ``lpips_resolution`` set, both
images are resized to that side first (less memory at 1024 px; a different loss, so it is a
stated setting, not a silent change).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.profiler import record_function

from gaussianip.body import BodyModel
from gaussianip.cameras import project_points
from gaussianip.data.human_cameras import select_views
from gaussianip.engine.faults import NonFiniteGuard
from gaussianip.engine.lpips_targets import LpipsTargets, mean_over_views
from gaussianip.engine.stage1 import check_backend, check_background
from gaussianip.errors import AssetError, ConfigError
from gaussianip.gaussians import GaussianModel
from gaussianip.render.views import render_views

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16, the LPIPS backbone
LPIPS_NETS = ("vgg", "alex", "squeeze")  # the backbones of the lpips package


@dataclass
class ReconstructionConfig:
    steps: int = 800
    batch_size: int = 8
    lambda_l1: float = 10.0
    lambda_lpips: float = 15.0
    lpips_net: str = "vgg"
    lpips_pretrained: bool = True  # False: random backbone (tests and timing only)
    # Folder holding checkpoints/vgg16-397923af.pth (torch hub's layout), as
    # `gaussianip download --dir DIR` writes it; None: torch's hub cache.
    lpips_weights_dir: str | None = None
    lpips_resolution: int | None = None  # None: LPIPS at the views' full resolution
    # Memory and speed (same loss definition): LPIPS one view at a time with activation
    # checkpointing (recomputed in backward; CUDA only), and in bf16 autocast on CUDA.
    # lpips_checkpoint None: a run takes it from its memory plan (gaussianip.memory_plan);
    # used alone, None is False (one batched call).
    lpips_checkpoint: bool | None = None
    lpips_autocast: bool = True
    # The refined views' VGG features computed once and kept on the device (the same loss,
    # a third less LPIPS arithmetic a step, 256 MB a 1024-px view: gaussianip.engine.
    # lpips_targets). None: a run takes it from its memory plan; used alone, None is False.
    lpips_target_cache: bool | None = None
    # torch.compile the LPIPS network: fuses the elementwise normalisation and differences
    # of its five 1024-px feature maps, which eager mode runs as separate memory-bound
    # kernels (most of a reconstruction step's time on an H100).
    lpips_compile: bool = False
    lambda_face: float = 0.0  # patch losses (same L1 + LPIPS) on the face box ...
    lambda_hand: float = 0.0  # ... and on both hand boxes; 0 turns them off
    face_radius: float = 0.13  # metres around the head centre
    hand_radius: float = 0.1  # metres around each hand centre
    patch_size: int = 128  # patches are resampled to this side
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    backend: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        meaning = {
            "steps": "the number of reconstruction steps, 800 in the paper",
            "batch_size": "refined views per step, 8 in the paper",
            "patch_size": "the side of the face and hand patches in pixels, 128",
        }
        for name in ("steps", "batch_size", "patch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"system.reconstruction.{name} must be >= 1, got {getattr(self, name)}; "
                    f"it is {meaning[name]}."
                )
        if self.lpips_resolution is not None and self.lpips_resolution < 32:
            raise ConfigError(
                "system.reconstruction.lpips_resolution must be >= 32 or null (LPIPS at full "
                f"resolution), got {self.lpips_resolution}."
            )
        for name in ("lambda_l1", "lambda_lpips", "lambda_face", "lambda_hand"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"system.reconstruction.{name} is a loss weight: a finite number >= 0, "
                    f"got {value}; 0 turns the term off."
                )
        for name in ("face_radius", "hand_radius"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"system.reconstruction.{name} must be a finite length > 0 in metres, "
                    f"got {value}."
                )
        if self.lpips_net not in LPIPS_NETS:
            raise ConfigError(
                f"system.reconstruction.lpips_net='{self.lpips_net}' is not an LPIPS network; "
                f"use one of {', '.join(LPIPS_NETS)} (the method uses vgg)."
            )
        check_background(self.background, "system.reconstruction.background")
        check_backend(self.backend, "system.reconstruction.backend")


def lpips_backbone_path(weights_dir: str | Path | None = None) -> Path:
    """Where the VGG16 weights that LPIPS loads are: in ``weights_dir`` (the config's
    ``lpips_weights_dir``) or torch's hub cache, each in torch hub's layout."""
    root = Path(weights_dir).expanduser() if weights_dir else Path(torch.hub.get_dir())
    return root / "checkpoints" / VGG16_FILE


def check_lpips_weights(cfg: ReconstructionConfig) -> None:
    """Fail in seconds, not after stage 1, when the LPIPS backbone would be downloaded."""
    path = lpips_backbone_path(cfg.lpips_weights_dir)
    if cfg.lambda_lpips > 0 and cfg.lpips_pretrained and not path.exists():
        raise AssetError(
            f"LPIPS needs torchvision's VGG16 weights at '{path}', which is missing. Run "
            "`python -m gaussianip download` once online (with --dir, then set "
            "system.reconstruction.lpips_weights_dir as it prints), or set "
            "system.reconstruction.lpips_pretrained=false (random backbone: tests only)."
        )


@contextmanager
def _hub_dir(folder: str | None) -> Iterator[None]:
    """torchvision looks for its weights in torch's hub folder: point it at ``folder``
    while LPIPS is built."""
    if not folder:
        yield
        return
    previous = torch.hub._hub_dir  # None: from TORCH_HOME when asked; keep it that way
    torch.hub.set_dir(str(Path(folder).expanduser()))
    try:
        yield
    finally:
        torch.hub._hub_dir = previous


def build_lpips(cfg: ReconstructionConfig, device: torch.device | str) -> torch.nn.Module:
    import lpips

    check_lpips_weights(cfg)
    with warnings.catch_warnings():  # lpips still uses torchvision's deprecated arguments
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        with _hub_dir(cfg.lpips_weights_dir if cfg.lpips_pretrained else None):
            model = lpips.LPIPS(net=cfg.lpips_net, pnet_rand=not cfg.lpips_pretrained,
                                verbose=False)  # fmt: skip
    model = model.to(device).eval().requires_grad_(False)
    if cfg.lpips_compile:
        model = torch.compile(model, dynamic=False)  # type: ignore[assignment]
    return model


def lpips_loss(model: torch.nn.Module, a: Tensor, b: Tensor, checkpoint: bool = False,
               autocast: bool = False) -> Tensor:  # fmt: skip
    """Mean LPIPS [scalar] of images ``a``, ``b`` [B, 3, H, W] in [0, 1].

    ``checkpoint``: one view at a time, its VGG activations recomputed in backward (the
    same value and gradient; memory of one view instead of B). ``autocast``: bf16 on CUDA.
    """

    def compare(x: Tensor, y: Tensor) -> Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            return model(x, y, normalize=True).float()

    return mean_over_views(compare, a, b, checkpoint=checkpoint)


def patch_boxes(centres: Tensor, radius: float, batch: dict[str, Any]) -> Tensor:
    """Square pixel boxes [B * P, 5] (view index, x0, y0, x1, y1; roi_align's layout)
    around the world points ``centres`` [P, 3], ``radius`` metres wide on each side."""
    viewmats, K = batch["viewmats"], batch["intrinsics"]
    uv, depth = project_points(centres.to(viewmats), viewmats, K)  # [B, P, 2], [B, P]
    half = radius * K[:, 0, 0, None] / depth.clamp(min=1e-3)  # [B, P] pixels
    n_views, n_points = depth.shape
    index = torch.arange(n_views, device=uv.device, dtype=uv.dtype)[:, None].expand(-1, n_points)
    boxes = torch.stack([index, uv[..., 0] - half, uv[..., 1] - half,
                         uv[..., 0] + half, uv[..., 1] + half], dim=-1)  # fmt: skip
    return boxes.reshape(-1, 5)


def crop_patches(images: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Patches [K, 3, size, size] of ``images`` [B, H, W, 3] in ``boxes`` [K, 5]
    (bilinear, differentiable; outside the image reads as 0)."""
    from torchvision.ops import roi_align

    nchw = images.permute(0, 3, 1, 2)
    return roi_align(nchw, boxes.to(nchw), (size, size), spatial_scale=1.0, aligned=True)


class Reconstructor:
    """Fits ``model`` to ``targets`` [N, H, W, 3] seen from ``cameras`` (N views)."""

    def __init__(
        self,
        model: GaussianModel,
        cameras: dict[str, Any],
        targets: Tensor,
        cfg: ReconstructionConfig | None = None,
        body: BodyModel | None = None,
        lpips_model: torch.nn.Module | None = None,
    ) -> None:
        self.cfg = cfg or ReconstructionConfig()
        self.model, self.cameras, self.body = model, cameras, body
        self.targets = targets.to(model.means.device)
        self.lpips = lpips_model
        if self.lpips is None and self.cfg.lambda_lpips > 0:
            self.lpips = build_lpips(self.cfg, model.means.device)
        self.lpips_targets: LpipsTargets | None = None
        if self.lpips is not None and self.cfg.lpips_target_cache:
            nchw = self._lpips_size(self.targets.permute(0, 3, 1, 2))
            self.lpips_targets = LpipsTargets(
                self.lpips, nchw, autocast=self.cfg.lpips_autocast and nchw.is_cuda,
                compile=self.cfg.lpips_compile,
            )  # fmt: skip
        if (self.cfg.lambda_face > 0 or self.cfg.lambda_hand > 0) and body is None:
            raise ConfigError("Face and hand patch losses need the body model.")
        self.optimizers = model.make_optimizers()
        self.generator = torch.Generator().manual_seed(self.cfg.seed)
        self.guard = NonFiniteGuard("reconstruction")
        self._order: list[int] = []

    def _next_views(self) -> list[int]:
        """Views for the next batch: every view once per epoch, in random order."""
        n = self.targets.shape[0]
        take = min(self.cfg.batch_size, n)
        while len(self._order) < take:
            self._order += torch.randperm(n, generator=self.generator).tolist()
        views, self._order = self._order[:take], self._order[take:]
        return views

    def _lpips_size(self, images: Tensor) -> Tensor:
        """``images`` [B, 3, H, W] at ``lpips_resolution`` (unchanged where None)."""
        side = self.cfg.lpips_resolution
        if side is None or side == images.shape[-1]:
            return images
        return F.interpolate(images, (side, side), mode="bilinear", align_corners=False,
                             antialias=True)  # fmt: skip

    def image_loss(self, render: Tensor, target: Tensor,
                   views: list[int] | None = None) -> dict[str, Tensor]:  # fmt: skip
        """L1 and LPIPS [scalars] between images [B, H, W, 3] in [0, 1]. ``views``: the
        target views, whose cached LPIPS features are used where there are any."""
        cfg = self.cfg
        terms = {"loss_l1": (render - target).abs().mean()}
        if self.lpips is not None:
            a = self._lpips_size(render.permute(0, 3, 1, 2))
            # Per-view checkpointing on CUDA only: on the CPU the backward of VGG run one
            # view at a time gave different bits from run to run with several threads
            # (measured; one batched call did not), and a CPU has the memory it saves.
            recompute = bool(cfg.lpips_checkpoint) and a.is_cuda
            if views is not None and self.lpips_targets is not None:
                terms["loss_lpips"] = self.lpips_targets.loss(a, views, recompute)
            else:
                b = self._lpips_size(target.permute(0, 3, 1, 2))
                terms["loss_lpips"] = lpips_loss(self.lpips, a, b, recompute,
                                                 cfg.lpips_autocast and a.is_cuda)  # fmt: skip
        return terms

    def _weighted(self, terms: dict[str, Tensor]) -> Tensor:
        cfg = self.cfg
        loss = cfg.lambda_l1 * terms["loss_l1"]
        if "loss_lpips" in terms:
            loss = loss + cfg.lambda_lpips * terms["loss_lpips"]
        return loss

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        views = self._next_views()
        batch = select_views(self.cameras, views)
        with record_function("reconstruction/render"):
            render = render_views(self.model, batch, cfg.background, backend=cfg.backend)  # type: ignore[arg-type]
        target = self.targets[views]
        with record_function("reconstruction/image_loss"):
            terms = self.image_loss(render["comp_rgb"], target, views)
        loss = self._weighted(terms)
        for name, weight, centres, radius in (
            ("face", cfg.lambda_face, self._head(), cfg.face_radius),
            ("hand", cfg.lambda_hand, self._hands(), cfg.hand_radius),
        ):
            if weight > 0 and centres is not None:
                boxes = patch_boxes(centres, radius, batch)
                patch_terms = self.image_loss(
                    crop_patches(render["comp_rgb"], boxes, cfg.patch_size).permute(0, 2, 3, 1),
                    crop_patches(target, boxes, cfg.patch_size).permute(0, 2, 3, 1),
                )
                terms[f"loss_{name}"] = self._weighted(patch_terms)
                loss = loss + weight * terms[f"loss_{name}"]
        with record_function("reconstruction/backward"):
            loss.backward()
        if not self.guard.ok(step, loss, self.model.params.values()):
            for optimizer in self.optimizers.values():  # skip the step, keep the Gaussians
                optimizer.zero_grad(set_to_none=True)
            return {"loss": float("nan"), "skipped": 1.0}
        for optimizer in self.optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        logs = {k: float(v.detach()) for k, v in terms.items()}
        logs["loss"] = float(loss.detach())
        return logs

    def _head(self) -> Tensor | None:
        return None if self.body is None else self.body.head_center[None]

    def _hands(self) -> Tensor | None:
        return None if self.body is None else self.body.hand_centers
