"""One process of a distributed test run: ``python -m torch.distributed.run --nproc_per_node N
ddp_worker.py RECIPE CONFIG_JSON`` trains ``instruct`` or ``heads`` with that config.

Every call to write a checkpoint is recorded (rank and step) in ``OUT/ckpt_writers.txt`` before the
real writer runs, so a test can see which ranks wrote; nothing else is changed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def record_writers(out: Path) -> None:
    """Wrap the loop's checkpoint writers so each call appends ``RANK kind step`` to a file."""
    from somelvlm.train import loop

    def spy(name: str):
        real = getattr(loop, name)

        def call(where, *args, **kwargs):
            step = args[0] if name == "save_step_checkpoint" else kwargs.get("state", args[-1]).get("step")
            with (out / "ckpt_writers.txt").open("a", encoding="utf-8") as f:
                f.write(f"{os.environ.get('RANK', '0')} {name} {step}\n")
            return real(where, *args, **kwargs)

        setattr(loop, name, call)

    spy("save_step_checkpoint")
    spy("save_file_checkpoint")


def main(argv: list[str]) -> None:
    recipe, config = argv[0], json.loads(argv[1])
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    record_writers(out)
    if recipe == "instruct":
        from somelvlm.train.instruct import InstructConfig, train

        train(InstructConfig(**config))
    elif recipe == "heads":
        from somelvlm.train.heads import HeadsConfig, train

        train(HeadsConfig(**config))
    else:
        raise SystemExit(f"unknown recipe {recipe!r}: instruct or heads")


if __name__ == "__main__":
    main(sys.argv[1:])
