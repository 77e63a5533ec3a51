"""Hostile text and images: each is either handled correctly or rejected with a clear reason."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from somelvlm.posts import Limits, Post, PostError, clean_text, load_image


def png_bytes(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def fake_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels, without the pixels (a bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data, reason", [
    (b"", "empty image"),
    (b"this is not an image at all", "not an image"),
    (fake_png_header(20000, 20000), "image too large"),
])
def test_bad_images_are_rejected_with_a_reason(data, reason):
    with pytest.raises(PostError) as info:
        load_image(data)
    assert info.value.reason == reason


def test_truncated_image_is_corrupt():
    data = png_bytes(Image.new("RGB", (64, 64), "red"))
    with pytest.raises(PostError) as info:
        load_image(data[: len(data) // 2])
    assert info.value.reason in {"corrupt image", "not an image"}


def test_large_file_is_refused_before_decoding():
    with pytest.raises(PostError, match="image too large"):
        load_image(b"\x89PNG" + b"0" * 2000, Limits(max_image_bytes=1000))


def test_modes_become_rgb():
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(cmyk, format="JPEG")
    sixteen = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    alpha = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    for data in (cmyk.getvalue(), png_bytes(sixteen), png_bytes(alpha), png_bytes(Image.new("RGB", (1, 1)))):
        img = load_image(data)
        assert img.mode == "RGB"
    assert load_image(png_bytes(sixteen)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(png_bytes(alpha)).getpixel((0, 0)) == (255, 255, 255), "transparent over white"


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue", "green")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    img = load_image(buf.getvalue())
    assert img.size == (10, 10) and img.getpixel((0, 0))[0] > 200


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert load_image(buf.getvalue()).size == (20, 40)


def test_text_cleaning():
    assert clean_text("  hi there \n") == "hi there"
    assert clean_text("   ") is None
    assert clean_text("caf\u00e9".encode()) == "café"
    with pytest.raises(PostError, match="invalid UTF-8"):
        clean_text(b"bad \xff byte")
    with pytest.raises(PostError, match="text too long"):
        clean_text("x" * 100_000)
    with pytest.raises(PostError, match="empty post"):
        Post(id="1")
