"""Procedural scenes for the demo model: one coloured shape moving across a plain background.

The data is fixed by a grammar so generation quality can be measured: every caption reads
``a {colour} {shape} moving {direction} on a {background} background``. The object's size is
15-30 % of the frame height, it moves at constant speed, stays entirely inside the frame for
the whole clip and travels at least 30 % of the frame along its direction. Still images (the
t2i case, motion flow 0) are scenes with ``num_frames = 1``. Everything is drawn from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS = {
    "red": (220, 40, 40), "orange": (245, 140, 30), "yellow": (235, 215, 40), "green": (40, 180, 70),
    "cyan": (40, 200, 220), "blue": (40, 80, 230), "purple": (150, 60, 210), "white": (240, 240, 240),
}
BACKGROUNDS = {
    "black": (15, 15, 15), "gray": (120, 120, 120), "white": COLOURS["white"],
    "blue": COLOURS["blue"], "green": COLOURS["green"],
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}  # (dx, dy), y down

# (H, W): near the 768x480 aspect (0.6 vs 0.625), and a multiple of 32 px on both sides: 8x the VAE, 2x2
# patches for the spatial and 4x4 for the temporal encoder. At 80x128 (10x16 latents) the temporal
# encoder's 4x4 patches dropped the bottom two latent rows: an object in the lowest 16 px was invisible
# to the frames after it.
FRAME_SIZE = (96, 160)
NUM_FRAMES = 33  # the trained length: 9 latent frames
FPS = 12
SIZE_RANGE = (0.15, 0.30)  # object size / frame height
MIN_TRAVEL = 0.30  # share of the frame crossed along the direction over the clip, at least
START_JITTER = 3.0  # px: spread of the start around the frame's centre, on both axes
SUPERSAMPLE = 4  # sub-pixel samples per side: soft, exact-area edges


def caption(colour: str, shape: str, direction: str, background: str) -> str:
    return f"a {colour} {shape} moving {direction} on a {background} background"


def parse_caption(text: str) -> dict:
    """The four attributes of a grammar caption; ValueError for anything else."""
    words = text.strip().lower().split()
    if (len(words) != 9 or words[0] != "a" or words[3] != "moving" or words[5:7] != ["on", "a"]
            or words[8] != "background" or words[1] not in COLOURS or words[2] not in SHAPES
            or words[4] not in DIRECTIONS or words[7] not in BACKGROUNDS or words[1] == words[7]):
        raise ValueError(f"not a demo caption: {text!r}")
    return dict(colour=words[1], shape=words[2], direction=words[4], background=words[7])


@dataclass(frozen=True)
class Scene:
    """One clip: what is drawn and where. Positions are the object's centre in pixels."""

    colour: str
    shape: str
    direction: str
    background: str
    size: float  # side / diameter / triangle base and height, in pixels
    start: tuple[float, float]  # (x, y) at frame 0
    speed: float  # pixels per frame along the direction
    num_frames: int = NUM_FRAMES
    frame_size: tuple[int, int] = FRAME_SIZE

    @property
    def caption(self) -> str:
        return caption(self.colour, self.shape, self.direction, self.background)

    def centre(self, t: int) -> tuple[float, float]:
        dx, dy = DIRECTIONS[self.direction]
        return self.start[0] + dx * self.speed * t, self.start[1] + dy * self.speed * t

    def render(self) -> np.ndarray:
        """(num_frames, H, W, 3) uint8."""
        return np.stack([render_frame(self, t) for t in range(self.num_frames)])


def random_scene(rng: np.random.Generator, num_frames: int = NUM_FRAMES, frame_size=FRAME_SIZE,
                 **fixed) -> Scene:
    """A scene with every attribute drawn (or given in ``fixed``), always within the rules.

    ``num_frames`` is the length the rules hold for (the trained length); 1 gives a still image.
    Every object starts at the frame's centre (within START_JITTER px) and moves out from there:
    nothing in a caption says where the object is, and a demo-sized model learns a place that
    depends on the caption slowly. Measured on its transformer (oracle latents, stills, 1500 steps):
    with starts on four lanes by direction (near the edge left, on the middle line) a sampled object
    sat at its start in 1 of 24 images; with centre starts in 23 of 24. From the centre an object
    has room for the rules' 30 % travel at any size; size and travel stay random within the rules.
    """
    height, width = frame_size
    colour = fixed.get("colour") or str(rng.choice(list(COLOURS)))
    background = fixed.get("background") or str(rng.choice([b for b in BACKGROUNDS if b != colour]))
    if background == colour:
        raise ValueError(f"the background cannot be the object's colour ({colour})")
    shape = fixed.get("shape") or str(rng.choice(SHAPES))
    direction = fixed.get("direction") or str(rng.choice(list(DIRECTIONS)))
    size = float(rng.uniform(*SIZE_RANGE) * height)
    dx, dy = DIRECTIONS[direction]
    start = (width / 2 + float(rng.uniform(-START_JITTER, START_JITTER)),
             height / 2 + float(rng.uniform(-START_JITTER, START_JITTER)))
    extent, along = (width, start[0]) if dx else (height, start[1])
    ahead = along if (dx < 0 or dy < 0) else extent - along  # centre to the edge it moves towards
    room = ahead - size / 2 - 1  # centre travel that keeps a 1-pixel margin
    if num_frames > 1 and room < MIN_TRAVEL * extent:
        raise ValueError(f"a {frame_size[0]}x{frame_size[1]} frame has no room for the rules' travel from its centre")
    travel = float(rng.uniform(MIN_TRAVEL * extent, room)) if num_frames > 1 else 0.0  # up to the edge's margin
    speed = travel / max(num_frames - 1, 1)
    return Scene(colour, shape, direction, background, size, start, speed, num_frames, tuple(frame_size))


def render_frame(scene: Scene, t: int) -> np.ndarray:
    """(H, W, 3) uint8: the background, blended with the object by its exact pixel coverage."""
    height, width = scene.frame_size
    s = SUPERSAMPLE
    cx, cy = scene.centre(t)
    ys = (np.arange(height * s) + 0.5) / s
    xs = (np.arange(width * s) + 0.5) / s
    y, x = ys[:, None] - cy, xs[None, :] - cx  # relative to the centre
    half = scene.size / 2
    if scene.shape == "circle":
        inside = x**2 + y**2 <= half**2
    elif scene.shape == "square":
        inside = (np.abs(x) <= half) & (np.abs(y) <= half)
    else:  # upright isosceles triangle: apex on top, flat base, as wide as it is tall
        inside = (y <= half) & (np.abs(x) <= (y + half) / 2)
    coverage = inside.reshape(height, s, width, s).mean(axis=(1, 3))[..., None]
    background = np.array(BACKGROUNDS[scene.background], np.float64)
    colour = np.array(COLOURS[scene.colour], np.float64)
    return np.round(background + coverage * (colour - background)).astype(np.uint8)
