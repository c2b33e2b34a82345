"""The identity inputs of IP-Adapter-FaceID-PlusV2, from one portrait.

The portrait's largest face gives (a) the L2-normalised 512-d ArcFace embedding and (b) a
224x224 crop aligned on its 5 landmarks (insightface's ``norm_crop``), for CLIP-H.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gaussianip.errors import GaussianIPError
from gaussianip.faces.analysers import DetectedFace, FaceAnalyser
from gaussianip.faces.landmarks import ARCFACE_CROP, ARCFACE_TEMPLATE
from gaussianip.images import read_rgb
from gaussianip.paths import resolve_asset

log = logging.getLogger(__name__)

MIN_FACE_PIXELS = 48  # smaller faces carry too little identity to be worth distilling


class FaceError(GaussianIPError):
    """No usable face in a portrait."""


@dataclass
class Identity:
    embedding: np.ndarray  # [512] float32, unit norm
    crop: np.ndarray  # [224, 224, 3] uint8 RGB, aligned on the 5 landmarks
    face: DetectedFace
    num_faces: int
    source: str


def read_portrait(path: str | Path, key: str | None = None) -> np.ndarray:
    """The portrait as an RGB uint8 array [H, W, 3]; clear errors (``AssetError`` naming the
    path, and ``key``, its config key, if given) for missing, unreadable and non-image
    files."""
    what = f"portrait ({key})" if key else "portrait"
    return read_rgb(resolve_asset(path, what), what)


def check_portrait(path: str | Path, key: str | None = None) -> np.ndarray:
    """``read_portrait`` plus the checks that need no face model: an image smaller than
    ``MIN_FACE_PIXELS`` on a side cannot hold a usable face (``FaceError``). Returns the
    image."""
    image = read_portrait(path, key)
    height, width = image.shape[:2]
    if min(height, width) < MIN_FACE_PIXELS:
        where = f" ({key})" if key else ""
        raise FaceError(
            f"The portrait '{path}'{where} is only {width}x{height} pixels; a face needs at "
            f"least {MIN_FACE_PIXELS}x{MIN_FACE_PIXELS}. Use a larger photo (e.g. 512 px or "
            "more, the face filling a good part of it)."
        )
    return image


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity [2, 3] mapping points ``src`` [N, 2] onto ``dst`` (Umeyama)."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 224) -> np.ndarray:
    """The face crop [size, size, 3] aligned on its 5 landmarks [5, 2] (as insightface's
    ``face_align.norm_crop``)."""
    matrix = similarity_transform(
        landmarks.astype(np.float64), ARCFACE_TEMPLATE * size / ARCFACE_CROP
    )
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)


def extract_identity(path: str | Path, analyser: FaceAnalyser) -> Identity:
    """Embedding and aligned crop of the largest face in the portrait at ``path``."""
    image = read_portrait(path)
    faces = analyser(image)
    if not faces:
        raise FaceError(
            f"No face found in the portrait '{path}'. Use a photo where one face is clearly "
            "visible, frontal and well lit."
        )
    face = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))
    if len(faces) > 1:
        box = ", ".join(f"{v:.0f}" for v in face.bbox)
        log.warning("The portrait '%s' has %d faces; using the largest (box %s). Crop the "
                    "photo to one face to choose another.", path, len(faces), box)  # fmt: skip
    width, height = face.bbox[2] - face.bbox[0], face.bbox[3] - face.bbox[1]
    if min(width, height) < MIN_FACE_PIXELS:
        raise FaceError(
            f"The face in '{path}' is only {width:.0f}x{height:.0f} pixels; at least "
            f"{MIN_FACE_PIXELS} px are needed. Use a closer or larger photo."
        )
    norm = float(np.linalg.norm(face.embedding))
    if not (np.isfinite(norm) and norm > 0):
        raise FaceError(
            f"The face in '{path}' gives no identity (embedding norm {norm}): the image is "
            "blank or uniform. Use a real photo of the face."
        )
    embedding = face.embedding / norm
    return Identity(
        embedding=embedding.astype(np.float32),
        crop=align_face(image, face.landmarks),
        face=face,
        num_faces=len(faces),
        source=str(path),
    )
