"""Flags from config dataclasses, ``--config`` files, the data root's one resolution and the
one-line errors for config typos, run in-process through ``main(argv)``."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from somelvlm.cli import main
from somelvlm.cli.args import ConfigError, build, coerce, options, resolve_data_root


def one_line_exit(capsys, argv, code=2) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


def test_nested_dataclass_fields_get_dotted_and_short_flags():
    from somelvlm.cli.posts import AnalyzeConfig

    keys = {o.key for o in options(AnalyzeConfig)}
    assert {"run.batch_size", "run.limits.max_text_chars", "runtime", "ocr"} <= keys
    cfg = build(AnalyzeConfig, {"input": "x.jsonl", "run.batch_size": 8})
    assert cfg.run.batch_size == 8 and cfg.run.limits.max_text_chars == 20_000
    file = {"run": {"batch_size": 4}, "run.limits.max_text_chars": 99, "tasks": "emotion,irony"}
    cfg = build(AnalyzeConfig, {"input": "x.jsonl", "run.retry_errors": True}, file)
    assert (cfg.run.batch_size, cfg.run.limits.max_text_chars, cfg.run.retry_errors, cfg.tasks) == (
        4, 99, True, ["emotion", "irony"])
    with pytest.raises(ConfigError, match=r"unknown key `run.batch_sise` \(did you mean `batch_size`\?\)"):
        build(AnalyzeConfig, {"input": "x.jsonl"}, {"run": {"batch_sise": 4}})


def test_every_serve_config_field_is_a_serve_flag_and_runtime_matches_the_model():
    from somelvlm.cli import build_parser
    from somelvlm.models.compact import RUNTIMES
    from somelvlm.serve.config import ServeConfig

    parser, _ = build_parser(["serve"])
    serve = parser._subparsers._group_actions[0].choices["serve"]
    flags = {s for action in serve._actions for s in action.option_strings}
    for f in dataclasses.fields(ServeConfig):
        assert "--" + f.name.replace("_", "-") in flags or f.name == "cors_origins", f.name
    assert "--cors-origin" in flags
    runtime = next(o for o in options(ServeConfig) if o.key == "runtime")
    assert set(runtime.type.__args__) == set(RUNTIMES)
    assert ServeConfig(runtime="torch-int8").int8 and not ServeConfig().int8


def test_config_file_flags_and_env_in_order(tmp_path, monkeypatch):
    from somelvlm.evaluate.report import EvalConfig

    monkeypatch.delenv("SOMELVLM_DATA", raising=False)
    assert build(EvalConfig, {}).data_root == resolve_data_root() == resolve_data_root(None)
    assert str(build(EvalConfig, {}).data_root) == "../shared/data"
    file = {"data_root": "from-file", "limit": 5, "tasks": ["irony"]}
    assert str(build(EvalConfig, {}, file).data_root) == "from-file"
    monkeypatch.setenv("SOMELVLM_DATA", "from-env")
    assert str(build(EvalConfig, {}, file).data_root) == "from-env"
    assert str(resolve_data_root()) == "from-env"
    cfg = build(EvalConfig, {"data_root": "from-flag", "limit": 7}, file)
    assert (str(cfg.data_root), cfg.limit, cfg.tasks) == ("from-flag", 7, ["irony"])


def test_config_typos_are_one_line_naming_key_and_type(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [irony]\nepochs: three\n")
    err = one_line_exit(capsys, ["train", "heads", "--config", str(bad)])
    assert len(err.splitlines()) == 1 and "`epochs`" in err and "an integer" in err and "three" in err
    bad.write_text("tasks: [irony]\nepoch: 3\n")
    err = one_line_exit(capsys, ["train", "heads", "--config", str(bad)])
    assert len(err.splitlines()) == 1 and "unknown key `epoch`" in err and "`epochs`" in err
    bad.write_text("- not a mapping\n")
    assert "mapping" in one_line_exit(capsys, ["eval", "--config", str(bad)])
    err = one_line_exit(capsys, ["train", "heads"])  # `tasks` has no default
    assert "missing `tasks`" in err and "--tasks" in err
    err = one_line_exit(capsys, ["eval", "--config", str(tmp_path / "nope.yaml")])
    assert "nope.yaml" in err and "no such file" in err


def test_bad_flag_values_and_removed_flags_are_usage_errors(capsys):
    for argv, needle in [(["eval", "--limit", "three"], "--limit"), (["eval", "--split", "train"], "expected one of test, val"),
                         (["analyze", "x.jsonl", "--int8"], "--runtime torch-int8"),
                         (["serve", "--int8"], "--runtime torch-int8"), (["eval", "--fp32"], "--runtime")]:
        err = one_line_exit(capsys, argv)
        assert "usage:" in err and needle in err, argv


def test_coerce_accepts_what_yaml_writes_and_names_what_it_wanted():
    assert coerce("5e-4", float, "lr") == 5e-4 and coerce(3, float, "lr") == 3.0
    assert coerce("a, b", list[str], "tasks") == ["a", "b"] and coerce(None, int | None, "n") is None
    for value, kind in [("three", int), (2.5, int), (True, int), ("maybe", bool), ({"a": 1}, str)]:
        with pytest.raises(ConfigError, match="`k`: expected"):
            coerce(value, kind, "k")


def test_quiet_and_verbose_configure_the_package_logger(capsys):
    main(["-q", "tasks", "--json"])
    assert logging.getLogger("somelvlm").level == logging.ERROR
    main(["tasks", "--verbose", "--json"])
    assert logging.getLogger("somelvlm").level == logging.INFO
    main(["tasks", "-vv", "--json"])
    assert logging.getLogger("somelvlm").level == logging.DEBUG
    main(["tasks", "--json"])
    assert logging.getLogger("somelvlm").level == logging.WARNING
    capsys.readouterr()


def test_a_required_data_root_resolves_the_same_way(tmp_path, monkeypatch):
    from somelvlm.data.somedata import BuildConfig

    monkeypatch.setenv("SOMELVLM_DATA", str(tmp_path))
    assert build(BuildConfig, {"out": "o"}).data_root == tmp_path
    monkeypatch.delenv("SOMELVLM_DATA")
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    with pytest.raises(FileNotFoundError, match=r"\.\./shared/data not found: pass --data-root"):
        build(BuildConfig, {"out": "o"})
