"""The heads recipe end to end on real data with a tiny encoder, config validation, every config loads."""

from pathlib import Path

import pytest
import yaml

from somelvlm.train.heads import HeadsConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_starts_with_its_command(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# somelvlm "), "a recipe config starts with the command that runs it"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if "heads" in first:
        HeadsConfig.from_yaml(path)
    assert data


def test_config_errors_name_what_to_change(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [emotion]\nlearning_rate: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown keys"):
        HeadsConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="detoxify is generation"):
        HeadsConfig(tasks=["detoxify"])
    with pytest.raises(KeyError, match="emotion"):
        HeadsConfig(tasks=["emotoin"])


def test_tiny_training_run_then_resume_and_load(data_root, tiny_encoder, tmp_path):
    from somelvlm.cli import main
    from somelvlm.models.compact import CompactModel

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"tasks": ["emotion", "stance", "humor_rating", "hateful_meme"],
                                      "encoder": str(tiny_encoder), "lora_r": 4, "lora_alpha": 8,
                                      "batch_size": 8, "max_length": 32, "threads": 1}), encoding="utf-8")
    out = tmp_path / "run"
    main(["train", "heads", "--config", str(config), "--out", str(out), "--data-root", str(data_root), "--tiny"])
    assert (out / "model" / "model.safetensors").is_file() and (out / "model" / "README.md").is_file()
    assert (out / "checkpoint.pt").is_file() and (out / "history.json").is_file()
    model = CompactModel(out / "model", int8=False)
    assert set(model.tasks) == {"emotion", "stance", "humor_rating", "hateful_meme"}
    assert model.predict(["a test post"])[0]["hateful_meme"]["label"] in ("not_hateful", "hateful")
    # a rerun on a finished run resumes from its checkpoint and does not train again
    main(["train", "heads", "--config", str(config), "--out", str(out), "--data-root", str(data_root), "--tiny"])
