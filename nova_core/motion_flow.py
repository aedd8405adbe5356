"""Motion flow: the one number NOVA's video checkpoint is conditioned on (``motion_flow``).

Measured the way NOVA's training clips were (baaivision/NOVA issue 10): in each pair of
consecutive frames, up to 100 Shi-Tomasi corners of the first frame are tracked into the second
with pyramidal Lucas-Kanade flow, and the pair's value is the mean displacement in pixels of the
corners that were found. The clip's value is the mean over its pairs. We measure at the model's
frame rate (12 fps) and resolution (768x480), so that a number means the same for every clip.
Typical training values lie in 0..~10; the pipeline default is 5.
"""

from __future__ import annotations

import numpy as np

TRAINING_FPS = 12
FEATURES = dict(maxCorners=100, qualityLevel=0.1, minDistance=7, blockSize=7)
LUCAS_KANADE = dict(winSize=(15, 15), maxLevel=2)


def pair_flow(previous: np.ndarray, current: np.ndarray) -> float | None:
    """Mean corner displacement (pixels) between two RGB uint8 frames; None if nothing to track."""
    import cv2

    gray0 = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY)
    gray1 = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(gray0, mask=None, **FEATURES)
    if corners is None:
        return None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(gray0, gray1, corners, None, **LUCAS_KANADE)
    found = status.ravel() == 1
    if not found.any():
        return None
    return float(np.linalg.norm((moved - corners)[found].reshape(-1, 2), axis=1).mean())


def clip_flow(frames) -> float:
    """Mean of :func:`pair_flow` over consecutive frames (already at 12 fps and model size).

    Pairs without trackable corners (flat frames) are skipped; a clip with none gives 0.
    """
    values = [pair_flow(a, b) for a, b in zip(frames[:-1], frames[1:])]
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else 0.0
