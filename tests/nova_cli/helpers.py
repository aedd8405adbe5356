"""Tiny synthetic media files for CLI tests."""

import numpy as np


def write_video(path, num_frames, size=(72, 120), fps=24, speed=5):
    """A clip of moving diagonal stripes (trackable corners, known motion)."""
    import imageio_ffmpeg

    h, w = size
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, macro_block_size=1)
    writer.send(None)
    y, x = np.mgrid[:h, :w]
    for t in range(num_frames):
        frame = np.stack([(x * 4 + t * speed) % 256, (y * 3) % 256, (x + y + t * speed) % 256], -1)
        writer.send(np.ascontiguousarray(frame.astype(np.uint8)))
    writer.close()
    return path


def write_image(path, size=(80, 80), seed=0):
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``nova argv`` run in this process."""
    from nova_cli.app import run

    code = run([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err
