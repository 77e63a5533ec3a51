"""Data without a licence, or with a non-commercial one, never reaches the weights we ship: the recipes
of SoMe-mini and SoMe-LVLM name no task that draws on such a source, and each such task says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from somelvlm.data.sources import RESEARCH_ONLY, SOURCES
from somelvlm.taxonomy import all_tasks, get_task

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SHIPPED_RECIPES = ("some-mini.yaml", "some-lvlm-stage1.yaml", "some-lvlm-stage2.yaml")
"""Recipes whose output ships in the package (assets/)."""


def test_the_shipped_default_names_a_checked_recipe():
    import json

    from somelvlm.models.compact import ASSETS

    trained = json.loads((ASSETS / "some-mini" / "config.json").read_text(encoding="utf-8"))["trained"]
    recipe = Path(trained.get("recipe", "configs/some-mini.yaml"))
    assert recipe.name in SHIPPED_RECIPES and (CONFIGS / recipe.name).is_file()
    assert yaml.safe_load((CONFIGS / recipe.name).read_text(encoding="utf-8"))["tasks"] == trained["config"]["tasks"]


def test_research_only_sources_are_registered():
    assert RESEARCH_ONLY <= set(SOURCES)


@pytest.mark.parametrize("recipe", SHIPPED_RECIPES)
def test_shipped_recipes_train_on_no_research_only_source(recipe):
    text = (CONFIGS / recipe).read_text(encoding="utf-8")
    tasks = list(yaml.safe_load(text).get("tasks") or [])
    # the SoMeData folder a recipe reads is built by the `data build --tasks ...` its header names
    for listed in re.findall(r"--tasks\s+(\S+)", text):
        tasks += listed.split(",")
    # no task list at all would mean "every task": a shipped recipe must name its tasks
    assert tasks, f"{recipe} must list its tasks"
    for name in tasks:
        sources = {s.name for s in get_task(name).sources}
        assert not sources & RESEARCH_ONLY, f"{recipe}: task {name} draws on {sorted(sources & RESEARCH_ONLY)}"


def test_research_only_tasks_say_so_in_their_citation():
    for task in all_tasks():
        for source in task.sources:
            if source.name in RESEARCH_ONLY:
                assert "evaluation and research runs only, not for shipped weights" in source.citation, task.name
