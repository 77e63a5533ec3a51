"""The ``somelvlm`` command: a mapping from command names to typed functions over config dataclasses.

``COMMANDS`` is the whole command line: each leaf names its function and its config dataclass as
lazy ``"module:name"`` targets (only the chosen command's modules are imported, so ``somelvlm
tasks`` never loads torch). The config's fields are the command's flags (``somelvlm.cli.args``),
``--config FILE.yaml`` holds the same keys, and the function is the one the Python API offers, so
the CLI, the API and config files share one signature.

Usage errors print the usage and exit with 2; errors a user can fix print one line and exit with
2; Ctrl-C exits with 130 and SIGTERM with 143, saying where to resume.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from somelvlm.cli.args import ConfigError, add_options, build, read_config_file

COMMANDS: dict[str, dict[str, Any]] = {
    "tasks": {"help": "The cognitive framework's tasks, grouped by level.",
              "fn": "somelvlm.cli.commands:list_tasks", "config": "somelvlm.cli.commands:TasksConfig",
              "show": {"help": "One task: labels, metrics, sources, prompts.",
                       "fn": "somelvlm.cli.commands:show_task", "config": "somelvlm.cli.commands:TaskShowConfig"},
              "export": {"help": "Our classification tasks as lm-evaluation-harness tasks.",
                         "fn": "somelvlm.cli.commands:tasks_export",
                         "config": "somelvlm.cli.commands:TasksExportConfig"}},
    "data": {"help": "Real data: adapters and the SoMeData instruction builder.",
             "build": {"help": "Build SoMeData (JSONL + Parquet, stats, report).",
                       "fn": "somelvlm.cli.commands:data_build", "config": "somelvlm.data.somedata:BuildConfig"},
             "export": {"help": "Export a SoMeData build for LLaVA (JSON arrays) or LLaMA-Factory (sharegpt).",
                        "fn": "somelvlm.cli.commands:data_export", "config": "somelvlm.cli.commands:DataExportConfig"}},
    "train": {"help": "Training recipes (flat scripts behind YAML configs).",
              "heads": {"help": "The compact model: LoRA encoder + task heads.",
                        "fn": "somelvlm.cli.train:train_heads", "config": "somelvlm.train.heads:HeadsConfig"},
              "instruct": {"help": "SoMeLVLM's two-step instruction tuning (LoRA/QLoRA, connector).",
                           "fn": "somelvlm.cli.train:train_instruct",
                           "config": "somelvlm.train.instruct:InstructConfig"},
              "multimodal": {"help": "Image+text classifier with ITC / ITM auxiliary losses.",
                             "fn": "somelvlm.cli.train:train_multimodal",
                             "config": "somelvlm.train.multimodal:MultimodalConfig"},
              "rgcl": {"help": "Retrieval-guided contrastive learning (+ RKC).",
                       "fn": "somelvlm.cli.train:train_rgcl", "config": "somelvlm.train.rgcl:RGCLConfig"},
              "lmm-rgcl": {"help": "LMM-RGCL: fine-tune the multimodal model itself (stage 1), then its head with RGCL (2).",
                           "fn": "somelvlm.cli.train:train_lmm_rgcl",
                           "config": "somelvlm.train.lmm_rgcl:LMMRGCLConfig"}},
    "index": {"help": "Retrieval memories (FAISS + Parquet + encoder stamp) for RKC.",
              "build": {"help": "Build a retrieval memory from a dataset or a labelled file.",
                        "fn": "somelvlm.cli.commands:index_build", "config": "somelvlm.cli.commands:IndexBuildConfig"},
              "add": {"help": "Add labelled posts to a memory (no retraining).",
                      "fn": "somelvlm.cli.commands:index_add", "config": "somelvlm.cli.commands:IndexAddConfig"}},
    "analyze": {"help": "Label a file of posts for every chosen task (resumable).",
                "fn": "somelvlm.cli.posts:analyze", "config": "somelvlm.cli.posts:AnalyzeConfig"},
    "generate": {"help": "Run one task by generation (rewrites, explanations, hashtags, labels).",
                 "fn": "somelvlm.cli.posts:generate", "config": "somelvlm.cli.posts:GenerateConfig"},
    "eval": {"help": "Score models (any kind) on real test splits, per cognitive level, side by side.",
             "fn": "somelvlm.cli.commands:evaluate", "config": "somelvlm.evaluate.report:EvalConfig"},
    "serve": {"help": "REST API, OpenAI-compatible endpoints and the web page.",
              "fn": "somelvlm.cli.commands:serve", "config": "somelvlm.serve.config:ServeConfig"},
    "convert-lavis": {"help": "Convert SoMeLVLM's LAVIS weights to a transformers folder.",
                      "fn": "somelvlm.cli.commands:convert_lavis",
                      "config": "somelvlm.cli.commands:ConvertLavisConfig"},
}
REMOVED_FLAGS = {
    "--int8": "--int8 was removed: use --runtime torch-int8",
    "--fp32": "--fp32 was removed: fp32 is the default (--runtime auto, onnx or torch)",
}
"""Old flags of the commands that take ``--runtime``, answered with what to use instead."""


def load(target: str) -> Any:
    """The object a ``"module:name"`` target names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; ``argv`` lets tests run it in-process. Returns on
    success; exits (``SystemExit``) with 2 on usage and user errors, 130 / 143 on SIGINT / SIGTERM."""
    from somelvlm.cli import common

    argv = list(sys.argv[1:] if argv is None else argv)
    parser, leaf = build_parser(argv)
    try:
        ns = parser.parse_args(argv)
    except ConfigError as err:  # a broken config class default: still one line
        _fail(str(err), 2)
    if leaf is None or "fn" not in leaf:
        parser.print_help(sys.stderr)
        sys.exit(2)
    common.setup_logging(getattr(ns, "verbose", 0) or 0, bool(getattr(ns, "quiet", False)))
    try:
        with common.signals():
            config = build(load(leaf["config"]), _flag_values(ns), _config_file(ns), _config_source(ns))
            load(leaf["fn"])(config)
    except common.Stopped as stop:
        print(stop.message, file=sys.stderr)
        sys.exit(stop.code)
    except KeyboardInterrupt:
        _fail("interrupted", 130, prefix="")
    except BrokenPipeError:  # stdout closed early (| head): not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except common.Terminated:
        _fail("terminated", 143, prefix="")
    except (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        _fail(_one_line(err), 2)
    except Exception as err:
        from somelvlm.registry import UnknownNameError

        if isinstance(err, UnknownNameError):
            _fail(_one_line(err), 2)
        raise


def _fail(message: str, code: int, prefix: str = "error: ") -> None:
    print(prefix + message, file=sys.stderr)
    sys.exit(code)


def _one_line(err: BaseException) -> str:
    text = str(err)
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {err.strerror or text}"
    return " ".join(text.split())


def _flag_values(ns: argparse.Namespace) -> dict[str, Any]:
    from somelvlm.cli.args import PREFIX

    return {k[len(PREFIX):]: v for k, v in vars(ns).items() if k.startswith(PREFIX)}


def _config_file(ns: argparse.Namespace) -> dict:
    path = getattr(ns, "config_file", None)
    return read_config_file(path) if path else {}


def _config_source(ns: argparse.Namespace) -> str:
    path = getattr(ns, "config_file", None)
    return f"--config {path}" if path else "config"


# -- the parser ------------------------------------------------------------------------------------
def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, dict | None]:
    """The parser for ``argv`` and the ``COMMANDS`` entry it chose. Every command is listed, but
    only the chosen one gets its flags (and imports its config class)."""
    from importlib.metadata import PackageNotFoundError, version

    from somelvlm.cli.common import ENVIRONMENT

    try:
        release = version("somelvlm")
    except PackageNotFoundError:
        from somelvlm import __version__ as release
    chosen = _chosen_path(argv)
    env = "\n".join(f"  {name:<20} {what}" for name, what in ENVIRONMENT.items())
    root = argparse.ArgumentParser(
        prog="somelvlm", description="Social-media posts through language and vision-language models.",
        epilog=f"environment variables:\n{env}", formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    root.add_argument("--version", action="version", version=f"somelvlm {release}")
    _add_common(root, top=True)
    leaf = _add_commands(root, COMMANDS, chosen, ())
    return root, leaf


def _chosen_path(argv: list[str]) -> list[str]:
    """The command names at the start of ``argv`` (options skipped), e.g. ``["train", "heads"]``."""
    path, node = [], COMMANDS
    for token in argv:
        if token.startswith("-"):
            continue
        if token not in node or not isinstance(node[token], dict):
            break
        path.append(token)
        node = node[token]
    return path


def _add_commands(parser: argparse.ArgumentParser, tree: dict, chosen: list[str], at: tuple[str, ...]) -> dict | None:
    children = {k: v for k, v in tree.items() if isinstance(v, dict)}
    if not children:
        return None
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", dest="_command_" + "_".join(at),
                                required="fn" not in tree)
    found = None
    for name, node in children.items():
        is_chosen = chosen[:len(at) + 1] == list(at) + [name]
        description = node["help"]
        if is_chosen and "fn" in node:
            description = (load(node["fn"]).__doc__ or description).strip()
        child = sub.add_parser(name, help=node["help"], description=description, allow_abbrev=False,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_common(child)
        if not is_chosen:
            continue
        found = node
        if "fn" in node:
            child.add_argument("-c", "--config", dest="config_file", metavar="FILE.yaml", default=argparse.SUPPRESS,
                               help="A YAML file of options (the same names as the flags, with _); flags win.")
            cls = load(node["config"])
            fields = add_options(child, cls)
            if any(o.path[-1] == "runtime" for o in fields):
                for flag, message in REMOVED_FLAGS.items():
                    child.add_argument(flag, nargs=0, action=_Removed, help=argparse.SUPPRESS, default=argparse.SUPPRESS,
                                       dest="_removed", message=message)
        deeper = _add_commands(child, node, chosen, at + (name,))
        if deeper is not None:
            found = deeper
    return found


def _add_common(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``--verbose`` / ``--quiet``, accepted before or after the command name."""
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="More log messages on stderr (-vv: debug).")
    parser.add_argument("-q", "--quiet", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="Only errors on stderr: no progress bars, no summaries.")


class _Removed(argparse.Action):
    """A flag that no longer exists: a usage error saying what replaced it."""

    def __init__(self, *args, message: str = "", **kwargs) -> None:
        self.message = message
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(self.message)
