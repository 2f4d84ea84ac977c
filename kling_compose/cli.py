"""The command line: each command parses options, calls one function, prints the result.

Heavy imports (httpx, networkx, rich, the engine) happen inside the commands that need them,
so `validate`, `render` and `schema` start fast. UserError is turned into diagnostics and exit
code 1 in one place (`_user_errors`); click keeps usage errors at exit code 2.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from .errors import UserError


def _user_errors(command):
    """Print a UserError's diagnostics to stderr and exit 1 instead of showing a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            from .console import print_diagnostics

            print_diagnostics(exc.diagnostics)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def storyboard_options(command):
    """PATH plus the template variable options, shared by every command that reads a storyboard."""
    command = click.option("--vars", "vars_files", multiple=True, metavar="FILE.yaml",
                           help="Template variables from a YAML mapping (repeatable).")(command)
    command = click.option("--var", "var_items", multiple=True, metavar="NAME=VALUE",
                           help="A template variable, as a string (repeatable).")(command)
    return click.argument("path", required=False, metavar="[PATH]")(command)


def storyboard_path(path: str | None) -> tuple[Path, str]:
    """The storyboard file for PATH (default ./storyboard.yaml; a folder means its storyboard.yaml)
    and the name to show in messages."""
    if path is None:
        return Path("storyboard.yaml"), "storyboard.yaml"
    if Path(path).is_dir():
        display = os.path.join(path, "storyboard.yaml")
        return Path(display), display
    return Path(path), path


def _load(path, var_items, vars_files):
    from .pipeline import load_resolved, read_variables

    file, display = storyboard_path(path)
    return load_resolved(file, read_variables(var_items, vars_files), display)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kling-compose")
def main() -> None:
    """kling-compose: compile a YAML storyboard into AI video, one command to a finished cut."""


@main.command()
@storyboard_options
@_user_errors
def validate(path, var_items, vars_files) -> None:
    """Check the storyboard and every API limit; print all errors at once."""
    from .console import print_diagnostics, validation_summary
    from .pipeline import compile_storyboard

    resolved = _load(path, var_items, vars_files)
    jobs = compile_storyboard(resolved)
    # a warning from a shared default is the same for every shot: print it once
    print_diagnostics(dict.fromkeys(w for job in jobs for w in job.warnings))
    click.echo(validation_summary(resolved, jobs))


@main.command()
@storyboard_options
@_user_errors
def render(path, var_items, vars_files) -> None:
    """Print the storyboard after Jinja rendering."""
    from .pipeline import read_variables, render_text

    file, display = storyboard_path(path)
    click.echo(render_text(file, read_variables(var_items, vars_files), display), nl=False)


@main.command()
def schema() -> None:
    """Print the storyboard JSON Schema."""
    from .validate import schema_text

    click.echo(schema_text(), nl=False)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@_user_errors
def init(directory) -> None:
    """Create a new project in DIRECTORY that validates at once."""
    from .scaffold import create_project

    created = create_project(Path(directory))
    click.echo(f"created {directory}/ with {', '.join(created)}")
    click.echo(f"next: cd {directory} && kling-compose run")


def _plan(path, var_items, vars_files, provider):
    """The plan, after printing the compiler's warnings (once each) to stderr."""
    from .console import print_diagnostics
    from .pipeline import build_storyboard_plan

    plan = build_storyboard_plan(_load(path, var_items, vars_files), provider)
    jobs = (t.job for t in plan.tasks.values() if t.job is not None)
    print_diagnostics(dict.fromkeys(w for job in jobs for w in job.warnings))
    return plan


provider_option = click.option(
    "--provider", metavar="P", help="Use provider P for every shot (e.g. preview for a free "
    "rehearsal).")


@main.command()
@storyboard_options
@provider_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--requests", is_flag=True, help="Print the exact request bodies as JSON.")
@_user_errors
def plan(path, var_items, vars_files, provider, as_json, requests) -> None:
    """Show the tasks, their order, cache status and cost before anything is spent."""
    import json

    from . import console
    from .pipeline import plan_statuses

    the_plan = _plan(path, var_items, vars_files, provider)
    statuses = plan_statuses(the_plan)
    if requests:
        click.echo(json.dumps(console.plan_requests(the_plan), indent=2, ensure_ascii=False))
    elif as_json:
        click.echo(console.json_lines(console.plan_json(the_plan, statuses), "tasks"))
    else:
        console.print_plan(the_plan, statuses)


@main.command()
@storyboard_options
@provider_option
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True)
@_user_errors
def graph(path, var_items, vars_files, provider, fmt) -> None:
    """Print the task DAG as Mermaid or Graphviz dot."""
    from .console import graph_text

    click.echo(graph_text(_plan(path, var_items, vars_files, provider), fmt), nl=False)


@main.command()
@storyboard_options
@provider_option
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD",
              help="Refuse to start when the estimated cost of this run passes USD.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Tasks running at once (local rendering is also capped at the CPU count).")
@click.option("--force", multiple=True, metavar="SHOT", help="Generate SHOT again (repeatable).")
@click.option("--only", multiple=True, metavar="SHOT",
              help="Run only SHOT and what it needs (repeatable).")
@click.option("--preview-resolution", type=click.IntRange(min=72, max=2160), default=360,
              show_default=True, metavar="PIXELS",
              help="Short side of the clips the preview provider renders.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end.")
@_user_errors
def run(path, var_items, vars_files, provider, max_cost, concurrency, force, only,
        preview_resolution, as_json) -> None:
    """Execute the plan: generate, chain, assemble; pay only for what changed."""
    from decimal import Decimal

    from . import console
    from .engine.run import RunOptions, run_plan
    from .settings import Settings

    the_plan = _plan(path, var_items, vars_files, provider)
    options = RunOptions(
        concurrency=concurrency, force=frozenset(force), only=frozenset(only),
        preview_short_side=preview_resolution,
        max_cost_usd=None if max_cost is None else Decimal(str(max_cost)))
    with console.RunProgress(the_plan, quiet=as_json) as progress:
        result = run_plan(the_plan, options, progress, Settings.from_environment())
    if as_json:
        click.echo(console.run_json(result))
    else:
        console.print_run_summary(result, the_plan)
    if not result.ok:
        sys.exit(1)


@main.command()
@storyboard_options
@provider_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@_user_errors
def status(path, var_items, vars_files, provider, as_json) -> None:
    """What is done, failed and pending, and what it cost."""
    from . import console
    from .engine.status import project_status

    report = project_status(_plan(path, var_items, vars_files, provider))
    if as_json:
        click.echo(console.status_json(report))
    else:
        console.print_status(report)


@main.command(hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def simulate(args) -> None:
    """Run the local provider simulator (for rehearsals and tests): see docs/simulator.md."""
    from .simulator.__main__ import main as simulator_main

    simulator_main(list(args))
