"""The multimodal and RGCL recipes on synthetic feature tables (seconds), the classifier's save /
load, hard-negative mining by FAISS, and every multimodal config file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss", reason="the retrieval extra (faiss-cpu) is needed")

from somelvlm.models.multimodal import FUSIONS, MMConfig, build_classifier, load_classifier  # noqa: E402
from somelvlm.train.multimodal import MultimodalConfig, predict, as_tensors, train  # noqa: E402
from somelvlm.train.rgcl import RGCLConfig, mine, train as train_rgcl  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_learns_and_round_trips(table, tmp_path, fusion):
    out = tmp_path / fusion
    result = train(MultimodalConfig(fusion=fusion, epochs=4, lr=1e-2, out=str(out)), table=table, log=lambda *a: None)
    assert result["val"]["macro_f1"] > 70, result["val"]  # the planted signal is easy
    assert set(result["test"]) == {"macro_f1", "accuracy", "auroc"}
    assert 1 <= result["best_epoch"] <= 4
    model, meta = load_classifier(out)
    assert meta["labels"] == list(table.labels) and meta["encoders"] == table.encoders
    rows = table.rows("test")
    before = predict(result["model"], as_tensors(table), rows)[0]
    after = predict(model, as_tensors(table), rows)[0]
    np.testing.assert_allclose(before, after, atol=1e-6)


def test_aux_losses_are_logged_and_off_switches_work(table):
    with_aux = train(MultimodalConfig(epochs=1, b_itc=0.1, b_itm=0.1), table=table, log=lambda *a: None)
    assert {"train_itc", "train_itm", "train_ce"} <= set(with_aux["history"][0])
    plain = train(MultimodalConfig(epochs=1, b_itc=0.0, b_itm=0.0), table=table, log=lambda *a: None)
    assert "train_itc" not in plain["history"][0] and "train_itm" not in plain["history"][0]
    text_only = train(MultimodalConfig(epochs=1, fusion="text"), table=table, log=lambda *a: None)
    assert "train_itc" not in text_only["history"][0]  # aux losses need both modalities


def test_cross_attention_takes_grid_tokens():
    model = build_classifier(MMConfig(num_classes=3, fusion="cross_attention", proj_dim=16, hidden=8, heads=2))
    out = model(torch.randn(4, 1280), torch.randn(4, 384), image_tokens=torch.randn(4, 49, 1280))
    assert out["logits"].shape == (4, 3) and out["g"].shape == (4, 8) and out["tokens"].shape == (4, 49, 16)


def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match="fusion"):
        MultimodalConfig(fusion="sum")
    with pytest.raises(ValueError, match="b_itc"):
        MultimodalConfig(b_itc=0.6, b_itm=0.5)
    with pytest.raises(ValueError, match="dataset"):
        RGCLConfig(dataset="tweeteval")
    with pytest.raises(ValueError, match="form"):
        RGCLConfig(form="quadruplet")


def test_mining_excludes_the_item_itself():
    g = np.array([[1, 0], [0.99, 0.1], [0.98, -0.1], [0, 1], [0.1, 0.99]], np.float32)
    y = np.array([0, 0, 1, 1, 1])
    pos, neg = mine(g, y, k=4, m=1)
    assert pos.tolist() == [1, 0, 4, 4, 3]  # nearest same-label item, never itself
    assert neg[:, 0].tolist() == [2, 2, 0, 1, 1]  # nearest other-label item


@pytest.mark.parametrize("form", ["contrastive", "triplet"])
def test_rgcl_trains_and_saves_a_stamped_index(table, tmp_path, form):
    from somelvlm.retrieval.index import MemoryIndex

    out = tmp_path / form
    result = train_rgcl(RGCLConfig(epochs=3, form=form, out=str(out)), table=table, log=lambda *a: None)
    assert result["val"]["macro_f1"] > 70 and result["test_rkc"]["macro_f1"] > 70
    assert {"train_rgcl", "train_ce", "train_pos_sim"} <= set(result["history"][0])
    index = MemoryIndex.load(out / "index")
    assert len(index) == len(table.rows("train"))
    assert index.stamp["encoders"] == table.encoders and len(index.stamp["head_digest"]) == 16


def test_every_multimodal_config_loads():
    configs = sorted((REPO / "configs").glob("mm-*.yaml")) + sorted((REPO / "configs").glob("rgcl-*.yaml"))
    assert configs
    for path in configs:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# somelvlm train"), f"{path.name} must start with the command that runs it"
        cls = RGCLConfig if path.name.startswith("rgcl-") else MultimodalConfig
        cls.from_yaml(path)
