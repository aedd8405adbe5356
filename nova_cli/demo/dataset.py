"""A folder of rendered scenes that ``nova prepare`` reads: media files with a caption .txt beside each.

Clips are written as H.264 MP4 through the same writer as generations (so the training data has
the codec's look), at 12 fps; still images as PNG (``nova prepare`` gives them motion flow 0).
Scene ``i`` depends only on (seed, i), so a folder of n scenes is the start of any larger one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nova_core.demo.scenes import FPS, NUM_FRAMES, random_scene

CLIP, IMAGE = 0, 1  # seed streams


def scene_for(seed: int, kind: int, index: int, num_frames: int = NUM_FRAMES):
    return random_scene(np.random.default_rng([seed, kind, index]), num_frames=num_frames)


def write_dataset(folder, num_clips: int, num_images: int, seed: int) -> list[Path]:
    """Render ``num_clips`` clips and ``num_images`` images into ``folder``; returns the media paths.

    Files already there are kept (a rerun continues): each is written under a temporary name and
    renamed, so one that exists is complete.
    """
    from PIL import Image

    from ..writing import write_mp4  # the generations' H.264 settings

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, count, frames, suffix in ((CLIP, num_clips, NUM_FRAMES, ".mp4"), (IMAGE, num_images, 1, ".png")):
        for index in range(count):
            path = folder / f"{'clip' if kind == CLIP else 'image'}-{index:05d}{suffix}"
            paths.append(path)
            if path.is_file():
                continue
            scene = scene_for(seed, kind, index, frames)
            path.with_suffix(".txt").write_text(scene.caption + "\n")
            tmp = path.with_name(f".tmp-{path.name}")
            if kind == CLIP:
                write_mp4(tmp, scene.render(), FPS)
            else:
                Image.fromarray(scene.render()[0]).save(tmp, format="PNG")
            tmp.replace(path)
    return paths
