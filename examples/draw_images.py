"""Draw the example images of examples/posts.jsonl (run once; the PNGs are committed).

    python examples/draw_images.py
"""

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).parent


def meme(path: Path, top: str, bottom: str) -> None:
    img = Image.new("RGB", (320, 240), (70, 110, 160))
    d = ImageDraw.Draw(img)
    d.ellipse((110, 70, 210, 170), fill=(250, 210, 80))  # a sun-like face
    d.ellipse((138, 100, 150, 112), fill="black")
    d.ellipse((170, 100, 182, 112), fill="black")
    d.arc((135, 110, 185, 150), 20, 160, fill="black", width=3)
    font = ImageFont.load_default(size=22)
    for text, y in ((top, 12), (bottom, 200)):
        w = d.textlength(text, font=font)
        d.text(((320 - w) / 2, y), text, font=font, fill="white", stroke_width=2, stroke_fill="black")
    img.save(path, optimize=True)


def chart(path: Path) -> None:
    img = Image.new("RGB", (320, 200), "white")
    d = ImageDraw.Draw(img)
    for i, h in enumerate((40, 70, 65, 120, 150)):
        d.rectangle((30 + i * 55, 180 - h, 70 + i * 55, 180), fill=(200, 60, 60))
    d.text((30, 10), "cases this week", fill="black", font=ImageFont.load_default(size=18))
    img.save(path, optimize=True)


if __name__ == "__main__":
    meme(HERE / "monday_meme.png", "WHEN IT'S MONDAY", "AND THE COFFEE IS GONE")
    chart(HERE / "chart.png")
