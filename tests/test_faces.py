import logging

import numpy as np
import pytest

from gaussianip.errors import AssetError
from gaussianip.faces import (
    DetectedFace,
    FaceError,
    InsightFaceAnalyser,
    StandInFaceAnalyser,
    align_face,
    extract_identity,
)

PORTRAIT = "load/portraits/eileen_collins_nasa.png"
OTHER = "load/portraits/grace_hopper_us_navy.jpg"


def test_alignment_matches_insightface_norm_crop():
    face_align = pytest.importorskip("insightface.utils.face_align")
    from gaussianip.faces.identity import read_portrait

    image = read_portrait(PORTRAIT)
    # Landmarks of a slightly rotated, scaled face somewhere in the image.
    base = np.array([[200.0, 120], [250, 118], [226, 148], [205, 175], [246, 173]])
    theirs = face_align.norm_crop(image, landmark=base, image_size=224)
    ours = align_face(image, base, 224)
    assert ours.shape == (224, 224, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_stand_in_identity_is_stable_and_portrait_specific():
    analyser = StandInFaceAnalyser()
    a = extract_identity(PORTRAIT, analyser)
    b = extract_identity(PORTRAIT, analyser)
    c = extract_identity(OTHER, analyser)
    assert a.embedding.shape == (512,) and np.isclose(np.linalg.norm(a.embedding), 1.0)
    assert a.crop.shape == (224, 224, 3) and a.crop.dtype == np.uint8
    assert np.array_equal(a.embedding, b.embedding)
    assert float(a.embedding @ c.embedding) < 0.9


class _Faces:
    def __init__(self, *boxes):
        self.boxes = boxes

    def __call__(self, image):
        out = []
        for i, (x0, y0, x1, y1) in enumerate(self.boxes):
            lm = np.array([[x0 + 0.3 * (x1 - x0), y0 + 0.4 * (y1 - y0)]] * 5) + np.arange(
                10
            ).reshape(5, 2)
            emb = np.zeros(512, dtype=np.float32)
            emb[i] = 2.0
            out.append(DetectedFace(np.array([x0, y0, x1, y1], float), lm, emb, 0.9))
        return out


def test_largest_face_is_taken_and_said(caplog):
    with caplog.at_level(logging.WARNING):
        identity = extract_identity(PORTRAIT, _Faces((10, 10, 70, 70), (100, 100, 300, 300)))
    assert identity.embedding[1] == 1.0 and identity.num_faces == 2
    assert "2 faces; using the largest" in caplog.text


def test_portrait_errors(tmp_path):
    with pytest.raises(FaceError, match="No face found"):
        extract_identity(PORTRAIT, lambda image: [])
    with pytest.raises(FaceError, match="only 20x20 pixels"):
        extract_identity(PORTRAIT, _Faces((0, 0, 20, 20)))
    with pytest.raises(AssetError, match="not found"):
        extract_identity(tmp_path / "missing.png", StandInFaceAnalyser())
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(AssetError, match="not a readable image"):
        extract_identity(text, StandInFaceAnalyser())
    with pytest.raises(AssetError, match="is a folder"):
        extract_identity(tmp_path, StandInFaceAnalyser())


def test_missing_insightface_pack_says_how_to_get_it(tmp_path):
    with pytest.raises(AssetError, match="buffalo_l.*not in.*model_zoo"):
        InsightFaceAnalyser("buffalo_l", root=str(tmp_path))
