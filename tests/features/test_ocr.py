"""Meme OCR on text drawn here; reading order and space restoration also without the model."""

from __future__ import annotations

import numpy as np
import pytest

from somelvlm.features.ocr import Line, SpaceAwareCTCDecode, reading_order


def box(x0, y0, x1, y1):
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def test_reading_order_rows_then_left_to_right():
    lines = [
        Line("bottom", 0.9, box(10, 300, 200, 340)),
        Line("right", 0.9, box(300, 22, 400, 58)),  # same row as "left", a little lower
        Line("left", 0.9, box(10, 20, 200, 60)),
        Line("middle", 0.9, box(50, 150, 250, 190)),
    ]
    assert [b.text for b in reading_order(lines)] == ["left", "right", "middle", "bottom"]
    assert reading_order([]) == []


def test_space_aware_decoding():
    class Inner:
        def __init__(self):
            self.character = ["blank", "a", "b", " "]

    # columns:      a     blank(space .3)  b     blank   b(repeat after blank)  a  a(repeat)
    ids = [1, 0, 2, 0, 2, 1, 1]
    space = [0.0, 0.3, 0.0, 0.001, 0.0, 0.0, 0.0]
    preds = np.zeros((1, len(ids), 4), dtype=np.float32)
    for t, (i, s) in enumerate(zip(ids, space, strict=True)):
        preds[0, t, 3] = s
        preds[0, t, i] = 0.9
    decode = SpaceAwareCTCDecode(Inner(), threshold=0.02)
    ((text, score),) = decode(preds)
    assert text == "a bba" and score == pytest.approx(0.9)
    assert decode(preds[:, :0])[0] == ("", 0.0)
    assert SpaceAwareCTCDecode(Inner(), threshold=0.5)(preds)[0][0] == "abba"


@pytest.fixture(scope="module")
def ocr():
    pytest.importorskip("rapidocr_onnxruntime", reason="MemeOCR needs rapidocr-onnxruntime")
    from somelvlm.features.ocr import MemeOCR

    return MemeOCR(num_threads=1)


@pytest.fixture(scope="module")
def meme():
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (640, 400), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=44)
    draw.text((30, 30), "WHEN YOU FINALLY", font=font, fill="black")
    draw.text((30, 100), "fix the bug", font=font, fill="black")
    draw.rectangle((0, 220, 640, 400), fill=(120, 60, 20))  # a "photo" part
    draw.text((30, 320), "tests still fail", font=font, fill="white")
    return img


def test_reads_drawn_meme_in_order_with_spaces(ocr, meme):
    text = ocr.read(meme)
    words = text.lower().split()
    for word in ("when", "you", "finally", "fix", "bug", "tests", "still", "fail"):
        assert word in words, text
    assert words.index("when") < words.index("fix") < words.index("tests")


def test_lines_and_empty_image(ocr, meme):
    from PIL import Image

    lines = ocr.read_lines(meme)
    assert len(lines) >= 3 and all(0.5 <= line.score <= 1 for line in lines)
    assert [line.top for line in lines] == sorted(line.top for line in lines)
    assert ocr.read(Image.new("RGB", (300, 200), "white")) == ""
    assert ocr.encode_batch([Image.new("L", (300, 200), 255)]) == [""]


def test_config_and_cache(ocr, meme, tmp_path):
    from somelvlm.features import FeatureCache
    from somelvlm.features.ocr import MemeOCR

    assert MemeOCR(restore_spaces=False).config != ocr.config
    cache = FeatureCache(tmp_path)
    (first,) = cache.get_many(ocr, [meme])
    (second,) = cache.get_many(ocr, [meme])
    assert first == second and "FINALLY" in first and cache.hits == 1 and cache.misses == 1


class _Recorder:
    """The real RapidOCR engine, noting the size of every image it is given."""

    def __init__(self, engine) -> None:
        self.engine, self.sizes = engine, []

    def __call__(self, image, **kwargs):
        self.sizes.append(image.size)
        return self.engine(image, **kwargs)


def test_a_huge_meme_is_read_downscaled_with_the_same_text(ocr, meme, monkeypatch):
    from PIL import Image

    from somelvlm.features.ocr import OCR_SHORT_SIDE, MemeOCR

    small = ocr.read_lines(meme)
    big = meme.resize((meme.width * 8, meme.height * 8), Image.BICUBIC)  # 5120 x 3200, 16 MP
    recorder = _Recorder(ocr._load())
    monkeypatch.setattr(ocr, "_engine", recorder)
    lines = ocr.read_lines(big)
    assert recorder.sizes == [(round(OCR_SHORT_SIDE * 640 / 400), OCR_SHORT_SIDE)]  # what the detector was given
    assert " ".join(x.text for x in lines).lower().split() == " ".join(x.text for x in small).lower().split()
    for a, b in zip(small, lines):  # corners in the big image's own pixels
        assert abs(b.top - 8 * a.top) < 8 * 6 and abs(b.left - 8 * a.left) < 8 * 6
    assert MemeOCR(short_side=None).config != ocr.config and "short_side=736" in ocr.config
    with pytest.raises(ValueError, match="short_side"):
        MemeOCR(short_side=10)
