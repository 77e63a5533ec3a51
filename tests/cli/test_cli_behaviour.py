"""The ``somelvlm`` command as a user runs it (subprocesses): usage errors, --version, stdin and
stdout, unusable --out, no temporary folder left, SIGINT / SIGTERM with where to resume, and every
environment variable documented."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from somelvlm.models.compact import ASSETS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ASSETS / "some-mini" / "config.json").is_file()
needs_model = pytest.mark.skipif(not SHIPPED, reason="the default model is not shipped in this checkout")


def env(**extra: str) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="200", LANG="C.UTF-8", **extra)


def cli(*args: str, input: str | None = None, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "somelvlm.cli", *args], capture_output=True, text=True,
                          input=input, env=env(**extra), timeout=600, check=False)


def posts_file(folder: Path, n: int) -> Path:
    path = folder / "posts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "text": f"post {i}: what a lovely day, thank you all"}) + "\n"
                            for i in range(n)), encoding="utf-8")
    return path


@pytest.mark.parametrize("args, needle", [
    (["tasks", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["tasks", "show"], "required: NAME"),
    (["eval", "--split", "train"], "--split"),
    (["analyze"], "required: INPUT"),
    (["trian"], "invalid choice: 'trian'"),
    ([], "required: COMMAND"),
])
def test_usage_errors_print_usage_and_exit_2(args, needle):
    res = cli(*args)
    assert res.returncode == 2, res.stderr
    assert "usage: somelvlm" in res.stderr and needle in res.stderr and "Traceback" not in res.stderr


def test_version_and_help():
    from somelvlm import __version__

    res = cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"somelvlm {__version__}"
    res = cli("--help")
    assert res.returncode == 0 and "SOMELVLM_DATA" in res.stdout and "analyze" in res.stdout
    res = cli("eval", "--help")
    assert res.returncode == 0 and "--data-root" in res.stdout and "SOMELVLM_DATA" in res.stdout


def test_every_environment_variable_is_documented():
    from somelvlm.cli.common import ENVIRONMENT

    used = set()
    for path in (ROOT / "src").rglob("*.py"):
        used |= set(re.findall(r"\b(SOMELVLM_[A-Z_]+)\b", path.read_text(encoding="utf-8")))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Environment variables"):]
    for name in used:
        assert name in ENVIRONMENT and name in section, name


@needs_model
def test_stdin_in_stdout_out_progress_on_stderr(tmp_path):
    lines = "".join(json.dumps({"id": f"s{i}", "text": t}) + "\n"
                    for i, t in enumerate(["I love this!", "you are a disgusting idiot"]))
    res = cli("analyze", "-", "--out", "-", "--tasks", "emotion,offensive", input=lines)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]  # nothing but JSONL on stdout
    assert [r["id"] for r in rows] == ["s0", "s1"] and rows[1]["offensive"]["label"] == "offensive"
    assert "2 posts written" in res.stderr


@needs_model
def test_no_out_prints_tables_and_leaves_no_temporary_folder(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    res = cli("analyze", str(posts_file(tmp_path, 2)), "--tasks", "emotion", TMPDIR=str(tmp))
    assert res.returncode == 0, res.stderr
    assert "p1" in res.stdout and "joy" in res.stdout
    assert [p.name for p in tmp.iterdir() if p.name.startswith("somelvlm")] == []  # (torch leaves its own)


@needs_model
def test_unusable_out_is_one_line_naming_the_path(tmp_path):
    src = posts_file(tmp_path, 1)
    folder = tmp_path / "x.jsonl"
    folder.mkdir()
    blocker = tmp_path / "afile"
    blocker.write_text("")  # a file where the output's folder should go
    cases = [(folder, "is a directory"), (blocker / "o.jsonl", "cannot create the folder"),
             (tmp_path / "o.txt", ".jsonl or .parquet")]
    if os.geteuid() != 0:  # root writes read-only files anyway
        ro = tmp_path / "ro.jsonl"
        ro.write_text("")
        ro.chmod(0o444)
        cases.append((ro, "not writable"))
    for out, why in cases:
        res = cli("analyze", str(src), "--out", str(out))
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and str(out) in res.stderr and why in res.stderr
    made = tmp_path / "new" / "sub" / "o.jsonl"  # a missing folder is created
    assert cli("analyze", str(src), "--out", str(made), "--no-show").returncode == 0 and made.is_file()
    res = cli("analyze", str(tmp_path), "--out", str(tmp_path / "o.jsonl"))
    assert res.returncode == 2 and "is a directory" in res.stderr and "Traceback" not in res.stderr


@needs_model
@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_analyze_says_where_to_resume(tmp_path, sig, code):
    src, out = posts_file(tmp_path, 20_000), tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "somelvlm.cli", "analyze", str(src), "--out", str(out), "--batch-size", "16",
           "--tasks", "emotion"]
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    deadline = time.time() + 180
    while time.time() < deadline and not (out.exists() and out.stat().st_size > 0) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    written = len(out.read_text(encoding="utf-8").splitlines())
    assert 0 < written < 20_000
    assert f"interrupted: {written} posts written to {out}; rerun the same command to resume" in err
    assert "Traceback" not in err


def test_analyze_refuses_to_mix_two_runs_in_one_output(tmp_path):
    """The real shipped model: a rerun with other tasks on the same --out is refused in one line and
    writes nothing; the same command resumes."""
    src, out = posts_file(tmp_path, 3), tmp_path / "out.jsonl"
    first = cli("analyze", str(src), "--out", str(out), "--tasks", "emotion")
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    run = json.loads((tmp_path / "out.jsonl.run.json").read_text(encoding="utf-8"))
    assert run["tasks"] == ["emotion"] and run["classifier"]["name"] == "some-mini" and run["classifier"]["files"]
    res = cli("analyze", str(src), "--out", str(out), "--tasks", "emotion,irony")
    assert res.returncode != 0 and "differs in: tasks" in res.stderr and "Traceback" not in res.stderr
    assert out.read_bytes() == before
    again = cli("analyze", str(src), "--out", str(out), "--tasks", "emotion")
    assert again.returncode == 0 and "0 posts written, 3 already there" in again.stderr
