"""Fixtures of the source-adapter tests."""

import pytest

from somelvlm.data.report import DataReport
from somelvlm.data.sources import load_source


@pytest.fixture(scope="module")
def loaded(data_root):
    """``name -> (examples, report)``, each source read once per test module."""
    cache: dict[str, tuple[list, DataReport]] = {}

    def get(name):
        if name not in cache:
            report = DataReport()
            cache[name] = (list(load_source(name, data_root, report)), report)
        return cache[name]

    return get
