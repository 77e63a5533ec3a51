"""Every task file loads through the registry, renders every prompt, and is grouped by level."""

import pytest

from somelvlm.registry import UnknownNameError
from somelvlm.taxonomy import LEVELS, all_tasks, get_task, tasks_by_level
from somelvlm.taxonomy.registry import select_tasks
from somelvlm.taxonomy.task import Task, TaskFileError

TASK_NAMES = [t.name for t in all_tasks()]


def test_at_least_twenty_tasks_over_all_five_levels():
    assert len(TASK_NAMES) >= 20
    grouped = tasks_by_level()
    assert list(grouped) == LEVELS.ids() and len(grouped) == 5
    assert all(grouped[lv] for lv in grouped), "every level has at least one task"


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_prompt_renders(name):
    task = get_task(name)
    assert len(task.prompts) >= 5
    for i in range(len(task.prompts)):
        text = task.render(i, "we won the cup!!! #happy", {"target": "climate change"})
        assert "we won the cup!!! #happy" in text
        assert "{" not in text.replace("{}", ""), "no unfilled placeholder"
        if task.kind == "classification":
            assert task.choices_text() in text
        if task.name == "stance":
            assert "climate change" in text


def test_unknown_task_names_the_closest():
    with pytest.raises(UnknownNameError, match="emotion"):
        get_task("emotoin")


def test_select_by_level_and_name():
    creation = select_tasks(levels=["creation"])
    assert creation and all(t.level == "creation" for t in creation)
    both = select_tasks(names=["emotion"], levels=["creation"])
    assert {t.name for t in both} == {"emotion"} | {t.name for t in creation}
    with pytest.raises(UnknownNameError, match="application"):
        select_tasks(levels=["aplication"])


def test_bad_task_files_name_file_and_field(tmp_path):
    good = get_task("emotion").path.read_text(encoding="utf-8")
    cases = {
        "level": ("level: knowledge_comprehension", "level: wisdom", "level"),
        "placeholder": ("{choices}", "{choices} {oops}", "oops"),
        "extra key": ("kind: classification", "kind: classification\ncolour: blue", "unknown keys"),
        "alias of no label": ("kind: classification", "kind: classification\naliases: {glee: [gleeful]}", "aliases"),
        "domain key": ("  genre: tweet", "  genre: tweet\n  platform: x", "`domain` takes only"),
        "empty genre": ("  genre: tweet", "  genre: ''", "non-empty"),
    }
    for what, (old, new, expected) in cases.items():
        path = tmp_path / "emotion.yaml"
        assert old in good, what
        path.write_text(good.replace(old, new, 1), encoding="utf-8")
        with pytest.raises(TaskFileError, match=expected) as info:
            Task.from_yaml(path)
        assert str(path) in str(info.value)
    (tmp_path / "other.yaml").write_text(good, encoding="utf-8")
    with pytest.raises(TaskFileError, match="must equal the file name"):
        Task.from_yaml(tmp_path / "other.yaml")


def test_topic_bound_heads_are_the_tasks_that_name_one_subject():
    bound = {t.name for t in all_tasks() if t.topic_bound}
    assert {"fake_news", "verify_post", "party", "claim_veracity", "stance"} <= bound
    assert not {"emotion", "sentiment", "hate", "offensive", "irony"} & bound
    assert get_task("sentiment").genre == get_task("fake_news").genre == "tweet"
    assert get_task("hateful_meme").genre == "meme" and get_task("hateful_meme").topic == ""
