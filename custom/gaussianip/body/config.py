"""Which body model a run uses (``system.body`` in the YAML configs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BodyConfig:
    name: str = "default"  # "default" (free, shipped) or "smplx"
    model_path: str | None = None  # SMPL-X folder or file (default: load/smplx)
    gender: str = "neutral"
