"""ArcFace's 5-point landmark template: where the eyes, the nose tip and the mouth corners
sit in the 112x112 crop ArcFace was trained on. The analysers place their landmarks in it
and the identity path aligns faces onto it."""

from __future__ import annotations

import numpy as np

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]], dtype=np.float64,
)  # fmt: skip
ARCFACE_CROP = 112  # px, the side of the crop the template is given in
