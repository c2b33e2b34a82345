"""Body models: the free default template and SMPL-X, behind one interface."""

from __future__ import annotations

from gaussianip.body.base import OPENPOSE_BODY_NAMES, BodyModel
from gaussianip.body.config import BodyConfig
from gaussianip.errors import BodyModelError

BODY_MODELS = ("default", "anny", "smplx")


def build_body_model(
    name: str = "default", model_path: str | None = None, gender: str = "neutral"
) -> BodyModel:
    """The body called ``name``: "default" (alias "anny"; shipped, free) or "smplx"
    (license-gated files in ``model_path``, default ``load/smplx``)."""
    if name in ("default", "anny"):
        from gaussianip.body.template import DEFAULT_TEMPLATE, load_template

        return load_template(model_path or DEFAULT_TEMPLATE)
    if name == "smplx":
        from gaussianip.body.smplx_body import load_smplx

        return load_smplx(model_path, gender)
    raise BodyModelError(
        f"Unknown body model '{name}'. Choose one of: {', '.join(BODY_MODELS)} "
        "(system.body.name, or --body on the command line)."
    )


__all__ = ["BODY_MODELS", "OPENPOSE_BODY_NAMES", "BodyConfig", "BodyModel", "build_body_model"]
