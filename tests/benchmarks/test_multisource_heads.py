"""benchmarks/multisource_heads.py: related datasets' posts join a head's training through a label
mapping, weighted as asked, and the head is replaced only when the mean val over the sources rises."""

import json
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_source_weights_equalise_sources_and_classes():
    from multisource_heads import source_weights

    y = np.array([0, 0, 0, 1] + [0, 0, 0, 0, 0, 1, 1, 1])
    src = np.array([0] * 4 + [1] * 8)
    total = lambda w, mask: round(float(w[mask].sum()), 6)  # noqa: E731
    w = source_weights(y, src, equal_sources=False, balance=None)
    assert np.allclose(w, 1)
    w = source_weights(y, src, equal_sources=True, balance=None)
    assert total(w, src == 0) == total(w, src == 1) == 6 and np.isclose(w.mean(), 1)
    w = source_weights(y, src, equal_sources=True, balance="source")  # classes even inside each source
    for s in (0, 1):
        assert total(w, (src == s) & (y == 0)) == total(w, (src == s) & (y == 1)) == 3
    w = source_weights(y, src, equal_sources=False, balance="pool")  # classes even over the pool
    assert total(w, y == 0) == total(w, y == 1) == 6
    assert w[0] == w[4] and w[3] == w[9]  # the sources are not reweighted against each other


def test_mapped_puts_related_labels_onto_the_heads():
    from multisource_heads import RELATED, mapped
    from somelvlm.data.head_items import Item

    items = [Item("a", 0, -1), Item("b", 1, -1), Item("c", 2, -1)]  # davidson: hate, offensive, neither
    pairs = mapped(items, ("hate", "offensive", "neither"), ("not_hate", "hate"), RELATED["hate"]["hate_offensive"])
    assert pairs == [("a", 1), ("b", 0), ("c", 0)]
    pairs = mapped(items, ("hate", "offensive", "neither"), ("not_offensive", "offensive"),
                   RELATED["offensive"]["hate_offensive"])
    assert [y for _, y in pairs] == [1, 1, 0]


def test_choice_on_val_and_ship_records_it(data_root, tiny_encoder, tmp_path):
    import multisource_heads
    from somelvlm.cli import main
    from somelvlm.models.compact import CompactModel

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"tasks": ["hate", "hate_offensive"], "encoder": str(tiny_encoder), "lora_r": 4,
                                   "lora_alpha": 8, "batch_size": 8, "max_length": 32, "threads": 1,
                                   "max_per_task": 24, "max_val_per_task": 16, "epochs": 1}), encoding="utf-8")
    main(["train", "heads", "--config", str(cfg), "--out", str(tmp_path / "run"), "--data-root", str(data_root)])
    folder = tmp_path / "run" / "model"
    before = CompactModel(folder).net.heads["hate_offensive"].weight.detach().clone()
    rows = multisource_heads.main([f"--model={folder}", f"--data={data_root}", "--heads", "hate", "offensive",
                                   "--train-cap", "300", "--val-cap", "100", "--test-cap", "50", "--threads", "1",
                                   f"--cache={tmp_path / 'cache'}", f"--out={tmp_path / 'ms'}", "--ship"])
    assert list(rows) == ["hate"]  # offensive is not in this model: skipped
    row = rows["hate"]
    assert set(row["sources"]) == {"hate", "hate_offensive"} and row["sources"]["hate"]["val"] == 100
    mean = np.mean([v for k, v in row["multi_source"]["scores"].items() if k.endswith("/val")])
    assert abs(mean - row["multi_source_val_mean"]) < 0.01
    assert row["chosen"] == ("multi_source" if row["multi_source_val_mean"] > row["shipped_val_mean"] else "shipped")
    assert "| hate |" in (tmp_path / "ms.md").read_text()
    config = json.loads((folder / "config.json").read_text())
    after = CompactModel(folder)
    assert (after.net.heads["hate_offensive"].weight == before).all()  # the related head is left alone
    assert row["chosen"] == "multi_source"  # a head trained on 24 posts: the refit on thousands wins on val
    record = config["trained"]["multi_source"]["heads"]["hate"]
    assert record["sources"] == ["hate", "hate_offensive"] and record["mapping"] == multisource_heads.RELATED["hate"]

    # its temperature is then fit on the val posts of both sources, davidson's labels mapped onto hate's
    import fit_trust
    from _trust_data import EmbeddingStore, load_head_items, sample
    from somelvlm.models.applicability import model_digest

    store = EmbeddingStore(after, model_digest(folder), root=tmp_path / "cache")
    items = load_head_items(data_root, after.tasks)
    val = {t: (store([it.text for it in v]), v) for t in after.tasks for v in [sample(items[t]["val"], 40, 0)]}
    calib = fit_trust.with_related_val(after, items, val, store, 40, 0)
    emb, posts = calib["hate"]
    assert len(posts) == 80 and emb.shape == (80, val["hate"][0].shape[1])
    davidson = {it.text: it.target for it in items["hate_offensive"]["val"]}
    mapped = [it for it in posts if it.text in davidson]
    assert len(mapped) == 40 and all(it.target == int(davidson[it.text] == 0) for it in mapped)  # hate -> hate
    assert calib["hate_offensive"] is val["hate_offensive"]  # a single-source head: its own val only


def test_the_shipped_record_names_the_mappings_in_the_code():
    """some-mini's ``trained.multi_source`` (what fit_trust calibrates on) matches RELATED."""
    from multisource_heads import RELATED
    from somelvlm.models.compact import ASSETS

    heads = json.loads((ASSETS / "some-mini" / "config.json").read_text())["trained"]["multi_source"]["heads"]
    assert set(heads) <= set(RELATED) and heads
    for task, record in heads.items():
        assert record["mapping"] == RELATED[task] and record["sources"] == [task, *RELATED[task]]
        assert record["val_mean_multi_source"] > record["val_mean_shipped"]  # chosen on val, strictly better
