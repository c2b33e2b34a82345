"""Face analysers: insightface's ``buffalo_l`` (the real one) and a clearly named stand-in.

An analyser maps an RGB image [H, W, 3] (uint8) to the faces it finds, each with a box, 5
landmarks and a 512-d embedding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gaussianip.errors import AssetError
from gaussianip.faces.landmarks import ARCFACE_CROP, ARCFACE_TEMPLATE

log = logging.getLogger(__name__)


@dataclass
class DetectedFace:
    bbox: np.ndarray  # [4] x0, y0, x1, y1 in pixels
    landmarks: np.ndarray  # [5, 2] eyes, nose tip, mouth corners
    embedding: np.ndarray  # [512]
    score: float


class FaceAnalyser(Protocol):
    def __call__(self, image: np.ndarray) -> list[DetectedFace]: ...


class InsightFaceAnalyser:
    """insightface's detector + ArcFace recogniser (model pack ``buffalo_l`` by default).

    The model pack must already be in ``root/models/<name>`` (insightface's layout, root
    default ``~/.insightface``); nothing is downloaded at run time.
    """

    def __init__(self, name: str = "buffalo_l", root: str | None = None, det_size: int = 640,
                 device: str = "cpu") -> None:  # fmt: skip
        root_dir = Path(root or Path.home() / ".insightface").expanduser()
        pack = root_dir / "models" / name
        if not any(pack.glob("*.onnx")):
            raise AssetError(
                f"The insightface model pack '{name}' is not in '{pack}'. Download "
                f"{name}.zip from the insightface model zoo (github.com/deepinsight/insightface, "
                f"'model_zoo') and unzip it there, or set the face analyser's root."
            )
        from insightface.app import FaceAnalysis

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else [
            "CPUExecutionProvider"
        ]  # fmt: skip
        self.app = FaceAnalysis(name=name, root=str(root_dir), providers=providers,
                                allowed_modules=["detection", "recognition"])  # fmt: skip
        self.app.prepare(ctx_id=0 if device == "cuda" else -1, det_size=(det_size, det_size))

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        faces = self.app.get(np.ascontiguousarray(image[..., ::-1]))  # insightface wants BGR
        return [
            DetectedFace(f.bbox.astype(np.float64), f.kps.astype(np.float64),
                         f.normed_embedding.astype(np.float32), float(f.det_score))
            for f in faces
        ]  # fmt: skip


class StandInFaceAnalyser:
    """NOT a face detector: for tests and the tiny CPU preset only.

    It "finds" one face in the centre square of the image (landmarks at ArcFace's template
    positions inside it) and embeds a downsampled copy of that square with a fixed random
    projection, so that different portraits give different, stable embeddings and the
    whole identity path runs without model files.
    """

    def __init__(self, seed: int = 0) -> None:
        log.warning("Using the stand-in face analyser: no real face detection or recognition.")
        self.projection = np.random.default_rng(seed).normal(size=(512, 16 * 16 * 3))

    def __call__(self, image: np.ndarray) -> list[DetectedFace]:
        h, w = image.shape[:2]
        side = 0.5 * min(h, w)
        x0, y0 = (w - side) / 2, (h - side) / 2
        landmarks = np.array([x0, y0]) + ARCFACE_TEMPLATE * side / ARCFACE_CROP
        ys = np.linspace(y0, y0 + side - 1, 16).astype(int)
        xs = np.linspace(x0, x0 + side - 1, 16).astype(int)
        small = image[np.ix_(ys, xs)].astype(np.float64).reshape(-1) / 255.0
        embedding = self.projection @ (small - small.mean())
        embedding /= np.linalg.norm(embedding) + 1e-12
        bbox = np.array([x0, y0, x0 + side, y0 + side])
        return [DetectedFace(bbox, landmarks, embedding.astype(np.float32), 1.0)]


def build_face_analyser(name: str = "buffalo_l", root: str | None = None,
                        device: str = "cpu") -> FaceAnalyser:  # fmt: skip
    """``"stand-in"`` gives ``StandInFaceAnalyser``; any other name an insightface pack."""
    if name == "stand-in":
        return StandInFaceAnalyser()
    return InsightFaceAnalyser(name, root, device=device)
