"""What ``metrics.json`` holds: time and steps per phase, peak GPU memory, the key
settings, and the product's own identity check (ArcFace cosine similarity between the
portrait and frontal head renders)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gaussianip.data.human_cameras import ViewKind, make_batch
from gaussianip.engine.config import RunSettings
from gaussianip.faces import FaceAnalyser, Identity, StandInFaceAnalyser
from gaussianip.gaussians import GaussianModel
from gaussianip.images import to_uint8
from gaussianip.render.views import render_views

IDENTITY_AZIMUTHS = (-15.0, 0.0, 15.0)  # frontal head renders for the identity check


def identity_check(
    model: GaussianModel,
    head_center: Tensor,
    identity: Identity | None,
    analyser: FaceAnalyser,
    backend: str,
    resolution: int = 512,
) -> dict[str, Any]:
    """Cosine similarity of the portrait's ArcFace embedding (``identity``) with the
    largest face ``analyser`` finds in each frontal render of ``model`` around the head
    centre [3] (0.6 m away, 45 deg fov); skipped without real face models."""
    if identity is None:
        return {"arcface_cosine": None, "reason": "no portrait (system.face_image is null)"}
    if isinstance(analyser, StandInFaceAnalyser):
        reason = "stand-in face analyser (not a face model): no identity check"
        return {"arcface_cosine": None, "reason": reason}
    n = len(IDENTITY_AZIMUTHS)
    head = head_center.float().cpu().expand(n, 3)
    batch = make_batch(head, torch.zeros(n), torch.tensor(IDENTITY_AZIMUTHS),
                       torch.full((n,), 0.6), torch.full((n,), 45.0), resolution, resolution,
                       torch.full((n,), int(ViewKind.HEAD)))  # fmt: skip
    with torch.no_grad():
        images = render_views(model, batch, backend=backend)  # type: ignore[arg-type]
    scores: list[float | None] = []
    reference = identity.embedding / np.linalg.norm(identity.embedding)
    for image in to_uint8(images["comp_rgb"]):
        faces = analyser(image)
        if not faces:
            scores.append(None)
            continue
        face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
        embedding = face.embedding / np.linalg.norm(face.embedding)
        scores.append(float(reference @ embedding))
    found = [s for s in scores if s is not None]
    return {
        "arcface_cosine": float(np.mean(found)) if found else None,
        "per_view": scores,
        "azimuths": list(IDENTITY_AZIMUTHS),
        "reason": None if found else "no face detected in the frontal renders",
    }


def run_metrics(
    s: RunSettings,
    record: dict[str, Any],
    num_gaussians: int,
    device: torch.device,
    skipped: dict[str, int],
    stage1_steps: int,
    memory_plan: dict[str, Any],
) -> dict[str, Any]:
    """The whole ``metrics.json`` object. ``record``: the run's own record (``phases``,
    ``setup_seconds``, ``identity``, ``resumed``); ``skipped``: non-finite steps skipped
    per phase; ``stage1_steps``: the steps stage 1 ran (0 when it started at stage 2);
    ``memory_plan``: the run's memory plan (``MemoryPlan.as_dict()``)."""
    metrics: dict[str, Any] = {
        "phases": record["phases"],
        "setup_seconds": round(record["setup_seconds"], 3),
        "total_seconds": round(sum(p["seconds"] for p in record["phases"].values()), 3),
        "num_gaussians": num_gaussians,
        "device": str(device),
        "identity": record.get("identity"),
        "skipped_nonfinite_steps": skipped,
        # each --resume: the step it continued at, the phase then under way, and when;
        # seconds before the stop are kept, those between the last checkpoint and a kill lost
        "resumed": record.get("resumed", []),
        # the speed-for-memory switches and the rule that chose them (README "Memory")
        "memory_plan": memory_plan,
    }
    if device.type == "cuda":
        metrics["peak_gpu_memory_gib"] = {
            "allocated": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            "reserved": round(torch.cuda.max_memory_reserved() / 2**30, 3),
        }
        metrics["gpu"] = torch.cuda.get_device_name()
    metrics["config"] = {
        "prompt": s.prompt,
        "face_image": s.system.face_image,
        "prior_preset": s.prior.preset,
        "base_model": s.prior.base_model,
        "stage2_from": s.system.stage2_from,
        "stage1": {
            "steps": stage1_steps,
            "batch_size": s.data.batch_size,
            "resolution": s.guidance.resolution,
            "init_num_points": s.gaussians.init_num_points,
        },  # fmt: skip
        "vcr": {
            **{k: v for k, v in asdict(s.vcr).items() if k != "negative_prompt"},
            "ring_size": s.data.ring_size,
            "ring_resolution": s.data.ring_height,
        },  # fmt: skip
        "reconstruction": asdict(s.reconstruction),
        "seed": s.seed,
    }
    return metrics
