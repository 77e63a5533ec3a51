"""`export_lm_eval` writes lm-eval tasks over a real SoMeData build: lm-eval's TaskManager loads them,
their documents, prompts, choices and gold indices match our records, and an evaluation runs."""

import json

import pytest
import yaml

from somelvlm.data.somedata import BuildConfig, build
from somelvlm.taxonomy import get_task
from somelvlm.taxonomy.export_lm_eval import export_lm_eval, task_name
from somelvlm.taxonomy.task import display_label

TASKS = ["hate", "stance", "hateful_meme", "sentiment", "offensive_meme", "humor_rating"]


@pytest.fixture(scope="module")
def exported(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-eval")
    somedata = root / "somedata"
    build(BuildConfig(data_root=data_root, out=somedata, tasks=TASKS, max_per_task=6))
    files = export_lm_eval(root / "tasks", somedata)
    records = [json.loads(line) for line in (somedata / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    return root / "tasks", files, records


def test_files_follow_the_lm_eval_schema(exported):
    """Checked without lm-eval: the keys of its TaskConfig / GroupConfig, one task per classification task."""
    folder, files, _ = exported
    names = {p.name for p in files}
    assert "somelvlm_hate.yaml" in names and "somelvlm_humor_rating.yaml" not in names  # regression: not exported
    assert {"_somelvlm.yaml", "_somelvlm_knowledge_comprehension.yaml"} <= names
    task_keys = {"task", "tag", "dataset_path", "dataset_kwargs", "test_split", "validation_split", "fewshot_split",
                 "output_type", "doc_to_text", "doc_to_choice", "doc_to_target", "target_delimiter", "metric_list",
                 "metadata"}
    for path in files:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "group" in config:
            assert set(config) == {"group", "task", "aggregate_metric_list", "metadata"}
            continue
        assert set(config) <= task_keys and config["output_type"] == "multiple_choice"
        task = get_task(config["task"].removeprefix("somelvlm_"))
        assert config["doc_to_choice"] == [display_label(lab) for lab in task.labels]
        for split_file in config["dataset_kwargs"]["data_files"].values():
            assert split_file.endswith(".parquet")


def test_missing_build_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="somelvlm data build"):
        export_lm_eval(tmp_path / "out", tmp_path / "nothing")


def test_lm_eval_loads_and_runs_the_tasks(exported, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval not installed (pip install lm-eval)")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager, get_task_dict

    folder, _, records = exported
    manager = TaskManager(include_path=str(folder), include_defaults=False)
    wanted = [task_name(get_task(t)) for t in TASKS if get_task(t).kind == "classification"]
    tasks = get_task_dict(wanted, manager)
    for t in TASKS[:5]:
        task, lm_task = get_task(t), tasks[task_name(get_task(t))]
        docs = list(lm_task.test_docs())
        ours = [r for r in records if r["task"] == t]
        assert [d["id"] for d in docs] == [r["id"] for r in ours]
        for doc, rec in zip(docs, ours):
            prompt = lm_task.doc_to_text(doc)
            assert prompt.endswith("\nAnswer:") and "<image>" not in prompt
            assert prompt.removesuffix("\nAnswer:") == rec["conversations"][0]["value"].removeprefix("<image>\n").strip()
            assert lm_task.doc_to_choice(doc) == [display_label(lab) for lab in task.labels]
            assert lm_task.doc_to_target(doc) == list(task.labels).index(rec["target"])

    class FirstChoice(LM):
        """Always prefers the first choice: its accuracy is the share of gold index 0."""

        def loglikelihood(self, requests, disable_tqdm=False):
            return [(0.0 if r.idx == 0 else -1.0, False) for r in requests]

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            raise NotImplementedError

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError

    out = lm_eval.simple_evaluate(model=FirstChoice(), tasks=["somelvlm_hate", "somelvlm_stance"], task_manager=manager)
    for t in ("hate", "stance"):
        ours = [r for r in records if r["task"] == t]
        first = list(get_task(t).labels)[0]
        expected = sum(r["target"] == first for r in ours) / len(ours)
        assert out["results"][f"somelvlm_{t}"]["acc,none"] == pytest.approx(expected)
