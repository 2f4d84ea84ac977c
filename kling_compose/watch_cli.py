"""`kling-compose watch`: the click command (cli.py registers it; the loop is commands/watch.py).

It takes the storyboard options every command takes, but reads the project file on each
round, not once at the start: a save of kling-compose.yaml is a save the watch follows, and a
project file with an error is said and waited for, not a refusal to start.
"""

from __future__ import annotations

import sys

import click

from .cli import (
    _epilog,
    _remember_profile,
    _user_errors,
    current_profile,
    preview_option,
    storyboard_path,
)


@click.command(epilog=_epilog([
    "kling-compose watch                     # check on every save, rehearse what changed",
    "kling-compose watch films/harbour --serve --port 8800",
    "kling-compose watch --profile draft --preview-resolution 240",
]))
@click.argument("path", required=False, metavar="[PATH]")
@click.option("--var", "var_items", multiple=True, metavar="NAME=VALUE",
              help="A template variable, as a string (repeatable).")
@click.option("--vars", "vars_files", multiple=True, metavar="FILE.yaml",
              help="Template variables from a YAML mapping (repeatable); watched too.")
@click.option("--profile", metavar="NAME", expose_value=False, is_eager=True,
              callback=_remember_profile,
              help="Apply the storyboard's profile NAME (`profiles:`) over its defaults.")
@preview_option
@click.option("--serve", is_flag=True, help="Also serve the report on 127.0.0.1 (as `report "
              "--serve`): the open page reloads after each render.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=None, metavar="P",
              help="With --serve: the port [default: 8765; 0: any free one].")
@_user_errors
def watch(path, var_items, vars_files, preview_resolution, serve, port) -> None:
    """Check the storyboard on every save (its templates, vars files and the project file
    too), print what changed in its errors and warnings, and while it is valid rehearse on
    the free preview provider only the shots that changed and what chains from them, then
    the films and the report. Never calls a paid provider, whatever the storyboard names.
    Ctrl-C stops it."""
    from .commands.watch import FREE_PROVIDER, Request, Watch

    if port is not None and not serve:
        raise click.UsageError("--port goes with --serve")
    file, display = storyboard_path(path)
    request = Request(file, display, tuple(var_items), tuple(vars_files), current_profile(),
                      preview_resolution)
    server = _server(file, current_profile(), port) if serve else None
    try:
        watcher = Watch(request, click.echo, lambda line: click.echo(line, err=True), server)
        if server is not None:
            click.echo(f"serving {server.page_url} (the page reloads after each render)")
        px = f" at {preview_resolution} px" if preview_resolution else ""
        click.echo(f"watching {display}: every shot on the free {FREE_PROVIDER} provider{px}, "
                   "whatever it names; Ctrl-C stops")
        code = watcher.run()
    finally:
        if server is not None:
            server.stop()
    sys.exit(code)


def _server(file, profile, port):
    """The report's server, bound before anything else: a port in use is refused at once."""
    from .commands.serve import DEFAULT_PORT, ReportServer
    from .paths import ProjectPaths

    paths = ProjectPaths(file.parent, profile, file.stem)
    return ReportServer(paths.renders, paths.report_page,
                        DEFAULT_PORT if port is None else port).start()
