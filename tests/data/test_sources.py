"""Each source adapter on the real upstream files: counts against ../shared/data/README.md, valid
labels, unique ids, splits that never mix a post; then bad input on files the tests write."""

from collections import Counter

import pytest

from somelvlm.data.report import DataReport
from somelvlm.data.sources import SOURCES, load_source
from somelvlm.taxonomy import get_task


@pytest.fixture(scope="module")
def loaded(data_root):
    cache = {}

    def get(name):
        if name not in cache:
            report = DataReport()
            examples = list(load_source(name, data_root, report))
            cache[name] = (examples, report)
        return cache[name]

    return get


def counts(examples):
    return Counter((e.task, e.split) for e in examples)


def check_common(examples, data_root):
    ids = [e.id for e in examples]
    assert len(ids) == len(set(ids)), "ids are unique"
    for e in examples:
        task = get_task(e.task)
        if task.kind == "classification":
            assert e.target in task.labels, (e.id, e.target)
        elif task.kind == "regression":
            low, high = task.range
            assert low <= float(e.target) <= high
        else:
            assert str(e.target).strip()
        if e.image is not None:
            assert (data_root / e.image).is_file(), e.image


def test_registry_has_all_fourteen_sources():
    assert len(SOURCES) == 14


# The eight text sources are tested in test_sources_text.py.


# The six meme / multimodal sources are tested in test_sources_memes.py.


def test_adapters_are_deterministic(data_root):
    first = [(e.id, e.split) for e in load_source("constraint", data_root, DataReport())]
    again = [(e.id, e.split) for e in load_source("constraint", data_root, DataReport())]
    assert first == again


# ---- bad input, on files written here ------------------------------------------------------------

def test_malformed_csv_rows_unknown_labels_and_bad_utf8(tmp_path):
    folder = tmp_path / "davidson" / "data"
    folder.mkdir(parents=True)
    (folder / "labeled_data.csv").write_bytes(
        b',count,hate_speech,offensive_language,neither,class,tweet\n'
        b'0,3,0,0,3,2,a fine tweet\n'
        b'1,3,0,3,0,7,unknown class\n'
        b'2,3,0,3,0,1\n'
        b'3,3,0,3,0,1,bad \xff byte\n'
        b'4,3,0,3,0,0,\n'
        b'5,3,3,0,0,0,"a hateful tweet"\n')
    report = DataReport()
    examples = list(load_source("davidson", tmp_path, report))
    assert [e.target for e in examples] == ["neither", "hate"]
    where = {(p.line, p.reason) for p in report.problems}
    assert where == {(3, "unknown label"), (4, "malformed row"), (5, "invalid UTF-8"), (6, "missing field")}
    assert all(p.file == "davidson/data/labeled_data.csv" for p in report.problems)


def test_missing_source_folder_is_reported_not_raised(tmp_path):
    report = DataReport()
    assert list(load_source("liar", tmp_path, report)) == []
    assert report.problems[0].reason == "missing source folder"
