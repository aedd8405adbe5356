"""Reading input images: every Pillow mode to 8-bit RGB, transparency on the documented background."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from nova_cli.errors import MediaError
from nova_cli.media import BACKGROUND, probe_image, read_image, to_rgb8

RAMP = np.linspace(0, 1, 64 * 48).reshape(48, 64)  # 0 top-left .. 1 bottom-right


def saved(tmp_path, image, name):
    path = tmp_path / name
    image.save(path)
    return path


@pytest.mark.parametrize("mode, values, suffix", [
    ("I;16", (RAMP * 65535).astype(np.uint16), ".png"),  # 16-bit grayscale PNG: white with convert("RGB")
    ("I;16B", (RAMP * 65535).astype(">u2"), ".tif"),
    ("I", (RAMP * 65535).astype(np.int32), ".tif"),  # 16-bit data in 32-bit integers
    ("F", RAMP.astype(np.float32), ".tif"),  # floats in 0..1
    ("L", (RAMP * 255).round().astype(np.uint8), ".png"),
])
def test_gray_images_of_any_depth_keep_their_tones(tmp_path, mode, values, suffix):
    if mode == "I;16B":
        image = Image.frombytes("I;16B", (64, 48), values.tobytes())
    else:
        image = Image.fromarray(values)
    assert image.mode == mode
    path = saved(tmp_path, image, f"gray{suffix}")
    with Image.open(path) as check:
        assert check.mode.startswith(mode[:1])
    rgb = read_image(path)
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    expected = (RAMP * 255).round()
    assert np.abs(rgb[..., 0].astype(int) - expected).max() <= 1
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_wide_integer_and_float_ranges_are_stretched():
    wide = Image.fromarray((RAMP * 1e6 - 5e5).astype(np.int32))
    floats = Image.fromarray((RAMP * 40 - 10).astype(np.float32))
    for image in (wide, floats):
        gray = to_rgb8(image)[..., 0]
        assert gray.min() == 0 and gray.max() == 255 and np.abs(gray - RAMP * 255).max() <= 1


def test_transparent_pixels_are_composited_on_the_background(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)  # the colour hiding under the transparent half
    rgba[:4, :, 3] = 255
    rgba[4:6, :, 3] = 128
    rgb = read_image(saved(tmp_path, Image.fromarray(rgba), "a.png"))
    assert (rgb[:4] == (10, 200, 30)).all()
    assert (rgb[6:] == BACKGROUND).all()
    half = (np.array((10, 200, 30)) * 128 + np.array(BACKGROUND) * 127) / 255
    assert np.abs(rgb[5, 0] - half).max() <= 1


@pytest.mark.parametrize("make", [
    lambda: Image.fromarray(np.stack([np.full((8, 8), 90, np.uint8), np.tile([0, 255], (8, 4)).astype(np.uint8)],
                                     -1)),
    lambda: _palette_with_transparency(),
    lambda: Image.fromarray(np.dstack([np.full((8, 8, 3), 90, np.uint8), np.tile([0, 255], (8, 4)).astype(np.uint8)])
                    ).convert("PA"),
])
def test_alpha_in_any_mode_uses_the_background(tmp_path, make):
    image = make()
    rgb = to_rgb8(image) if image.mode == "PA" else read_image(saved(tmp_path, image, "t.png"))  # no PA PNGs
    assert rgb.shape == (8, 8, 3)
    opaque = np.asarray(image.convert("RGBA"))[..., 3] == 255
    assert (rgb[~opaque] == BACKGROUND).all() and (rgb[opaque] != BACKGROUND).any()


def _palette_with_transparency():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([200, 0, 0] + [0, 0, 200] * 255)
    image.paste(1, (0, 0, 8, 4))
    image.info["transparency"] = 1
    return image


def test_cmyk_bilevel_and_ycbcr_become_rgb(tmp_path):
    cmyk = read_image(saved(tmp_path, Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "c.jpg"))
    assert np.abs(cmyk[0, 0].astype(int) - (255, 0, 0)).max() < 8
    assert (read_image(saved(tmp_path, Image.new("1", (8, 8), 1), "b.png")) == 255).all()
    assert to_rgb8(Image.new("YCbCr", (4, 4), (128, 128, 128))).shape == (4, 4, 3)
    assert to_rgb8(Image.new("La", (4, 4))).shape == (4, 4, 3)


def test_a_huge_image_is_refused_from_its_header_and_a_big_one_read_without_warnings(tmp_path, monkeypatch):
    path = saved(tmp_path, Image.new("L", (60, 50)), "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 3000 pixels: Pillow warns, nova reads it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(path).shape == (50, 60, 3) and probe_image(path) == (60, 50)
    assert caught == []
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 3000 > 2 x 1000: refused
    for read in (read_image, probe_image):
        with pytest.raises(MediaError, match=r"big\.png: the image is too large \(3,000 pixels\): nova reads at most"
                                             r" 2,000 pixels"):
            read(path)


def test_broken_image_data_is_a_media_error(tmp_path):
    good = saved(tmp_path, Image.new("RGB", (64, 64), (1, 2, 3)), "good.png").read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(good[:60])
    with pytest.raises(MediaError, match="broken.png: not a readable image"):
        read_image(broken)
