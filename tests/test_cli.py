"""The console script end to end: tasks listing, task details, clear one-line errors."""

import json
import subprocess
import sys

from somelvlm.taxonomy import all_tasks


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "somelvlm.cli", *args], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": "", "LANG": "C.UTF-8"})


def test_tasks_table_groups_by_level():
    res = run("tasks")
    assert res.returncode == 0, res.stderr
    for name in ("Knowledge & Comprehension", "Application", "Analysis", "Evaluation", "Creation"):
        assert name in res.stdout
    assert "emotion" in res.stdout and "detoxify" in res.stdout


def test_tasks_json_lists_every_task():
    res = run("tasks", "--json")
    data = json.loads(res.stdout)
    names = [t["name"] for lv in data["levels"] for t in lv["tasks"]]
    assert sorted(names) == sorted(t.name for t in all_tasks())


def test_tasks_show_prints_prompts():
    res = run("tasks", "show", "stance")
    assert res.returncode == 0, res.stderr
    assert "{target}" in res.stdout and "favor" in res.stdout


def test_unknown_task_is_one_line_with_suggestion():
    res = run("tasks", "show", "sarcsm")
    assert res.returncode == 2
    assert "sarcasm" in res.stderr and "Traceback" not in res.stderr


def test_missing_data_root_names_the_flag(tmp_path):
    res = run("data", "build", "--data-root", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "--data-root" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2
