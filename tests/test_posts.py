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


def test_invisible_only_text_is_no_text():
    from somelvlm.posts import is_invisible

    for text in ("\u200b\u200b", "\u200b \ufeff\u200d", "\u2060", "\u3164", "\x01\x02"):
        assert is_invisible(text) and clean_text(text) is None
    assert clean_text("\u200bhello") == "\u200bhello" and not is_invisible("\u200bhello")
    assert not is_invisible("\ue000")  # private use shows a glyph


def jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("encode", [png_bytes, jpeg_bytes], ids=["png", "jpeg"])
def test_max_side_reduces_while_decoding_and_keeps_the_picture(encode):
    rng = np.random.default_rng(0)
    small = (rng.random((30, 40, 3)) * 255).astype("uint8")
    big = Image.fromarray(small).resize((4000, 3000), Image.NEAREST)  # 40x30 blocks of 100 px
    full = load_image(encode(big))
    reduced = load_image(encode(big), max_side=400)
    assert full.size == (4000, 3000) and reduced.size == (400, 300) and reduced.mode == "RGB"
    expected = np.asarray(full.resize((400, 300), Image.BICUBIC), dtype=np.float32)
    assert np.abs(np.asarray(reduced, dtype=np.float32) - expected).mean() < 4  # the same picture
    assert load_image(encode(big), max_side=5000).size == (4000, 3000)  # never enlarged


def test_jpeg_draft_decodes_at_reduced_scale(monkeypatch):
    """A JPEG far larger than ``max_side`` is decoded by libjpeg at 1/8 scale: the full size never exists."""
    from PIL import ImageFile

    data = jpeg_bytes(Image.new("RGB", (6400, 4800), (10, 200, 30)))
    seen = []
    original = ImageFile.ImageFile.load

    def spy(self):
        result = original(self)
        seen.append(self.size)
        return result

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    assert load_image(data, max_side=800).size == (800, 600)
    assert max(max(s) for s in seen) == 800  # 6400 / 8


def test_exif_rotation_survives_reduction():
    img = Image.new("RGB", (4000, 2000), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    assert load_image(jpeg_bytes(img, exif=exif), max_side=500).size == (250, 500)


def test_non_regular_files_and_directories_are_named(tmp_path):
    with pytest.raises(PostError) as info:
        load_image("/dev/zero")
    assert info.value.reason == "not a regular file" and "/dev/zero" in str(info.value)
    with pytest.raises(PostError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(PostError, match="missing image"):
        load_image(tmp_path / "nope.png")
