"""Applicability (in-domain answer per head) and calibration inside the compact model folder: the domain
score by hand, a domain classifier that separates two domains, a tiny model with fitted files, an old
folder without them, one encoder pass for probabilities and domain scores, stale files refused."""

import numpy as np
import pytest
from test_compact import LORA, build

from somelvlm.models.applicability import (
    Applicability,
    HeadDomain,
    domain_heads,
    domain_probability,
    fit_head,
    model_digest,
    plain_copy,
)
from somelvlm.models.calibration import Calibration
from somelvlm.models.compact import CompactModel, save_compact
from somelvlm.models.encoder import encoder_digest as weights_digest

IN = ["what a lovely day at the beach", "so happy with my new puppy", "great game tonight, loved it",
      "best coffee in town this morning", "sunny weekend with friends", "my sister got married today"]
OTHER = ["the senate passed the appropriations bill", "governor signs executive order on tax policy",
         "congress votes on the budget resolution", "the minister announced new tariffs"]


def test_domain_probability_by_hand():
    weights = np.array([2.0, 0.0, -1.0], dtype=np.float32)  # w = (2, 0), b = -1
    x = np.array([[3.0, 0.0], [0.0, 5.0]])  # normalised: (1, 0) -> z = 1; (0, 1) -> z = -1
    assert domain_probability(x, weights) == pytest.approx([1 / (1 + np.exp(-1)), 1 / (1 + np.exp(1))])


def test_domain_classifier_separates_domains_and_threshold_flags_the_share_asked():
    rng = np.random.default_rng(0)
    own = rng.normal(0, 0.3, (600, 8)) + np.eye(8)[0]
    other = rng.normal(0, 0.3, (600, 8)) + np.eye(8)[1]
    weights, threshold = fit_head(own[:300], other[:300], own[300:500], quantile=0.05)
    assert weights.shape == (9,)
    assert (domain_probability(own[300:500], weights) < threshold).mean() == pytest.approx(0.05, abs=0.01)
    assert (domain_probability(own[500:], weights) < threshold).mean() < 0.15  # unseen own posts mostly kept
    assert (domain_probability(other[300:], weights) < threshold).mean() > 0.95  # the other domain flagged
    with pytest.raises(ValueError, match="background"):
        fit_head(own, other[:0], own, quantile=0.05)


@pytest.mark.parametrize("text, plain", [
    ("@user @user what a day http://t.co/x #blessed", "what a day #blessed"),
    ("RT @Foo: so good URL", "so good"),
    ("HTTPURL nice @USER", "nice"),
    ("email me at a@b.com or www.example.org", "email me at a@b.com or"),
    ("@user", ""),
    ("no handles here", "no handles here"),
])
def test_plain_copy_drops_handles_and_links(text, plain):
    assert plain_copy(text) == plain


def test_topic_bound_heads_stand_alone_and_the_others_take_their_whole_genre():
    tasks = ["sentiment", "emotion", "fake_news", "stance", "hateful_meme", "humor", "humor_rating", "party"]
    texts = {t: {f"{t} post"} for t in tasks}
    texts["humor_rating"] = texts["humor"]  # the same jokes: never on either side of each other
    same, others, rule = domain_heads("sentiment", tasks, texts)  # every tweet is a sentiment head's post
    assert same == ["emotion", "fake_news", "stance"] and others == ["hateful_meme", "humor", "humor_rating", "party"]
    assert rule == "tweet posts against other genres"
    same, others, rule = domain_heads("fake_news", tasks, texts)  # COVID-only: ordinary tweets are foreign
    assert same == [] and others == ["sentiment", "emotion", "stance", "hateful_meme", "humor", "humor_rating", "party"]
    assert rule == "own posts against every other dataset"
    same, others, _ = domain_heads("humor_rating", tasks, texts)
    assert "humor" not in same + others


@pytest.fixture(scope="module")
def folders(tiny_encoder, tmp_path_factory):
    """(old folder: no calibration / applicability files, fitted folder: both files)."""
    net, specs = build(tiny_encoder)
    root = tmp_path_factory.mktemp("trust")
    for name in ("old", "fitted"):
        save_compact(net, specs, root / name, encoder=str(tiny_encoder),
                     encoder_digest=weights_digest(str(tiny_encoder)), lora=LORA, max_length=32)
    fitted = root / "fitted"
    model = CompactModel(fitted, runtime="torch")
    emb, background = model.embed(IN), model.embed(OTHER)
    app = Applicability(model_digest=model_digest(fitted))
    for task in ("emotion", "stance", "humor_rating"):
        app.weights[task], thr = fit_head(emb, background, emb, quantile=0.0)
        app.heads[task] = HeadDomain(threshold=thr, quantile=0.0, n_train=6, n_val=6, n_background=4)
    app.save(fitted)
    Calibration({"emotion": 2.0, "stance": {"abortion": 3.0}}, {}, model_digest(fitted)).save(fitted)
    return root / "old", fitted


def test_an_old_folder_loads_with_null_domain_fields(folders):
    model = CompactModel(folders[0], runtime="torch")
    assert model.calibration is None and model.applicability is None
    assert model.domain_threshold("emotion") is None
    scores = model.domain_scores(IN[:2], ["emotion"])
    assert scores["emotion"].shape == (2,) and np.isnan(scores["emotion"]).all()
    rows = model.predict(IN[:2], ["emotion", "stance", "humor_rating"])
    for task in ("emotion", "stance", "humor_rating"):
        assert rows[0][task]["in_domain"] is None and rows[0][task]["domain_score"] is None
    assert "targets" in rows[0]["stance"]


