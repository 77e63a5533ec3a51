"""Command-line options from config dataclasses: one flag per field, ``--config FILE.yaml``, overrides.

A command is a typed function over one config dataclass (``somelvlm.cli.commands``). Its flags are
made here from the dataclass's fields: the flag is the field's name in kebab case, the help is the
field's docstring (the string literal under it, as litgpt's ``args.py`` writes them) or its
``metadata["help"]``, and the type checks and converts the value. A field whose type is itself a
dataclass (``AnalyzeConfig.run: RunConfig``) gives dotted flags (``--run.batch-size``) and, where the
plain name is not taken, the short one too (``--batch-size``).

Values come from, strongest first: the flags, the environment (``ENV_FALLBACKS``: the data root), the
``--config`` YAML (the same keys; nested dataclasses as mappings), the dataclass defaults (for the
data root: ``../shared/data``). This is the one resolution of the data root for every command. A wrong
value anywhere (``epochs: three``, an unknown key, a missing required field) is a ``ConfigError``
naming the key and the type it expects; the CLI prints it on one line and exits with 2.

Field ``metadata`` keys: ``flags`` (option strings replacing the default, e.g. ``["--json"]``),
``negative`` (the flag that sets a bool False, e.g. ``"--fp32"``), ``positional`` (an argument, not an
option), ``commas`` (False: list values are not split on commas, e.g. post texts), ``help``,
``metavar``, ``cli`` (False: not a flag, config file only).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import itertools
import os
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, Literal

ENV_FALLBACKS = {"data_root": "SOMELVLM_DATA"}
"""Fields that fall back to an environment variable when no flag sets them (above the config file)."""
DEFAULT_DATA_ROOT = "../shared/data"
PREFIX = "cfg:"
"""argparse ``dest`` prefix of config values (other dests: the CLI's own, like ``verbose``)."""


class ConfigError(ValueError):
    """A config value or key the user must fix; the message names the key and what it expects."""


@dataclasses.dataclass
class Option:
    """One config value reachable from the command line: a field, maybe of a nested dataclass."""

    path: tuple[str, ...]
    """Field names from the command's config down to this field, e.g. ``("run", "batch_size")``."""
    type: Any
    """The field's resolved annotation."""
    default: Any
    help: str
    meta: dict

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def dest(self) -> str:
        return PREFIX + self.key


# -- reading the dataclass -------------------------------------------------------------------------
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of ``cls`` and its dataclass bases (``{name: text}``)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, after in itertools.pairwise(body):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[stmt.target.id] = " ".join(after.value.value.split())
    return docs


def options(cls: type, prefix: tuple[str, ...] = ()) -> list[Option]:
    """Every value of ``cls`` the command line can set, nested dataclasses flattened (dotted)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    found = []
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli", True) is False:
            continue
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            found += options(kind, prefix + (f.name,))
            continue
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        found.append(Option(prefix + (f.name,), kind, default, f.metadata.get("help") or docs.get(f.name, ""),
                            dict(f.metadata)))
    return found


# -- types -----------------------------------------------------------------------------------------
def _optional(kind: Any) -> tuple[Any, bool]:
    """``(inner, True)`` for ``X | None``, else ``(kind, False)``."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(kind)) == 2:
            return args[0], True
    return kind, False


def describe(kind: Any) -> str:
    """The expected type in words, for error messages."""
    inner, optional = _optional(kind)
    origin = typing.get_origin(inner)
    if origin is Literal:
        text = "one of " + ", ".join(map(str, typing.get_args(inner)))
    elif origin is list:
        text = f"a list of {describe(typing.get_args(inner)[0])}s"
    elif origin is dict:
        k, v = typing.get_args(inner)
        text = f"a mapping of {describe(k)} to {describe(v)}"
    else:
        text = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                Path: "a path"}.get(inner, getattr(inner, "__name__", str(inner)))
    return text + (" (or null)" if optional else "")


