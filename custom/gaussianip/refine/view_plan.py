"""Which refinement view attends to which (method.md, "Stage 2"), derived from azimuths.

The ring's views at the eight multiples of 45 degrees anchor the plan:

- principal views, at 0 (front), 90 (left), 180 (back) and -90 (right): plain
  self-attention, run first;
- key views, at +-45 and +-135: mutual attention with the front view (front diagonals) or
  the back view (back diagonals);
- intermediate views, every other view: attention fused from the two anchors around it,
  weighted by azimuth distance (the nearer, the heavier).

Any ring whose views include the eight anchors works: 8k evenly spaced views from -180
(16, 32, 64) give k - 1 intermediate views between neighbouring anchors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gaussianip.errors import ConfigError

ANCHOR_SPACING = 45.0
PRINCIPAL_AZIMUTHS = (0.0, 90.0, 180.0, -90.0)  # front, left, back, right
KEY_AZIMUTHS = (45.0, 135.0, -135.0, -45.0)
SECTOR_NAMES = {  # the anchor nearest to a view names its side (prompt suffixes)
    0.0: "front", 45.0: "left front", 90.0: "left", 135.0: "left back",
    180.0: "back", -135.0: "right back", -90.0: "right", -45.0: "right front",
}  # fmt: skip


def wrap_azimuth(azimuth: float) -> float:
    """Azimuth in degrees, wrapped to (-180, 180]."""
    wrapped = (azimuth + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 else wrapped


def _angle_between(a: float, b: float) -> float:
    return abs(wrap_azimuth(a - b))


@dataclass(frozen=True)
class Neighbours:
    """An intermediate view's two anchors and their weights (eta_left + eta_right = 1)."""

    left: int
    right: int
    eta_left: float
    eta_right: float


@dataclass(frozen=True)
class ViewPlan:
    """Roles of the ring's views (indices into the ring)."""

    azimuths: tuple[float, ...]
    principal: tuple[int, ...]  # front, left, back, right
    key: tuple[int, ...]  # +45, +135, -135, -45
    key_reference: dict[int, int]  # key view -> the principal view it attends to
    intermediate: tuple[int, ...]
    neighbours: dict[int, Neighbours]  # intermediate view -> its two anchors

    @property
    def groups(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(mode, views) in the order they are denoised at every step."""
        return (("principal", self.principal), ("key", self.key),
                ("intermediate", self.intermediate))  # fmt: skip

    def references(self, view: int) -> tuple[int, ...]:
        """The views whose stored tokens ``view`` needs at each denoising step."""
        if view in self.key_reference:
            return (self.key_reference[view],)
        if view in self.neighbours:
            n = self.neighbours[view]
            return (n.left, n.right)
        return ()

    def closure(self, views: Sequence[int]) -> tuple[int, ...]:
        """``views`` plus every view they depend on (sorted): what must be denoised to
        produce ``views`` (a resumed refinement that lacks only some views)."""
        needed = set(views)
        for view in views:
            for ref in self.references(view):
                needed.add(ref)
                needed.update(self.references(ref))
        return tuple(sorted(needed))

    def side(self, view: int) -> str:
        """Name of the side the view shows ("front", "left front", ...)."""
        return side_name(self.azimuths[view])


def anchor_of(azimuth: float, tolerance: float = 1e-3) -> float | None:
    """The principal or key azimuth that a view at ``azimuth`` sits on, or None for an
    intermediate view."""
    for anchor in PRINCIPAL_AZIMUTHS + KEY_AZIMUTHS:
        if _angle_between(azimuth, anchor) <= tolerance:
            return anchor
    return None


def side_name(azimuth: float) -> str:
    """The side of the body seen from ``azimuth`` degrees, named by the nearest anchor."""
    anchor = min(SECTOR_NAMES, key=lambda a: _angle_between(azimuth, a))
    return SECTOR_NAMES[anchor]


def plan_views(azimuths: Sequence[float] | Tensor, tolerance: float = 1e-3) -> ViewPlan:
    """The refinement plan of a ring with view azimuths ``azimuths`` [N] in degrees."""
    values = azimuths.tolist() if isinstance(azimuths, Tensor) else list(azimuths)
    values = [wrap_azimuth(float(a)) for a in values]

    def view_at(anchor: float) -> int:
        for i, a in enumerate(values):
            if _angle_between(a, anchor) <= tolerance:
                return i
        raise ConfigError(
            f"The refinement ring has no view at azimuth {anchor:g} deg (its {len(values)} "
            f"views are at {[round(a, 2) for a in values]}). Use a ring of 8k evenly spaced "
            "views from -180 deg: data.ring_size 16, 32 or 64."
        )

    anchor_view = {a: view_at(a) for a in PRINCIPAL_AZIMUTHS + KEY_AZIMUTHS}
    principal = tuple(anchor_view[a] for a in PRINCIPAL_AZIMUTHS)
    key = tuple(anchor_view[a] for a in KEY_AZIMUTHS)
    front, back = anchor_view[0.0], anchor_view[180.0]
    key_reference = {anchor_view[a]: (front if abs(a) < 90.0 else back) for a in KEY_AZIMUTHS}

    anchors = set(principal + key)
    intermediate = tuple(i for i in range(len(values)) if i not in anchors)
    neighbours: dict[int, Neighbours] = {}
    for i in intermediate:
        # Anchors at floor and ceil of the azimuth in 45-degree units (wrapping at 180).
        low = ANCHOR_SPACING * (values[i] // ANCHOR_SPACING)
        offset = (values[i] - low) / ANCHOR_SPACING  # in (0, 1)
        left, right = anchor_view[wrap_azimuth(low)], anchor_view[wrap_azimuth(low + 45.0)]
        neighbours[i] = Neighbours(left, right, eta_left=1.0 - offset, eta_right=offset)
    return ViewPlan(tuple(values), principal, key, key_reference, intermediate, neighbours)


def ring_azimuths(n_views: int, start: float = -180.0) -> Tensor:
    """Azimuths [n_views] of an evenly spaced ring (the refinement ring's formula)."""
    return start + torch.arange(n_views, dtype=torch.float64) * (360.0 / n_views)
