"""SoMeData builds records for the tasks of trust & bias, social factors, ideology, depolarizing and
opinion rewriting, and for SoMeLVLM's later published test files."""

from __future__ import annotations

import json

import pytest

from somelvlm.data.somedata import BuildConfig, build

NEW_TASKS = [
    "reddit_bias", "stereotype", "bias_target", "hate_rationale", "user_gender", "facet_ideology", "partisan_post",
    "us_vs_them", "polarized_post", "depolarize", "positive_reframe", "invert_sentiment", "image_post_gender",
    "image_post_ideology", "image_post_emotion", "image_post_hate_type", "hashtag_choice", "explain_personality",
    "explain_domain", "open_emotion", "open_hate", "open_news_veracity", "open_ideology", "open_gender",
]
EVAL_ONLY = {"polarized_post", "image_post_gender", "image_post_ideology", "image_post_emotion",
             "image_post_hate_type", "hashtag_choice", "explain_personality", "explain_domain", "open_emotion",
             "open_hate", "open_news_veracity", "open_ideology", "open_gender"}


@pytest.fixture(scope="module")
def new_build(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("somedata_new") / "out"
    return build(BuildConfig(data_root=data_root, out=out, tasks=NEW_TASKS, max_per_task=6))


def test_every_new_task_has_records(new_build):
    counts = new_build.counts
    for task in NEW_TASKS:
        assert counts.get((task, "test"), 0) == 6, task
        assert (counts.get((task, "train"), 0) == 0) == (task in EVAL_ONLY), task


def test_prompts_are_filled_and_answers_are_the_targets(new_build):
    records = [json.loads(line) for split in ("train", "val", "test")
               for line in (new_build.out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["task"] for r in records} == set(NEW_TASKS)
    for r in records:
        human, gpt = (turn["value"] for turn in r["conversations"])
        assert gpt.strip() and "image" not in r, r["id"]
        if r["source"] == "somelvlm_testset":
            continue  # the published prompt, word for word
        assert "{" not in human.replace("{}", ""), r["id"]
    reddit = next(r for r in records if r["task"] == "reddit_bias")
    assert any(group in reddit["conversations"][0]["value"]
               for group in ("women", "LGBTQ people", "Black people", "Jewish people", "Muslims"))
    inverted = next(r for r in records if r["task"] == "invert_sentiment")
    assert any(s in inverted["conversations"][0]["value"] for s in ("positive", "negative"))