def coerce(value: Any, kind: Any, key: str) -> Any:
    """``value`` as ``kind``; a ``ConfigError`` naming ``key`` and the expected type when it is not one."""
    inner, optional = _optional(kind)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"`{key}`: expected {describe(kind)}, got null")
    origin = typing.get_origin(inner)
    wrong = ConfigError(f"`{key}`: expected {describe(kind)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(inner)
        if value not in choices:
            raise wrong
        return value
    if origin is list:
        item = typing.get_args(inner)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise wrong
        return [coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        k_type, v_type = typing.get_args(inner)
        if not isinstance(value, dict):
            raise wrong
        return {coerce(k, k_type, key): coerce(v, v_type, f"{key}.{k}") for k, v in value.items()}
    if inner is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise wrong
    if inner in (int, float):
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, (int, float)):
            if inner is int and not float(value).is_integer():
                raise wrong
            return inner(value)
        try:
            number = float(value) if inner is float else int(str(value).strip())
        except (TypeError, ValueError):
            raise wrong from None
        return number
    if inner in (str, Path):
        if isinstance(value, (str, Path)) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return inner(value) if inner is Path else str(value)
        raise wrong
    return value  # an annotation we do not check (Any, a custom type): passed through


def _parse_flag(kind: Any, key: str):
    """argparse ``type=``: a flag's text as ``kind``; a bad value is a usage error naming the flag."""
    inner, optional = _optional(kind)

    def parse(text: str) -> Any:
        if optional and inner is not str and text.lower() in ("none", "null"):
            return None
        try:
            return coerce(text, inner, key)
        except ConfigError:
            raise argparse.ArgumentTypeError(f"expected {describe(inner)}, got {text!r}") from None

    parse.__name__ = describe(inner)
    return parse


# -- the parser ------------------------------------------------------------------------------------
def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type) -> list[Option]:
    """Add one flag (or argument) per option of ``cls`` to ``parser``; returns the options."""
    opts = options(cls)
    leaves = [o.path[-1] for o in opts]
    for opt in opts:
        meta = opt.meta
        help_text = opt.help or " "
        env = ENV_FALLBACKS.get(opt.path[-1])
        if env:
            help_text += f" [env {env}, else the config file, else {DEFAULT_DATA_ROOT}]"
        elif opt.default is not dataclasses.MISSING and opt.default not in (None, [], {}, "") \
                and not isinstance(opt.default, bool):
            help_text += f" [{opt.default}]"
        help_text = help_text.replace("%", "%%")
        if meta.get("positional"):
            parser.add_argument(opt.dest, metavar=meta.get("metavar", opt.path[-1].upper()),
                                type=_parse_flag(opt.type, opt.key), help=help_text)
            continue
        flags = list(meta.get("flags") or [flag_name(opt.key)])
        if "flags" not in meta and len(opt.path) > 1 and leaves.count(opt.path[-1]) == 1:
            flags.append(flag_name(opt.path[-1]))  # the short form of a nested field: --batch-size
        inner, _ = _optional(opt.type)
        origin = typing.get_origin(inner)
        common = {"dest": opt.dest, "default": argparse.SUPPRESS, "help": help_text}
        if inner is bool:
            if meta.get("negative"):
                parser.add_argument(*flags, action="store_true", **common)
                parser.add_argument(meta["negative"], action="store_false", dest=opt.dest,
                                    default=argparse.SUPPRESS, help=f"the opposite of {flags[0]}")
            elif "flags" in meta:
                parser.add_argument(*flags, action="store_true", **common)
            else:
                parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif origin is list:
            item = typing.get_args(inner)[0]
            parser.add_argument(*flags, action="append", type=_parse_flag(item, opt.key),
                                metavar=meta.get("metavar", opt.path[-1].upper()),
                                **(common | {"help": help_text + (" (repeatable or comma-separated)"
                                                                  if meta.get("commas", True) else " (repeatable)")}))
        elif origin is dict:
            parser.add_argument(*flags, action="append", metavar="KEY=VALUE",
                                **(common | {"help": help_text + " (repeatable)"}))
        else:
            choices = list(typing.get_args(inner)) if origin is Literal else None
            parser.add_argument(*flags, type=_parse_flag(opt.type, opt.key), choices=choices,
                                metavar=meta.get("metavar") or (None if choices else opt.path[-1].upper()),
                                **common)
    return opts


