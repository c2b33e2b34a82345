"""Identity inputs from a portrait: ArcFace embedding and aligned face crop."""

from gaussianip.faces.analysers import (
    DetectedFace,
    FaceAnalyser,
    InsightFaceAnalyser,
    StandInFaceAnalyser,
    build_face_analyser,
)
from gaussianip.faces.identity import FaceError, Identity, align_face, extract_identity

__all__ = [
    "DetectedFace",
    "FaceAnalyser",
    "FaceError",
    "Identity",
    "InsightFaceAnalyser",
    "StandInFaceAnalyser",
    "align_face",
    "build_face_analyser",
    "extract_identity",
]
