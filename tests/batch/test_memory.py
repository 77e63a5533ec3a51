"""Bounded memory (issue 15): a batch of huge images holds only images reduced to the models' size.

The run happens in a subprocess whose peak resident memory (``resource.getrusage``) is the
measurement; the images are generated here (50 MP each, JPEG and PNG).
"""

import json
import subprocess
import sys

import pytest

JOB = """
import json, resource, sys
from pathlib import Path
from somelvlm.batch.runner import RunConfig, run

sizes = []

def model(posts):
    sizes.extend(p.image.size for p in posts)
    return [{"size": list(p.image.size)} for p in posts]

summary = run(Path(sys.argv[1]), Path(sys.argv[2]), model, RunConfig(batch_size=int(sys.argv[3])), progress=False)
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "written": summary.written,
                  "errors": summary.errors, "largest_side": max(max(s) for s in sizes)}))
"""


def huge_image(path, kind: str, width: int = 8000, height: int = 6250) -> None:
    """A 50 MP picture (a gradient per channel and a block) that compresses small on disk."""
    from PIL import Image, ImageDraw

    g = Image.linear_gradient("L").resize((width, height))
    img = Image.merge("RGB", (g, g.transpose(Image.Transpose.ROTATE_180), g.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    ImageDraw.Draw(img).rectangle((width // 8, height // 6, width // 3, height // 3), fill=(255, 0, 0))
    img.save(path, **({"quality": 80} if kind == "JPEG" else {"compress_level": 1}), format=kind)


@pytest.mark.slow
def test_a_batch_of_64_images_of_50_megapixels_stays_under_1_5_gb(tmp_path):
    names = {"a.jpg": "JPEG", "b.jpg": "JPEG", "c.png": "PNG"}
    for name, kind in names.items():
        huge_image(tmp_path / name, kind)
    rows = [{"id": str(i), "image": "c.png" if i % 16 == 0 else ("a.jpg" if i % 2 else "b.jpg")} for i in range(64)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "job.py").write_text(JOB, encoding="utf-8")
    done = subprocess.run([sys.executable, str(tmp_path / "job.py"), str(tmp_path / "in.jsonl"),
                           str(tmp_path / "out.jsonl"), "64"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["written"], result["errors"]) == (64, 0)
    assert result["largest_side"] == round(8000 * 768 / 6250)  # shorter side 768, aspect kept
    assert result["peak_mb"] < 1536, result
