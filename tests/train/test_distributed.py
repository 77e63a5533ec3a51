"""Training on several processes: the ``Dist`` arithmetic in one process, then real 2-process runs
(torchrun, and accelerate's launcher) of the instruct recipe (our LVLM under DDP and under FSDP, and
a Hugging Face LLaVA) and the heads recipe on tiny models, each compared with one process on the
same global batch: the same loss curve, the same weights, checkpoints written by rank 0 only, a
resumed launch continuing from the checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
from gen_helpers import make_tiny_lm, write_tiny_somedata  # noqa: E402

import somelvlm  # noqa: E402
from somelvlm.train.distributed import Dist, init_from_env, resolve_sharding  # noqa: E402

WORKER = Path(__file__).with_name("ddp_worker.py")
ACCELERATE_DIR = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
RTOL = 1e-4


# -- one process: the arithmetic ---------------------------------------------------------------------
def test_a_single_process_is_left_as_it_was(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    d = init_from_env()
    assert (d.rank, d.world, d.is_main, d.enabled) == (0, 1, True, False)
    model = torch.nn.Linear(2, 2)
    loss = torch.tensor(3.0)
    assert d.wrap(model) is model and d.scale(loss, 1, 7) is loss
    assert d.shard([4, 5, 6]) == ([4, 5, 6], False) and d.all_reduce_mean(2.5) == 2.5
    assert d.broadcast({"a": 1}) == {"a": 1}
    d.barrier()
    d.close()


def test_bad_launcher_variables_name_the_variable(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5 is outside WORLD_SIZE=2"):
        init_from_env()


@pytest.mark.parametrize("n,world", [(8, 2), (7, 3), (2, 3), (1, 2), (5, 1)])
def test_shards_cover_the_global_batch_once_in_order(n, world):
    batch = list(range(100, 100 + n))
    shards = [Dist(rank=r, world=world).shard(batch) for r in range(world)]
    real = [part for part, padding in shards if not padding]
    assert [i for part in real for i in part] == batch            # every item once, in the global order
    sizes = [len(part) for part in real]
    assert max(sizes) - min(sizes) <= 1
    for part, padding in shards:                                  # an empty slice runs the first item, counted 0
        assert not padding or part == batch[:1]


def test_scaled_shares_average_to_the_global_mean():
    # rank r: mean loss l_r over w_r answer tokens; DDP averages the ranks' gradients (1 / world)
    losses, weights = [2.0, 5.0, 1.0], [3, 1, 0]
    ranks = [Dist(rank=r, world=3) for r in range(3)]
    shares = [d.scale(torch.tensor(l), w, sum(weights)) for d, l, w in zip(ranks, losses, weights)]
    assert float(sum(shares)) / 3 == pytest.approx(sum(l * w for l, w in zip(losses, weights)) / sum(weights))


# -- several processes: real launches ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(launcher: str, recipe: str, config: dict, nproc: int = 2, env_extra: dict | None = None,
           accelerate_config: str = "ddp-lora-7b.yaml", accelerate_args: tuple[str, ...] = ()) -> str:
    """Run ``ddp_worker.py`` on ``nproc`` processes through ``torchrun`` or ``accelerate`` (with one of
    the shipped configs, ``accelerate_args`` overriding its knobs); its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env_extra or {}),
           "PYTHONPATH": os.pathsep.join([str(Path(somelvlm.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    args = [str(WORKER), recipe, json.dumps(config)]
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *args]
    else:  # accelerate with a shipped config; on a machine without CUDA our init picks gloo
        cmd = [accelerate_bin(), "launch", "--config_file", str(ACCELERATE_DIR / accelerate_config),
               "--num_processes", str(nproc), "--main_process_port", str(free_port()), *accelerate_args, *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def accelerate_bin() -> str | None:
    found = Path(sys.executable).with_name("accelerate")
    return str(found) if found.is_file() else shutil.which("accelerate")


def losses(path: Path, key: str) -> list[float]:
    return [json.loads(line)[key] for line in path.read_text().splitlines()]


def assert_same_weights(a: dict, b: dict) -> None:
    """Equal within 1e-4 absolute: AdamW moves each weight by about lr (5e-3) whatever its gradient's
    size, so float noise in a near-zero gradient (other padding, other summation order) shows up
    in the weights as up to ~2.5e-5 (measured on the tiny LLaVA); the loss curve is held to 1e-4."""
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-4, msg=name)


def writers(out: Path) -> set[str]:
    return {line.split()[0] for line in (out / "ckpt_writers.txt").read_text().splitlines()}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Tiny SoMeData whose answers differ in length (1 to 4 phrases): ranks then hold different
    numbers of answer tokens, so a plain average of the ranks' mean losses would differ from one
    process's mean over the global batch."""
    torch.set_num_threads(1)
    root = write_tiny_somedata(tmp_path_factory.mktemp("somedata"), detox=12, hashtags=6, images=4, size=(32, 32))
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    for i, r in enumerate(rows):
        r["conversations"][1]["value"] = " ".join([r["conversations"][1]["value"]] * (1 + i * 7 % 4))
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def instruct_config(data: Path, base: Path, out: Path, batch_size: int, max_steps: int, **extra) -> dict:
    """A tiny instruct run without dropout (the ranks' dropout masks differ from one process's)."""
    return {"stage": 1, "data": str(data), "data_root": str(data), "base": str(base), "out": str(out),
            "max_len": 96, "max_answer_tokens": 16, "batch_size": batch_size, "max_steps": max_steps, "lr": 5e-3,
            "warmup_steps": 1, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "checkpoint_every": 2,
            "log_every": 1, "num_threads": 1, "quantize": "none", **extra}


@pytest.fixture(scope="module")
def lvlm_one_process(tiny_data, tmp_path_factory) -> tuple[Path, Path]:
    """(tiny LM, run folder) of our LVLM's stage 1 on one process x batch 4: 2 steps, then resumed to 4."""
    from somelvlm.train.instruct import InstructConfig, train

    root = tmp_path_factory.mktemp("lvlm")
    lm, one = make_tiny_lm(root / "lm"), root / "one"
    for steps in (2, 4):
        train(InstructConfig(**instruct_config(tiny_data, lm, one, 4, steps)), log=lambda _: None)
    return lm, one


@pytest.mark.slow
def test_instruct_on_two_processes_equals_one_and_resumes(tiny_data, lvlm_one_process, tmp_path):
    """Our LVLM, stage 1: 1 process x batch 4 against 2 processes x batch 2, 2 steps then a resumed
    launch to 4 (torchrun, then ``accelerate launch --config_file configs/accelerate/ddp-lora-7b.yaml``
    when accelerate is installed)."""
    from safetensors.torch import load_file

    lm, one = lvlm_one_process
    two = tmp_path / "two"
    first = launch("torchrun", "instruct", instruct_config(tiny_data, lm, two, 2, 2))
    assert "2 processes (cpu): global batch 4 per step" in first
    second = launch("accelerate" if accelerate_bin() else "torchrun", "instruct",
                    instruct_config(tiny_data, lm, two, 2, 4))
    assert "resumed from" in second and "at step 2" in second
    assert second.count("resumed from") == 1                      # logged by rank 0 alone

    assert [json.loads(x)["step"] for x in (two / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert losses(two / "train_log.jsonl", "lm") == pytest.approx(losses(one / "train_log.jsonl", "lm"), rel=RTOL)
    assert_same_weights(load_file(str(one / "checkpoints" / "step-000004" / "trainable.safetensors")),
                        load_file(str(two / "checkpoints" / "step-000004" / "trainable.safetensors")))
    assert writers(two) == {"0"}                                  # only rank 0 wrote checkpoints
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    meta = json.loads((two / "model" / "config.json").read_text())
    assert meta["training"]["stage1"]["world"] == 2 and meta["training"]["stage1"]["records"] == 18


@pytest.mark.slow
def test_instruct_under_fsdp_on_two_processes_equals_one_and_resumes(tiny_data, lvlm_one_process, tmp_path):
    """Our LVLM, stage 1, sharded with FSDP2 (one unit per decoder layer + the root, gloo): 2 processes
    x batch 2 by torchrun with ``SOMELVLM_SHARDING=fsdp`` to step 2, then a resumed launch to 4 by
    ``accelerate launch --config_file configs/accelerate/fsdp-lora-7b.yaml`` (its activation
    checkpointing on; fp32 instead of its bf16, to compare) when accelerate is installed. The loss
    curve, the step-4 checkpoint (weights and AdamW state) and the saved adapter match one process."""
    from safetensors.torch import load_file

    lm, one = lvlm_one_process
    two = tmp_path / "two"
    first = launch("torchrun", "instruct", instruct_config(tiny_data, lm, two, 2, 2), env_extra={"SOMELVLM_SHARDING": "fsdp"})
    assert "2 processes (cpu, FSDP over 3 units): global batch 4 per step" in first   # 2 decoder layers + root
    if accelerate_bin():
        second = launch("accelerate", "instruct", instruct_config(tiny_data, lm, two, 2, 4),
                        accelerate_config="fsdp-lora-7b.yaml", accelerate_args=("--mixed_precision", "no"))
    else:
        second = launch("torchrun", "instruct", instruct_config(tiny_data, lm, two, 2, 4),
                        env_extra={"SOMELVLM_SHARDING": "fsdp"})
    assert "FSDP over 3 units" in second and second.count("resumed from") == 1 and "at step 2" in second

    assert [json.loads(x)["step"] for x in (two / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert losses(two / "train_log.jsonl", "lm") == pytest.approx(losses(one / "train_log.jsonl", "lm"), rel=RTOL)
    step4 = Path("checkpoints") / "step-000004"
    assert_same_weights(load_file(str(one / step4 / "trainable.safetensors")),
                        load_file(str(two / step4 / "trainable.safetensors")))
    opt_one, opt_two = (torch.load(run / step4 / "optimizer.pt", weights_only=True) for run in (one, two))
    assert opt_two["param_groups"][0]["params"] == opt_one["param_groups"][0]["params"]  # one layout for all engines
    for i, state in opt_one["state"].items():
        torch.testing.assert_close(opt_two["state"][i]["exp_avg"], state["exp_avg"], rtol=1e-3, atol=1e-5)
        assert float(opt_two["state"][i]["step"]) == float(state["step"]) == 4
    assert writers(two) == {"0"}
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    adapter = Path("model") / "adapter" / "adapter_model.safetensors"
    assert_same_weights(load_file(str(one / adapter)), load_file(str(two / adapter)))
    assert json.loads((two / "model" / "config.json").read_text())["training"]["stage1"]["world"] == 2


@pytest.mark.slow
def test_fsdp_gradient_accumulation_equals_one_process(tiny_data, lvlm_one_process, tmp_path):
    """FSDP's accumulation path (no gradient sync until a step's last micro-batch): 2 processes x
    batch 1 x grad_accum 2 against 1 process x batch 2 x grad_accum 2, 3 steps."""
    from somelvlm.train.instruct import InstructConfig, train

    lm, one = lvlm_one_process[0], tmp_path / "one"
    train(InstructConfig(**instruct_config(tiny_data, lm, one, 2, 3, grad_accum=2)), log=lambda _: None)
    launch("torchrun", "instruct", instruct_config(tiny_data, lm, tmp_path / "two", 1, 3, grad_accum=2),
           env_extra={"SOMELVLM_SHARDING": "fsdp"})
    assert losses(tmp_path / "two" / "train_log.jsonl", "lm") == pytest.approx(losses(one / "train_log.jsonl", "lm"),
                                                                                rel=RTOL)


@pytest.mark.slow
def test_instruct_on_a_hf_vlm_on_two_processes_equals_one(tiny_data, tmp_path):
    """The Hugging Face VLM recipe (tiny LLaVA, text and image records) on 2 processes x batch 2."""
    from safetensors.torch import load_file
    from vlm_helpers import make_llava

    from somelvlm.train.instruct import InstructConfig, train

    llava = make_llava(tmp_path / "llava")
    one, two = tmp_path / "one", tmp_path / "two"
    train(InstructConfig(**instruct_config(tiny_data, llava, one, 4, 3)), log=lambda _: None)
    launch("torchrun", "instruct", instruct_config(tiny_data, llava, two, 2, 3))
    assert losses(two / "train_log.jsonl", "lm") == pytest.approx(losses(one / "train_log.jsonl", "lm"), rel=RTOL)
    assert_same_weights(load_file(str(one / "checkpoints" / "step-000003" / "trainable.safetensors")),
                        load_file(str(two / "checkpoints" / "step-000003" / "trainable.safetensors")))
    assert writers(two) == {"0"}
    assert (two / "model" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_heads_on_two_processes_equal_one(data_root, tmp_path, tiny_encoder):
    """The heads recipe on real data (a classification and a regression task, class-weighted CE and
    MSE), a tiny BERT without dropout: 1 process x batch 8 against 2 processes x batch 4."""
    import shutil

    from safetensors.torch import load_file

    from somelvlm.train.heads import HeadsConfig, train

    encoder = Path(shutil.copytree(tiny_encoder, tmp_path / "encoder"))  # a copy: its dropout is changed below
    config_path = encoder / "config.json"
    config = json.loads(config_path.read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_path.write_text(json.dumps(config))

    def heads_config(out: Path, batch_size: int) -> dict:
        return {"tasks": ["emotion", "humor_rating"], "encoder": str(encoder), "data_root": str(data_root),
                "out": str(out), "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "head_dropout": 0.0,
                "batch_size": batch_size, "max_length": 32, "threads": 1, "checkpoint_every": 4, "tiny": True}

    one, two = tmp_path / "one", tmp_path / "two"
    train(HeadsConfig(**heads_config(one, 8)), log=lambda _: None)
    launch("torchrun", "heads", heads_config(two, 4))
    curve_one, curve_two = losses(one / "train_log.jsonl", "loss"), losses(two / "train_log.jsonl", "loss")
    assert len(curve_one) == 8 and curve_two == pytest.approx(curve_one, rel=RTOL)
    tasks = [json.loads(x)["task"] for x in (two / "train_log.jsonl").read_text().splitlines()]
    assert set(tasks) == {"emotion", "humor_rating"}             # both losses took part
    assert_same_weights(load_file(str(one / "model" / "model.safetensors")),
                        load_file(str(two / "model" / "model.safetensors")))
    assert writers(two) == {"0"}
    history = json.loads((two / "history.json").read_text())
    assert history["history"][0]["val_mean"] == pytest.approx(
        json.loads((one / "history.json").read_text())["history"][0]["val_mean"], rel=1e-3)


def test_deepspeed_which_the_loop_does_not_drive_is_refused(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(RuntimeError, match="runs DDP or FSDP, not DeepSpeed"):
        init_from_env()


def test_the_engine_comes_from_the_config_the_variable_or_accelerate(monkeypatch):
    for name in ("SOMELVLM_SHARDING", "ACCELERATE_USE_FSDP", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_sharding() == "ddp" and resolve_sharding("fsdp") == "fsdp"
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")               # accelerate's FSDP config maps to ours
    assert resolve_sharding() == "fsdp" and init_from_env().world == 1  # one process: nothing to shard
    with pytest.raises(ValueError, match="this recipe runs ddp only, but ACCELERATE_USE_FSDP"):
        resolve_sharding(supported=("ddp",))                         # heads, the HF VLM recipe
    with pytest.raises(ValueError, match="two engines"):
        resolve_sharding("ddp")
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("SOMELVLM_SHARDING", "zero3")
    with pytest.raises(ValueError, match="SOMELVLM_SHARDING='zero3' is not an engine: choose one of ddp, fsdp"):
        resolve_sharding()


def test_fsdp_names_the_layer_class_it_could_not_find(monkeypatch):
    from somelvlm.train.fsdp import decoder_layers

    monkeypatch.setenv("FSDP_TRANSFORMER_CLS_TO_WRAP", "LlamaDecoderLayer")
    with pytest.raises(ValueError, match=r"looked for \['LlamaDecoderLayer'\].*set fsdp_transformer_layer_cls_to_wrap"):
        decoder_layers(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_fsdp_refuses_a_4bit_base(tiny_data, tmp_path):
    from somelvlm.train.instruct import InstructConfig, fsdp_quantize

    config = InstructConfig(**{**instruct_config(tiny_data, tmp_path, tmp_path, 2, 1), "quantize": "nf4"})
    with pytest.raises(ValueError, match="quantize: nf4 .* not sharded by FSDP"):
        fsdp_quantize(config, print)


ACCELERATE_CONFIGS = sorted(ACCELERATE_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_every_accelerate_config_starts_with_its_command_and_loads(path):
    import yaml

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# accelerate launch --config_file configs/accelerate/" + path.name)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if accelerate_bin():  # accelerate's own reader accepts every key
        from accelerate.commands.config.config_args import ClusterConfig

        ClusterConfig.from_yaml_file(str(path))
    assert config["num_processes"] >= 2 and config["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
    if config["distributed_type"] == "DEEPSPEED":
        ds = path.parents[0] / Path(config["deepspeed_config"]["deepspeed_config_file"]).name
        assert json.loads(ds.read_text())["zero_optimization"]["stage"] == 3
