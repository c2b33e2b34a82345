"""Stage 2's View-Consistent Refinement: view plan, attention processors, refiner."""

from gaussianip.refine.attention import (
    DEFAULT_LAYERS,
    VCRAttnProcessor,
    VCRState,
    select_layers,
    vcr_processors,
)
from gaussianip.refine.vcr import VCRConfig, ViewConsistentRefiner
from gaussianip.refine.view_plan import Neighbours, ViewPlan, plan_views, ring_azimuths

__all__ = [
    "DEFAULT_LAYERS",
    "Neighbours",
    "VCRAttnProcessor",
    "VCRConfig",
    "VCRState",
    "ViewConsistentRefiner",
    "ViewPlan",
    "plan_views",
    "ring_azimuths",
    "select_layers",
    "vcr_processors",
]
