"""``analyze`` runs the shipped multimodal heads on image posts and leaves text posts as they were."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="the features extra is needed")

from somelvlm.models.mm_runtime import MM_ASSETS, MultimodalHeads  # noqa: E402
from somelvlm.posts import Post  # noqa: E402

from mm_helpers import draw_meme  # noqa: E402

MM_TASKS = ["offensive_meme", "meme_sentiment", "verify_post"]


def test_shipped_heads_are_small_and_complete():
    heads = MultimodalHeads.shipped()
    assert sorted(heads.tasks) == sorted(MM_TASKS)
    total = sum(p.stat().st_size for p in MM_ASSETS.rglob("*") if p.is_file())
    assert total < 10_000_000 and (MM_ASSETS / "card.md").is_file()


def test_image_posts_get_image_text_heads_and_text_posts_do_not_change(feature_cache):
    from somelvlm.analysis import Analyzer

    posts = [Post(id="t", text="what a lovely day with friends"),
             Post(id="i", text="you people are idiots", image=draw_meme(0, True))]
    plain = Analyzer(tasks=MM_TASKS + ["emotion"], multimodal=False)(posts)
    rows = Analyzer(tasks=MM_TASKS + ["emotion"])(posts)
    assert rows[0] == plain[0]  # a text-only post: exactly as before
    for task in MM_TASKS:
        assert rows[1][task]["modality"] == "image+text"
        assert abs(sum(rows[1][task]["probs"].values()) - 1) < 1e-3
        assert "modality" not in plain[1][task]
    assert rows[1]["emotion"] == plain[1]["emotion"]
