"""Reading a user's photo (a portrait) as a person looking at it sees it.

Every portrait path (config checks, identity extraction, threestudio's prompt processor)
reads through ``read_photo``, which returns an upright RGB uint8 array:

- EXIF orientation is applied (phones store most photos sideways with an "rotate 90" tag);
- every Pillow mode becomes RGB with its real values: 16- and 32-bit integers are scaled
  to 8 bits (by 257 for 16-bit data, by the image's maximum above that), floats are taken
  as [0, 1] (as 0..255 when values above 2 occur) and clipped, palettes and CMYK go through
  Pillow's own conversion;
- transparent pixels are composited over white (``TRANSPARENT_BACKGROUND``): a cut-out
  portrait then looks as most viewers show it, and black would merge with dark hair;
- the pixel count is checked from the file header before anything is decoded (at most
  ``MAX_PIXELS``), and larger images are shrunk while decoding (JPEG's own downscaling)
  to at most ``MAX_SIDE`` pixels on the longer side: the face models work at 640 px, so
  nothing is lost and a 200-megapixel photo costs no gigabytes;
- an animated image (GIF, APNG, WebP) gives its first frame, with a logged note.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from gaussianip.errors import AssetError
from gaussianip.safe_load import regular_file

log = logging.getLogger(__name__)

MAX_PIXELS = 250_000_000  # above a 200-megapixel phone photo; more is not a photo of a face
MAX_SIDE = 2048  # longer side after reading; the face detector itself works at 640 px
TRANSPARENT_BACKGROUND = (255, 255, 255)
FLOAT_BYTE_RANGE_ABOVE = 2.0  # a float image with larger values holds 0..255, not 0..1

_INTEGER_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_noted_animations: set[str] = set()  # one note per file, although it is read twice


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` (any Pillow mode, loaded) as an 8-bit RGB image (see the module docstring)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _INTEGER_MODES or mode == "F":
        values = np.asarray(image).astype(np.float64)
        if mode == "F":
            # [0, 1] with highlights a little above 1, unless clearly stored as 0..255
            top = 255.0 if np.nanmax(values, initial=0.0) > FLOAT_BYTE_RANGE_ABOVE else 1.0
        else:
            largest = float(values.max(initial=0))
            top = 65535.0 if largest <= 65535 else largest  # 16-bit data unless larger
        grey = np.clip(np.nan_to_num(values / top), 0.0, 1.0) * 255.0
        return Image.fromarray(np.round(grey).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("La", "RGBa"):  # premultiplied alpha: Pillow un-premultiplies to RGBA
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENT_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV, RGBX


def read_photo(file: str | Path, what: str = "image") -> np.ndarray:
    """The image at ``file`` upright, as RGB uint8 [H, W, 3] (H, W <= ``MAX_SIDE``).

    ``AssetError`` naming the file and the fix when it is a folder, unreadable, empty, not
    a decodable image, or larger than ``MAX_PIXELS``."""
    file = Path(file)
    if file.is_dir():
        raise AssetError(f"The {what} '{file}' is a folder; give an image file (PNG or JPEG).")
    if file.exists() and not file.is_file():  # a FIFO or device: opening it could block
        regular_file(file, what)  # raises, naming what it is
    try:
        size = file.stat().st_size
        with open(file, "rb"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise AssetError(
            f"The {what} '{file}' cannot be read ({reason}). Check that it exists and that "
            "you may read it (file permissions)."
        ) from None
    if size == 0:
        raise AssetError(f"The {what} '{file}' is empty (0 bytes). Give a PNG or JPEG photo.")
    try:
        return _decode(file, what)
    except AssetError:
        raise
    # Decoders of damaged or foreign files raise many types (OSError, SyntaxError,
    # ValueError, EOFError, struct.error, ...): all mean "not a usable image".
    except Exception as err:
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise AssetError(
            f"The {what} '{file}' is not a readable image ({detail[:200]}). "
            "Give a PNG or JPEG photo."
        ) from None


def _open(file: Path) -> Image.Image:
    """``Image.open`` (header only) without Pillow's decompression-bomb check: ``MAX_PIXELS``
    is ours, checked before decoding."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(file)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _decode(file: Path, what: str) -> np.ndarray:
    with _open(file) as image:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise AssetError(
                f"The {what} '{file}' is {width}x{height} pixels ({width * height / 1e6:.0f} "
                f"megapixels); at most {MAX_PIXELS / 1e6:.0f} megapixels are read. Scale it "
                f"down (a {MAX_SIDE}-pixel side is plenty: the face models work at 640)."
            )
        frames = getattr(image, "n_frames", 1)
        if frames > 1 and str(file) not in _noted_animations:
            _noted_animations.add(str(file))
            log.warning("The %s '%s' is animated (%d frames); using its first frame.", what,
                        file, frames)  # fmt: skip
        if max(width, height) > MAX_SIDE:
            image.draft(None, (MAX_SIDE, MAX_SIDE))  # JPEG: decode at 1/2, 1/4 or 1/8 size
        upright = ImageOps.exif_transpose(image)  # loads the pixels
        rgb = to_rgb(upright)
        if max(rgb.size) > MAX_SIDE:
            rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        return np.asarray(rgb).copy()