def test_fitted_folder_gives_typed_domain_fields_and_calibrated_probabilities(folders):
    old, fitted = (CompactModel(f, runtime="torch") for f in folders)
    texts = IN[:2] + [OTHER[0]]
    rows = fitted.predict(texts, ["emotion", "stance", "humor_rating"])
    for row in rows:
        for task in ("emotion", "stance", "humor_rating"):
            assert isinstance(row[task]["in_domain"], bool)
            score = row[task]["domain_score"]
            assert isinstance(score, float) and 0 <= score <= 1 and round(score, 4) == score
    assert rows[0]["emotion"]["in_domain"] and rows[1]["emotion"]["in_domain"]  # its own training posts
    assert rows[2]["emotion"]["in_domain"] is False  # a background post
    scores = fitted.domain_scores(texts, ["emotion"])["emotion"]
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert [r["emotion"]["in_domain"] for r in rows] == list(scores >= fitted.domain_threshold("emotion"))
    # calibration: T = 2 flattens emotion, labels unchanged; a target without a temperature is unchanged
    raw, cal = old.predict_proba(texts, ["emotion", "stance"]), fitted.predict_proba(texts, ["emotion", "stance"])
    assert np.allclose(fitted.predict_proba(texts, ["emotion"], calibrated=False)["emotion"], raw["emotion"], atol=1e-6)
    assert (cal["emotion"].argmax(1) == raw["emotion"].argmax(1)).all()
    assert (cal["emotion"].max(1) < raw["emotion"].max(1)).all()
    assert np.allclose(cal["stance"][:, 1:], raw["stance"][:, 1:], atol=1e-6)
    assert not np.allclose(cal["stance"][:, 0], raw["stance"][:, 0])


def test_a_post_with_no_text_is_out_of_every_heads_domain(folders):
    from PIL import Image

    from somelvlm.posts import Post

    model = CompactModel(folders[1], runtime="torch")
    rows = model.predict(["", "  \n", IN[0]], ["emotion", "stance"])
    for row in rows[:2]:
        assert row["emotion"]["in_domain"] is False and row["emotion"]["domain_score"] == 0.0
        assert row["stance"]["in_domain"] is False
    assert rows[2]["emotion"]["in_domain"] is True
    scores = model.domain_scores([Post(id="m", text=None, image=Image.new("RGB", (8, 8))), IN[0]], ["emotion"])["emotion"]
    assert scores[0] == 0.0 and scores[1] > 0


def test_probabilities_then_domain_scores_cost_one_encoder_pass(folders):
    model = CompactModel(folders[1], runtime="torch")
    calls = []
    real_embed = model.embed
    model.embed = lambda texts: calls.append(len(texts)) or real_embed(texts)
    texts = ["one post", "another post"]
    model.predict_proba(texts, ["emotion"])
    model.domain_scores(texts, ["emotion", "stance"])
    model.predict(texts, ["emotion"])
    assert calls == [2]
    model.domain_scores(["a third post"], ["emotion"])
    assert calls == [2, 1]


def test_stale_or_broken_files_are_refused_with_how_to_refit(folders, tmp_path):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(folders[1], folder)
    (folder / "applicability.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="fit_trust.py"):
        CompactModel(folder, runtime="torch")
    shutil.copy(folders[1] / "applicability.safetensors", folder)
    with open(folder / "model.safetensors", "ab") as f:  # "retrained" weights
        f.write(b"\0")
    with pytest.raises(ValueError, match="other weights"):
        Applicability.load(folder)


class _Item:
    """A post as fit_trust sees it: only its text."""

    def __init__(self, text):
        self.text = text


def _posts(rng, task: str, n: int, shift: float):
    """``(embeddings (n, 8), items)``: n synthetic posts of ``task`` around ``shift``."""
    return rng.normal(shift, 1, (n, 8)).astype(np.float32), [_Item(f"{task} {i}") for i in range(n)]


def _fit_applicability():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from fit_trust import fit_applicability

    return fit_applicability


def test_plain_copies_join_every_genre_heads_positives_but_no_topic_bound_heads():
    """fit_trust.fit_applicability: a genre head's positives are its posts, its genre's, and their plain
    copies, whatever the order of the heads; a topic-bound head's are its own posts only."""
    rng = np.random.default_rng(0)
    tasks = {"sentiment": 0.0, "fake_news": 1.0, "emotion": 0.5, "hateful_meme": -3.0}  # fake_news: topic-bound
    train = {t: _posts(rng, t, 30, s) for t, s in tasks.items()}
    val = {t: _posts(rng, t, 10, s) for t, s in tasks.items()}
    plain = {t: rng.normal(s, 1, (5, 8)).astype(np.float32) for t, s in tasks.items()}
    app = _fit_applicability()(train, val, "d", quantile=0.05, per_background_head=200, c=1.0, plain=plain)
    assert app.heads["fake_news"].n_train == 30
    for genre_head in ("sentiment", "emotion"):  # before and after the topic-bound head
        assert app.heads[genre_head].n_train == 3 * 30 + 3 * 5, genre_head  # 3 tweet heads, each with 5 copies


def test_topic_bound_heads_take_their_own_background_size():
    """fit_trust.fit_applicability: ``topic_background`` posts of each other dataset form a topic-bound
    head's negatives; a genre head keeps ``per_background_head``."""
    rng = np.random.default_rng(1)
    tasks = {"sentiment": 0.0, "fake_news": 1.0, "hateful_meme": -3.0}
    train = {t: _posts(rng, t, 40, s) for t, s in tasks.items()}
    val = {t: _posts(rng, t, 10, s) for t, s in tasks.items()}
    app = _fit_applicability()(train, val, "d", quantile=0.05, per_background_head=5, c=1.0,
                               topic_background=30, topic_c=4.0)
    assert app.heads["fake_news"].n_background == 2 * 30
    assert app.heads["sentiment"].n_background == 5  # its genre's heads are positives; the meme head is negative
