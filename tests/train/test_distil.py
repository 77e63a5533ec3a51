"""The distillation recipe: a compact student learns a teacher's probabilities, keeps the other heads'
inputs, writes loadable model folders per epoch and resumes from its checkpoint."""

import json

import numpy as np
import pytest
import torch

from somelvlm.models.compact import CompactModel, load_net, save_compact
from somelvlm.models.encoder import encoder_digest, load_encoder
from somelvlm.models.heads import MultiTaskNet
from somelvlm.taxonomy.heads import head_spec
from somelvlm.train.distil import DistilConfig, soft_cross_entropy, train

LORA = {"r": 4, "alpha": 8, "targets": ["query", "value"]}
TEXTS = [f"post number {i} says {w}" for i, w in enumerate(["great", "awful", "fine", "sad", "happy", "angry"] * 8)]
KEEP = ["another post about cats", "a tweet on the weather", "breaking news today", "memes are fun"]


@pytest.fixture()
def student(tiny_encoder, tmp_path):
    from peft import LoraConfig, get_peft_model

    _, base = load_encoder(str(tiny_encoder))
    torch.manual_seed(0)
    specs = [head_spec(t) for t in ("emotion", "stance", "humor")]
    net = MultiTaskNet(get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=LORA["targets"])), specs)
    folder = tmp_path / "student"
    save_compact(net, specs, folder, encoder=str(tiny_encoder), encoder_digest=encoder_digest(str(tiny_encoder)),
                 lora=LORA, max_length=32, extra={"trained": {"epoch": 1}})
    return folder


def teacher_probs(n: int) -> dict:
    rng = np.random.default_rng(0)
    emotion = np.zeros((n, 4), np.float32)
    emotion[np.arange(n), np.arange(n) % 4] = 0.9
    emotion += 0.025
    stance = rng.dirichlet(np.ones(3), size=(n, 5)).astype(np.float32)
    return {"emotion": emotion, "stance": stance}


def test_soft_cross_entropy_is_lowest_at_the_teacher():
    p = torch.tensor([[0.7, 0.2, 0.1]])
    assert soft_cross_entropy(p.log(), p) < soft_cross_entropy(torch.zeros(1, 3), p)
    assert soft_cross_entropy(torch.zeros(2, 5, 3), torch.full((2, 5, 3), 1 / 3)).item() == pytest.approx(np.log(3))


def test_student_learns_the_teacher_and_keeps_other_heads(student, tmp_path):
    _, net, _ = load_net(student)
    tok, _ = load_encoder(json.loads((student / "config.json").read_text())["encoder"])
    with torch.no_grad():
        enc = tok(KEEP, padding=True, truncation=True, max_length=32, return_tensors="pt")
        keep_emb = net.embed(enc["input_ids"], enc["attention_mask"]).numpy()
    soft = teacher_probs(len(TEXTS))
    before = CompactModel(student, runtime="torch").predict_proba(TEXTS, ["emotion", "humor"])
    config = DistilConfig(student=str(student), out=str(tmp_path / "run"), tasks=["emotion", "stance"], epochs=2,
                          batch_size=8, keep_batch_size=2, lr_encoder=2e-3, lr_heads=5e-2, checkpoint_every=3)
    model_dir = train(config, TEXTS, soft, KEEP, keep_emb, log=lambda m: None)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"epoch-1", "epoch-2", "model", "checkpoint.pt"}
    after = CompactModel(model_dir, runtime="torch").predict_proba(TEXTS, ["emotion", "humor"])
    gap = lambda p: float(-(soft["emotion"] * np.log(p)).sum(-1).mean())
    assert gap(after["emotion"]) < gap(before["emotion"])
    assert np.allclose(after["humor"].sum(-1), 1)  # the untrained head still answers
    saved = json.loads((model_dir / "config.json").read_text())
    assert saved["trained"]["epoch"] == 1 and saved["trained"]["distil"]["epoch"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 * 6 and all("preserve" in row for row in log)


def test_a_finished_run_resumes_without_training_again(student, tmp_path):
    soft = teacher_probs(len(TEXTS))
    config = DistilConfig(student=str(student), out=str(tmp_path / "run"), tasks=["emotion"], epochs=1,
                          batch_size=16, keep_batch_size=0)
    train(config, TEXTS, soft, [], np.zeros((0, 32), np.float32), log=lambda m: None)
    lines = []
    train(config, TEXTS, soft, [], np.zeros((0, 32), np.float32), log=lines.append)
    assert any("resumed at epoch 1" in m for m in lines)
    assert len((tmp_path / "run" / "train_log.jsonl").read_text().splitlines()) == 3


def test_teacher_rows_must_match_the_posts(student, tmp_path):
    config = DistilConfig(student=str(student), out=str(tmp_path / "run"), tasks=["emotion"])
    with pytest.raises(ValueError, match="emotion"):
        train(config, TEXTS, {"emotion": np.ones((3, 4), np.float32)}, [], np.zeros((0, 32)), log=lambda m: None)
    with pytest.raises(ValueError, match="tasks"):
        DistilConfig(student=str(student), tasks=[])