def read_config_file(path: str | Path) -> dict:
    """The mapping in a ``--config`` YAML file; a missing or malformed file is a ``ConfigError``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: not valid YAML ({' '.join(str(err).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of option names to values, got {type(data).__name__}")
    return data


def build(cls: type, flags: dict[str, Any], file_values: dict | None = None, source: str = "config") -> Any:
    """An instance of ``cls`` from parsed ``flags`` (``{dotted key: value}``), the config file's
    ``file_values`` and the environment; see the module docstring for the order."""
    return _build(cls, (), flags, _nest(file_values or {}), source)


def _nest(values: dict) -> dict:
    """Dotted keys of a config file as nested mappings: ``{"run.batch_size": 8}`` -> ``{"run": {"batch_size": 8}}``."""
    nested: dict = {}
    for key, value in values.items():
        *parents, leaf = str(key).split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config: `{key}` sets a field inside `{part}`, which is not a mapping")
        if isinstance(node.get(leaf), dict) and isinstance(value, dict):
            node[leaf] = {**node[leaf], **value}
        else:
            node[leaf] = value
    return nested


def _build(cls: type, prefix: tuple[str, ...], flags: dict[str, Any], file_values: dict, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    where = ".".join(prefix)
    for name in file_values:
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else f"; known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"{source}: unknown key `{'.'.join(prefix + (str(name),))}`{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        key = ".".join(prefix + (name,))
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            nested = file_values.get(name) or {}
            if not isinstance(nested, dict):
                raise ConfigError(f"{source}: `{key}`: expected a mapping of {kind.__name__} fields, got {nested!r}")
            kwargs[name] = _build(kind, prefix + (name,), flags, nested, source)
            continue
        if key in flags:
            kwargs[name] = _from_flag(flags[key], kind, key, file_values.get(name), f.metadata)
        elif name in ENV_FALLBACKS and os.environ.get(ENV_FALLBACKS[name]):
            kwargs[name] = coerce(os.environ[ENV_FALLBACKS[name]], kind, f"${ENV_FALLBACKS[name]}")
        elif name in file_values:
            try:
                kwargs[name] = coerce(file_values[name], kind, key)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from None
        elif name in ENV_FALLBACKS and (f.default is dataclasses.MISSING or f.default is None):  # data_root
            kwargs[name] = coerce(DEFAULT_DATA_ROOT, kind, key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            how = ("the argument" if f.metadata.get("positional") else
                   f"{(f.metadata.get('flags') or [flag_name(key)])[0]} or `{key}:` in --config")
            raise ConfigError(f"missing `{key}`{' in ' + where if where else ''}: give {how}")
    return cls(**kwargs)


def _from_flag(value: Any, kind: Any, key: str, file_value: Any, meta: dict) -> Any:
    """A parsed flag value as the field's final value: lists split on commas, KEY=VALUE pairs
    merged over the config file's mapping."""
    inner, _ = _optional(kind)
    origin = typing.get_origin(inner)
    if origin is list and isinstance(value, list):
        if meta.get("commas", True):
            value = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        return coerce(value, kind, flag_name(key))
    if origin is dict and isinstance(value, list):
        merged = dict(file_value or {})
        for pair in value:
            name, sep, text = str(pair).partition("=")
            if not sep or not name:
                raise ConfigError(f"{flag_name(key)}: expected KEY=VALUE, got {pair!r}")
            merged[name.strip()] = text.strip()
        return coerce(merged, kind, flag_name(key))
    return value


def resolve_data_root(value: str | Path | None = None) -> Path:
    """The data root every command uses: ``value`` (a flag or config), else $SOMELVLM_DATA, else
    ``../shared/data``."""
    return Path(value or os.environ.get(ENV_FALLBACKS["data_root"]) or DEFAULT_DATA_ROOT)
