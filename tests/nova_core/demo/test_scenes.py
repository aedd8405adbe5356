"""The demo data follows the issue's rules, and the detector reads it back (also through H.264)."""

import numpy as np
import pytest

from nova_core.demo import scenes
from nova_cli.demo.dataset import scene_for, write_dataset
from tests.nova_core.demo import detector

NUM = 48


def all_scenes(seed=0, count=NUM):
    return [scene_for(seed, 0, i) for i in range(count)]


def test_captions_follow_the_grammar():
    for scene in all_scenes():
        words = scene.caption.split()
        assert words[0] == "a" and words[3] == "moving" and words[5:7] == ["on", "a"] and words[8] == "background"
        assert scenes.parse_caption(scene.caption) == dict(colour=scene.colour, shape=scene.shape,
                                                           direction=scene.direction, background=scene.background)
        assert scene.background != scene.colour
    with pytest.raises(ValueError):
        scenes.parse_caption("a red circle moving right on a red background")
    with pytest.raises(ValueError):
        scenes.random_scene(np.random.default_rng(0), colour="blue", background="blue")


def test_every_attribute_value_is_drawn():
    drawn = all_scenes(count=200)
    assert {s.colour for s in drawn} == set(scenes.COLOURS)
    assert {s.background for s in drawn} == set(scenes.BACKGROUNDS)
    assert {s.shape for s in drawn} == set(scenes.SHAPES)
    assert {s.direction for s in drawn} == set(scenes.DIRECTIONS)


def test_geometry_rules_hold_over_the_whole_clip():
    height, width = scenes.FRAME_SIZE
    for scene in all_scenes(count=200):
        assert 0.15 * height <= scene.size <= 0.30 * height
        first, last = np.array(scene.centre(0)), np.array(scene.centre(scene.num_frames - 1))
        dx, dy = scenes.DIRECTIONS[scene.direction]
        extent = width if dx else height
        travel = (last - first) @ np.array([dx, dy])
        assert travel >= 0.30 * extent - 1e-9
        for t in range(scene.num_frames):  # the bounding box stays inside the frame
            x, y = scene.centre(t)
            half = scene.size / 2
            assert half <= x <= width - half and half <= y <= height - half


def test_objects_start_at_the_centre():
    """Each clip and still starts at the frame's centre, whatever its direction, and moves out."""
    height, width = scenes.FRAME_SIZE
    for scene in all_scenes(count=100) + [scene_for(0, 1, i, num_frames=1) for i in range(50)]:
        x, y = scene.centre(0)
        assert abs(x - width / 2) <= scenes.START_JITTER and abs(y - height / 2) <= scenes.START_JITTER


def test_rendering_is_seeded_and_exact_in_colour():
    a, b = scene_for(3, 0, 5), scene_for(3, 0, 5)
    assert a == b and np.array_equal(a.render(), b.render())
    assert scene_for(3, 0, 6) != a
    video = a.render()
    assert video.shape == (scenes.NUM_FRAMES, *scenes.FRAME_SIZE, 3) and video.dtype == np.uint8
    assert (video[0, 0, 0] == scenes.BACKGROUNDS[a.background]).all()
    x, y = a.centre(0)
    assert (video[0, int(y), int(x)] == scenes.COLOURS[a.colour]).all()


def test_shapes_have_their_fill_ratio():
    rng = np.random.default_rng(1)
    for shape, fill in (("circle", np.pi / 4), ("square", 1.0), ("triangle", 0.5)):
        scene = scenes.random_scene(rng, num_frames=1, shape=shape)
        reading = detector.read(scene.render())
        assert reading.fill == pytest.approx(fill, abs=0.06), shape


def test_still_images_do_not_move():
    scene = scene_for(0, 1, 0, num_frames=1)
    assert scene.speed == 0 and scene.render().shape == (1, *scenes.FRAME_SIZE, 3)
    assert detector.read(scene.render()).direction is None


def assert_reads_back(pairs):
    wrong = [(s.caption, detector.read(frames).attributes()) for s, frames in pairs
             if detector.read(frames).attributes() != dict(colour=s.colour, shape=s.shape,
                                                           direction=s.direction, background=s.background)]
    assert not wrong, f"{len(wrong)} of {len(pairs)} misread: {wrong[:3]}"


def test_detector_reads_rendered_clips():
    drawn = all_scenes()
    assert_reads_back([(s, s.render()) for s in drawn])


def test_detector_reads_clips_after_the_mp4_round_trip(tmp_path):
    from nova_cli.media import read_video

    paths = write_dataset(tmp_path, NUM, 2, seed=0)
    assert len(list(tmp_path.glob("*.txt"))) == NUM + 2
    pairs = []
    for scene, path in zip(all_scenes(), paths):
        frames, fps = read_video(path)
        assert fps == scenes.FPS and len(frames) == scenes.NUM_FRAMES
        assert path.with_suffix(".txt").read_text().strip() == scene.caption
        pairs.append((scene, frames))
    assert_reads_back(pairs)
