"""The shared training loop pieces: schedules equal to the recipes' former formulas, step
checkpoints (atomic, two kept, resumable), the single-file checkpoint and the kept epoch."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from somelvlm.train.loop import (  # noqa: E402
    BestEpoch,
    apply_step,
    latest_step_checkpoint,
    load_file_checkpoint,
    resume_step_checkpoint,
    save_file_checkpoint,
    save_step_checkpoint,
    warmup_linear,
)


def factors(schedule, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(schedule.get_last_lr()[0])
        schedule.optimizer.step()
        schedule.step()
    return out


@pytest.mark.parametrize("warmup,total", [(1, 7), (3, 10), (10, 4)])
def test_schedules_are_the_recipes_formulas(warmup, total):
    def fresh():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    run = factors(warmup_linear(fresh(), warmup, total, decay="run"), total + 2)
    after = factors(warmup_linear(fresh(), warmup, total, decay="after_warmup"), total + 2)
    # instruct: min(1, (s+1)/w) * max(0, 1 - s/total); heads: ... * max(0, (total-s)/(total-w))
    assert run == [min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / max(1, total)) for s in range(total + 2)]
    assert after == [min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))
                     for s in range(total + 2)]
    with pytest.raises(ValueError, match="decay"):
        warmup_linear(fresh(), warmup, total, decay="cosine")


def tiny():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    return net, opt, warmup_linear(opt, 2, 10)


def one_step(net, opt, sched):
    net(torch.ones(4, 3)).pow(2).sum().backward()
    apply_step(opt, net.parameters(), sched, clip=1.0)
    assert all(p.grad is None for p in net.parameters())


def test_step_checkpoints_keep_two_and_resume_exactly(tmp_path):
    net, opt, sched = tiny()
    trainable = dict(net.named_parameters())
    root = tmp_path / "checkpoints"
    root.mkdir()
    (root / f".step-000003.{os.getpid()}.tmp").mkdir()  # left by a killed run: no obstacle
    for step in (1, 2, 3):
        one_step(net, opt, sched)
        save_step_checkpoint(root, step, trainable, opt, sched)
    assert sorted(p.name for p in root.iterdir()) == ["step-000002", "step-000003"]
    assert latest_step_checkpoint(root).name == "step-000003"
    net2, opt2, sched2 = tiny()
    assert resume_step_checkpoint(latest_step_checkpoint(root), dict(net2.named_parameters()), opt2, sched2) == 3
    one_step(net, opt, sched)
    one_step(net2, opt2, sched2)
    assert torch.equal(net.weight, net2.weight) and sched.get_last_lr() == sched2.get_last_lr()
    with pytest.raises(ValueError, match="does not match"):
        resume_step_checkpoint(root / "step-000003", {"other.weight": net.weight}, opt2, sched2)


def test_file_checkpoint_round_trip(tmp_path):
    net, opt, sched = tiny()
    one_step(net, opt, sched)
    save_file_checkpoint(tmp_path / "checkpoint.pt", net.state_dict(), opt, sched, {"epoch": 1, "step": 0})
    net2, opt2, sched2 = tiny()
    assert load_file_checkpoint(tmp_path / "checkpoint.pt", net2, opt2, sched2) == {"epoch": 1, "step": 0}
    assert torch.equal(net.weight, net2.weight) and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_best_epoch_keeps_the_first_best_and_its_weights():
    net, _, _ = tiny()
    kept = BestEpoch("val_macro_f1")
    assert kept.update({"epoch": 1, "val_macro_f1": 0.5}, net)
    saved = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not kept.update({"epoch": 2, "val_macro_f1": 0.5}, net)  # a tie keeps the earlier epoch
    assert not kept.update({"epoch": 3, "val_macro_f1": float("nan")}, net)
    kept.restore(net)
    assert kept.row["epoch"] == 1 and torch.equal(net.weight, saved)
