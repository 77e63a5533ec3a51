"""``analyze`` runs the shipped multimodal heads on image posts and leaves text posts as they were."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="the features extra is needed")

from somelvlm.models.mm_runtime import MM_ASSETS, MultimodalHeads  # noqa: E402
from somelvlm.posts import Post  # noqa: E402

from mm_helpers import draw_meme  # noqa: E402

MM_TASKS = ["offensive_meme", "meme_sentiment", "verify_post"]
"""Tasks an image+text head may serve; see assets/some-mini-mm/README.md for the ones shipped."""


def test_shipped_heads_are_small_and_known():
    heads = MultimodalHeads.shipped()
    assert heads.tasks and set(heads.tasks) <= set(MM_TASKS) and "offensive_meme" in heads.tasks
    total = sum(p.stat().st_size for p in MM_ASSETS.rglob("*") if p.is_file())
    assert total < 10_000_000 and (MM_ASSETS / "README.md").is_file()


def test_image_posts_get_image_text_heads_and_text_posts_do_not_change(feature_cache):
    from somelvlm.analysis import Analyzer

    posts = [Post(id="t", text="what a lovely day with friends"),
             Post(id="i", text="you people are idiots", image=draw_meme(0, True))]
    analyzer = Analyzer(tasks=MM_TASKS + ["emotion"], withheld=True)  # withheld heads too: every route answers
    rows = analyzer(posts)
    image_tasks = analyzer.image_tasks
    analyzer.image_heads = None  # as Analyzer(multimodal=False)
    plain = analyzer(posts)
    assert rows[0] == plain[0]  # a text-only post: exactly as before
    shipped = MultimodalHeads.shipped().tasks
    assert image_tasks <= set(shipped) and image_tasks  # the image helps somewhere (image_helps, chosen on val)
    for task in image_tasks:
        assert rows[1][task]["modality"] == "image+text"
        assert abs(sum(rows[1][task]["probs"].values()) - 1) < 1e-3
        assert isinstance(rows[1][task]["in_domain"], bool)  # the image+text head's own applicability
        assert 0 <= rows[1][task]["domain_score"] <= 1
        assert plain[1][task]["modality"] == "text"
    for task in set(MM_TASKS) - image_tasks:
        assert rows[1][task] == plain[1][task]  # no image+text head, or its image does not help: the text head's answer
        assert rows[1][task]["modality"] == "text"
    assert rows[1]["emotion"] == plain[1]["emotion"]


def test_image_text_heads_without_or_with_stale_applicability(tmp_path, feature_cache):
    import shutil

    folder = tmp_path / "offensive_meme"
    shutil.copytree(MM_ASSETS / "offensive_meme", folder)
    image, text = [draw_meme(1, False)], ["when the code works on the first try"]
    fitted = MultimodalHeads([folder]).predict(image, text)[0]["offensive_meme"]
    assert isinstance(fitted["in_domain"], bool)
    (folder / "applicability.safetensors").unlink()  # a head folder from before applicability
    old = MultimodalHeads([folder]).predict(image, text)[0]["offensive_meme"]
    assert old["in_domain"] is None and old["domain_score"] is None and old["probs"] == fitted["probs"]
    shutil.copy(MM_ASSETS / "meme_sentiment" / "applicability.safetensors", folder)  # fit on other weights
    with pytest.raises(ValueError, match="fit_trust_mm.py"):
        MultimodalHeads([folder])
