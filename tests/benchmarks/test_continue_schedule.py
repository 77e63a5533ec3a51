"""benchmarks/continue_schedule.py: a run continued from an epoch's model folder resumes the recipe at the
next epoch, with the learning rate an uninterrupted run would have there."""

import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _config(tmp_path, tiny_encoder, epochs: int) -> Path:
    path = tmp_path / f"e{epochs}.yaml"
    path.write_text(yaml.safe_dump({"tasks": ["emotion", "stance"], "encoder": str(tiny_encoder), "lora_r": 4,
                                    "lora_alpha": 8, "batch_size": 8, "max_length": 32, "threads": 1,
                                    "max_per_task": 24, "max_val_per_task": 16, "epochs": epochs}), encoding="utf-8")
    return path


def test_continue_from_epoch_one_resumes_epoch_two_on_the_schedule(data_root, tiny_encoder, tmp_path):
    import torch

    import continue_schedule
    from somelvlm.cli import main

    one, two = _config(tmp_path, tiny_encoder, 1), _config(tmp_path, tiny_encoder, 2)
    common = ["--data-root", str(data_root)]
    main(["train", "heads", "--config", str(one), "--out", str(tmp_path / "e1"), *common])
    # an uninterrupted two-epoch run: its checkpoint after epoch 1 has the schedule's position there
    main(["train", "heads", "--config", str(two), "--out", str(tmp_path / "full"), *common])
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)

    ckpt = continue_schedule.main([str(tmp_path / "e1" / "model"), "--config", str(two),
                                   "--out", str(tmp_path / "cont"), *common])
    saved = torch.load(ckpt, weights_only=True)
    state = json.loads(saved["state"])
    assert (state["epoch"], state["step"]) == (1, 0)
    assert len(json.loads((tmp_path / "full" / "history.json").read_text())["history"]) == 2
    # after 2 epochs the full run's schedule is at 2 x steps_per_epoch; the continued one at 1 x
    assert saved["sched"]["last_epoch"] * 2 == full["sched"]["last_epoch"]
    # the epoch-1 weights are the ones continued (the LoRA and the heads)
    from safetensors.torch import load_file

    e1 = load_file(str(tmp_path / "e1" / "model" / "model.safetensors"))
    head = saved["net"]["heads.emotion.weight"]
    assert torch.allclose(head, e1["head.emotion.weight"].float())

    main(["train", "heads", "--config", str(two), "--out", str(tmp_path / "cont"), *common])
    history = json.loads((tmp_path / "cont" / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [2]
    assert (tmp_path / "cont" / "model" / "model.safetensors").is_file()
