"""Reads a demo-grammar clip back into its caption's four attributes (colour, shape, direction,
background), so prompt following can be measured on generated videos.

Background: the median of the border pixels, named by the nearest background colour. Object:
each pixel's share of the object colour on the line from the background colour (soft, so
anti-aliased and codec-blurred edges count by their coverage). Colour: the nearest palette colour
to the object's core pixels. Shape: soft area / (soft width x soft height), ~1 square, ~0.785
disc, ~0.5 triangle. Direction: the dominant axis and sign of the centroid's track.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nova_core.demo.scenes import BACKGROUNDS, COLOURS

FAR = 60.0  # RGB distance from the background that marks a pixel as the object's
FILL_TRIANGLE_BELOW, FILL_SQUARE_ABOVE = 0.64, 0.89  # between 0.5 / 0.785 / 1


@dataclass
class Reading:
    background: str | None
    colour: str | None
    shape: str | None
    direction: str | None  # None for a still image or an object that does not move
    present: np.ndarray  # (T,) bool: the object is visible in frame t
    fill: float
    track: np.ndarray  # (T, 2) centroid (x, y), nan where absent

    def attributes(self) -> dict:
        return dict(colour=self.colour, shape=self.shape, direction=self.direction, background=self.background)


def nearest(rgb, palette: dict) -> str:
    names = list(palette)
    distances = [np.linalg.norm(np.asarray(rgb, float) - palette[n]) for n in names]
    return names[int(np.argmin(distances))]


def border_median(frame: np.ndarray) -> np.ndarray:
    ring = np.concatenate([frame[0], frame[-1], frame[1:-1, 0], frame[1:-1, -1]])
    return np.median(ring.astype(float), axis=0)


def read(frames: np.ndarray) -> Reading:
    """``frames``: (T, H, W, 3) or (H, W, 3) uint8."""
    frames = np.asarray(frames)
    frames = frames[None] if frames.ndim == 3 else frames
    pixels = frames.astype(float)
    background = np.median(np.stack([border_median(f) for f in frames]), axis=0)
    distance = np.linalg.norm(pixels - background, axis=-1)
    far = distance > FAR
    if not far.any():
        empty = np.full((len(frames), 2), np.nan)
        return Reading(nearest(background, BACKGROUNDS), None, None, None, np.zeros(len(frames), bool), 0.0, empty)
    core = distance >= np.percentile(distance[far], 50)
    colour_rgb = np.median(pixels[core], axis=0)
    span = colour_rgb - background
    alpha = np.clip(((pixels - background) @ span) / (span @ span), 0, 1)
    alpha = np.where(distance > FAR / 3, alpha, 0.0)  # codec ripples on the background are not the object
    present = far.reshape(len(frames), -1).sum(axis=1) >= 4
    fills, track = [], np.full((len(frames), 2), np.nan)
    for t in np.flatnonzero(present):
        a = alpha[t]
        area = a.sum()
        width, height = a.max(axis=0).sum(), a.max(axis=1).sum()
        fills.append(area / max(width * height, 1e-6))
        ys, xs = np.mgrid[: a.shape[0], : a.shape[1]]
        track[t] = (xs * a).sum() / area, (ys * a).sum() / area
    fill = float(np.median(fills))
    shape = "triangle" if fill < FILL_TRIANGLE_BELOW else "square" if fill > FILL_SQUARE_ABOVE else "circle"
    return Reading(nearest(background, BACKGROUNDS), nearest(colour_rgb, COLOURS), shape,
                   _direction(track[present], frames.shape[1:3]), present, fill, track)


def _direction(track: np.ndarray, frame_size) -> str | None:
    """Dominant axis of the first-to-last displacement, if it moved at least 5 % of the frame."""
    if len(track) < 2:
        return None
    dx, dy = (track[-1] - track[0]) / np.array([frame_size[1], frame_size[0]])
    if max(abs(dx), abs(dy)) < 0.05:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"
