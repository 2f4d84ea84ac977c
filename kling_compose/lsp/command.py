"""`kling-compose lsp`: the language server on stdin and stdout (cli.py adds `command`).

Only click is imported here: pygls and the server load when the command runs, so
`kling-compose` starts as fast with this command as without it. pygls is the `[lsp]` extra:
without it the command says which extra installs it.
"""

from __future__ import annotations

import sys

import click

LSP_EXTRA = "pip install 'kling-compose[lsp]'"


@click.command("lsp", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--stdio", is_flag=True, help="Talk over stdin and stdout (the default and only "
              "transport; accepted because editors pass it).")
@click.option("--debounce-ms", type=click.IntRange(0, 10_000), default=30, show_default=True,
              help="How long after the last edit a storyboard is checked again.")
def command(stdio: bool, debounce_ms: int) -> None:
    """Run the storyboard language server over stdio, for an editor (docs/editors.md).

    It checks a storyboard as you type (every `validate` error and warning, with the project
    file's variables, on the file that holds it), completes element names, shot ids, models,
    providers, speakers and fields, shows a shot's resolved fields, prompt, cost and cache
    status on hover, goes to definitions and references, and fixes what a hint spells out.
    It never writes into the project, reads no key and asks no network."""
    from ..collector import paused

    del stdio
    try:
        from .server import create_server
    except ImportError as exc:  # pygls is the [lsp] extra
        if (exc.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        from ..errors import Diagnostic

        click.echo(str(Diagnostic(f"kling-compose lsp needs pygls, which is not installed "
                                  f"({exc.name})", hint=LSP_EXTRA)), err=True)
        sys.exit(1)
    from ..project.state import leave_no_trace

    leave_no_trace()  # the cache status on hover reads the ledger: no -wal, -shm beside it
    with paused():  # collected when the editor is idle (StoryboardServer.when_idle)
        create_server(debounce_ms / 1000).start_io()
