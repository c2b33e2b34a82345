"""Photos as users hand them to us: EXIF orientation, every Pillow mode, huge and animated
images, each against a reference conversion written out here."""

import logging
import warnings

import numpy as np
import pytest
from PIL import Image

from gaussianip import photos
from gaussianip.errors import AssetError
from gaussianip.photos import read_photo

RNG = np.random.default_rng(0)


def _grey_rgb(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.round(values).astype(np.uint8)[..., None], 3, axis=-1)


def _over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reference compositing over white, in integers: c * a + 255 * (1 - a)."""
    a = alpha.astype(np.float64)[..., None] / 255.0
    return np.round(rgb.astype(np.float64) * a + 255.0 * (1.0 - a)).astype(np.uint8)


def test_16_bit_grey_png_keeps_its_tones(tmp_path):
    values = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    ours = read_photo(tmp_path / "grey16.png")
    np.testing.assert_array_equal(ours, _grey_rgb(values / 257.0))
    assert ours.mean() < 200  # not the near-white of a plain convert("RGB")


@pytest.mark.parametrize("largest", [40_000, 1_000_000])
def test_32_bit_integer_image_is_scaled_as_16_bit_or_by_its_maximum(tmp_path, largest):
    values = np.linspace(0, largest, 32 * 32).reshape(32, 32).astype(np.int32)
    Image.fromarray(values, "I").save(tmp_path / "grey32.tif")
    top = 65535.0 if largest <= 65535 else largest
    np.testing.assert_array_equal(read_photo(tmp_path / "grey32.tif"),
                                  _grey_rgb(values / top * 255.0))  # fmt: skip


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_image_is_read_as_unit_or_byte_range_and_clipped(tmp_path, scale):
    values = np.linspace(-0.2, 1.2, 40 * 30).reshape(30, 40).astype(np.float32) * scale
    Image.fromarray(values, "F").save(tmp_path / "float.tif")
    expected = np.clip(values.astype(np.float64) / scale, 0, 1) * 255.0
    np.testing.assert_array_equal(read_photo(tmp_path / "float.tif"), _grey_rgb(expected))


def test_palette_image_with_and_without_transparency(tmp_path):
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, (24, 40), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.reshape(-1).tolist())
    image.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_photo(tmp_path / "palette.png"), palette[index])
    image.save(tmp_path / "palette_t.png", transparency=int(index[0, 0]))
    expected = palette[index].copy()
    expected[index == index[0, 0]] = 255  # the transparent entry shows the white background
    np.testing.assert_array_equal(read_photo(tmp_path / "palette_t.png"), expected)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_over_white(tmp_path, mode):
    channels = 3 if mode == "RGBA" else 1
    colour = RNG.integers(0, 256, (20, 30, channels), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (20, 30), dtype=np.uint8)
    pixels = np.concatenate([colour, alpha[..., None]], axis=-1)
    Image.fromarray(pixels, mode).save(tmp_path / "alpha.png")
    rgb = np.repeat(colour, 3 // channels, axis=-1)
    np.testing.assert_array_equal(read_photo(tmp_path / "alpha.png"), _over_white(rgb, alpha))


def test_palette_with_alpha(tmp_path):
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, (16, 16), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (16, 16), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.reshape(-1).tolist())
    pa = image.convert("PA")
    pa.putalpha(Image.fromarray(alpha, "L"))
    assert pa.mode == "PA"
    photos_image = photos.to_rgb(pa)
    np.testing.assert_array_equal(np.asarray(photos_image), _over_white(palette[index], alpha))


@pytest.mark.parametrize("mode", ["CMYK", "1", "L", "YCbCr"])
def test_other_modes_match_pillows_own_conversion(tmp_path, mode):
    pixels = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB").convert(mode)
    image.save(tmp_path / "image.tif")
    reference = np.asarray(Image.open(tmp_path / "image.tif").convert("RGB"))
    np.testing.assert_array_equal(read_photo(tmp_path / "image.tif"), reference)


# EXIF orientation -> the transpose that stores an upright image that way (its inverse
# is what a viewer applies).
STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_rotated_copy_equals_the_upright_image(tmp_path, orientation):
    upright = Image.fromarray(RNG.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    stored = upright.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    stored.save(tmp_path / "rotated.png", exif=exif)
    np.testing.assert_array_equal(read_photo(tmp_path / "rotated.png"), np.asarray(upright))


def test_phone_jpeg_rotate_90_is_read_upright(tmp_path):
    """What phones write: the sensor's landscape pixels with "rotate 90 CW" (6)."""
    y, x = np.mgrid[0:120, 0:80]
    upright = np.stack([x * 3, y * 2, 255 - y * 2], axis=-1).astype(np.uint8)  # smooth: JPEG
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    ours = read_photo(tmp_path / "phone.jpg").astype(int)
    assert ours.shape == upright.shape  # portrait, not landscape
    assert np.abs(ours - read_photo(tmp_path / "upright.jpg")).mean() < 2.0
    sideways = np.asarray(stored).astype(int)
    assert sideways.shape != upright.shape


def test_large_images_are_shrunk_to_the_maximum_side(tmp_path, monkeypatch):
    monkeypatch.setattr(photos, "MAX_SIDE", 64)
    y, x = np.mgrid[0:200, 0:300]
    pixels = np.stack([x * 255 // 299, y * 255 // 199, 0 * x], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.png")
    Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=95)
    for name in ("big.png", "big.jpg"):
        ours = read_photo(tmp_path / name)
        assert ours.shape == (43, 64, 3), name
        reference = np.asarray(Image.fromarray(pixels).resize((64, 43), Image.Resampling.BOX))
        assert np.abs(ours.astype(int) - reference).mean() < 4.0, name


def test_too_many_pixels_are_refused_from_the_header(tmp_path, monkeypatch):
    Image.new("RGB", (400, 300)).save(tmp_path / "huge.png")
    monkeypatch.setattr(photos, "MAX_PIXELS", 100_000)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the header says too large")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(AssetError, match=r"huge.png' is 400x300 pixels .* at most 0 mega"):
        read_photo(tmp_path / "huge.png")


def test_a_photo_above_pillows_bomb_limit_reads_without_its_warning(tmp_path):
    side = 9500  # 90.25 megapixels: above Pillow's 89.5 million warning threshold
    Image.new("L", (side, side), 90).save(tmp_path / "huge.jpg", quality=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail this
        ours = read_photo(tmp_path / "huge.jpg")
    assert ours.shape == (photos.MAX_SIDE, photos.MAX_SIDE, 3)
    assert abs(int(ours.mean()) - 90) <= 1


def test_animated_image_gives_its_first_frame_with_a_note(tmp_path, caplog):
    frames = [Image.new("RGB", (64, 64), colour) for colour in ((200, 30, 30), (30, 200, 30))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    with caplog.at_level(logging.WARNING, logger="gaussianip.photos"):
        ours = read_photo(tmp_path / "anim.gif")
        read_photo(tmp_path / "anim.gif")
    expected = np.asarray(Image.open(tmp_path / "anim.gif").convert("RGB"))  # frame 0
    np.testing.assert_array_equal(ours, expected)
    assert ours[0, 0, 0] > ours[0, 0, 1]  # red, the first frame
    notes = [r.getMessage() for r in caplog.records if "animated" in r.getMessage()]
    assert len(notes) == 1 and "2 frames" in notes[0] and "first frame" in notes[0]
