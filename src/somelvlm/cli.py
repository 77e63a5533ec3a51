"""The ``somelvlm`` command: a thin mapping from sub-commands to typed functions.

Each command calls one function of the Python API with the same arguments, so the CLI, the API
and config files share one signature. Errors a user can fix print one line and exit with 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from somelvlm.registry import UnknownNameError

app = typer.Typer(help="Social-media posts through language and vision-language models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
tasks_app = typer.Typer(help="The cognitive framework's tasks, grouped by level.", invoke_without_command=True)
data_app = typer.Typer(help="Real data: adapters and the SoMeData instruction builder.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(data_app, name="data")

console = Console()
err_console = Console(stderr=True)


def _default_data_root() -> Path:
    return Path(os.environ.get("SOMELVLM_DATA", "../shared/data"))


@tasks_app.callback()
def tasks(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    level: Annotated[list[str] | None, typer.Option(help="Only these level ids (repeatable).")] = None,
) -> None:
    """List every task grouped by cognitive level."""
    if ctx.invoked_subcommand is not None:
        return
    from somelvlm.taxonomy.registry import select_tasks
    from somelvlm.taxonomy.views import tasks_json, tasks_table

    chosen = select_tasks(levels=level or [])
    if as_json:
        print(json.dumps(tasks_json(chosen), indent=1, ensure_ascii=False))
    else:
        console.print(tasks_table(chosen))


@tasks_app.command("show")
def tasks_show(
    name: Annotated[str, typer.Argument(help="Task name, e.g. emotion.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show one task: level, labels, metrics, sources and its prompt templates."""
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.taxonomy.views import task_json, task_panel

    task = get_task(name)
    if as_json:
        print(json.dumps(task_json(task), indent=1, ensure_ascii=False))
    else:
        console.print(task_panel(task))


@data_app.command("build")
def data_build(
    out: Annotated[Path, typer.Option(help="Output folder (replaced atomically).")],
    data_root: Annotated[Path, typer.Option(help="Folder with the upstream sources [env SOMELVLM_DATA].",
                                            default_factory=_default_data_root, show_default="../shared/data")],
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Task names (repeatable or comma-separated).")] = None,
    levels: Annotated[list[str] | None, typer.Option("--levels", help="Level ids (repeatable or comma-separated).")] = None,
    max_per_task: Annotated[int | None, typer.Option(help="At most N records per task and split.")] = None,
) -> None:
    """Build SoMeData: instruction records (JSONL + Parquet), stats.md and a build report."""
    import time

    from somelvlm.data.somedata import BuildConfig, build

    config = BuildConfig(data_root=data_root, out=out, tasks=_split_commas(tasks),
                         levels=_split_commas(levels), max_per_task=max_per_task)
    start = time.perf_counter()
    with console.status("reading sources...") as status:
        result = build(config, progress=lambda msg: (console.log(msg), status.update(msg)))
    total = sum(result.counts.values())
    problems = len(result.report.problems)
    console.print(f"[bold]{total}[/] records in {len(result.counts)} task/split groups -> {result.out} "
                  f"({time.perf_counter() - start:.1f} s)")
    console.print(f"{problems} bad inputs skipped or kept without image: see {result.out / 'report.md'}")
    console.print((result.out / "stats.md").read_text(encoding="utf-8"))


def _split_commas(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; ``argv`` lets tests run it in-process."""
    try:
        app(args=argv, prog_name="somelvlm", standalone_mode=False)
    except UnknownNameError as err:
        err_console.print(f"[red]error:[/] {err}")
        sys.exit(2)
    except (FileNotFoundError, ValueError) as err:
        err_console.print(f"[red]error:[/] {err}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
