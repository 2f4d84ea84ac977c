"""The click command `kling-compose import` (the work is commands/screenplay.py), registered by
one line at the end of cli.py. A UserError is printed as cli.py's `_user_errors` prints it
(this room may not import the CLI's): its diagnostics on stderr, exit code 1."""

from __future__ import annotations

import functools
import sys

import click

from ..errors import UserError

EPILOG = """\b
Examples:
  kling-compose import harbour.fountain          # storyboard.yaml beside it
  kling-compose import harbour.fountain -o films/harbour/
  kling-compose import harbour.fountain -o - | less
  kling-compose import harbour.fountain --force && kling-compose run

\b
Fountain is the plain-text screenplay format: https://fountain.io/syntax
The mapping is in docs/format.md, "Importing a screenplay"."""


def _user_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            for diagnostic in exc.diagnostics:
                click.echo(str(diagnostic), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.command("import", epilog=EPILOG)
@click.argument("screenplay", metavar="SCREENPLAY.fountain")
@click.option("-o", "--output", metavar="FILE",
              help="Where to write the storyboard [default: storyboard.yaml beside the "
                   "screenplay]; a folder means its storyboard.yaml; `-` prints it.")
@click.option("--force", is_flag=True,
              help="Replace the file if it exists (never the screenplay itself).")
@_user_errors
def command(screenplay: str, output: str | None, force: bool) -> None:
    """Make a storyboard from a Fountain screenplay: a scene per scene heading, a shot per
    action paragraph, an element per character, the dialogue on its shots. It validates and
    renders on the free preview at once."""
    from .screenplay import import_screenplay

    written = import_screenplay(screenplay, output, force)
    for warning in written.warnings:
        click.echo(str(warning), err=True)
    imported = written.imported
    summary = (f"{len(imported.scenes)} scene(s), {len(imported.shots)} shot(s), "
               f"{len(imported.characters)} element(s), {imported.lines} line(s) of dialogue")
    if written.target is None:
        click.echo(written.text, nl=False)
        click.echo(f"storyboard from {screenplay}: {summary}", err=True)
        return
    click.echo(f"wrote {written.target}: {summary}, from {screenplay}")
    click.echo(f"next: kling-compose run {written.target}   # a free preview")
