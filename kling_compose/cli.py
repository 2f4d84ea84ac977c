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
    from .pipeline import load_resolved
    from .render import read_variables

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
    print_diagnostics([w for job in jobs for w in job.warnings])
    click.echo(validation_summary(resolved, jobs))


@main.command()
@storyboard_options
@_user_errors
def render(path, var_items, vars_files) -> None:
    """Print the storyboard after Jinja rendering."""
    from .pipeline import render_text
    from .render import read_variables

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
