"""`kling-compose lsp`: the language server on stdin and stdout (cli.py adds `command`).

Only click is imported here: pygls and the server load when the command runs, so
`kling-compose` starts as fast with this command as without it.
"""

from __future__ import annotations

import click


@click.command("lsp", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--stdio", is_flag=True, help="Talk over stdin and stdout (the default and only "
              "transport; accepted because editors pass it).")
@click.option("--debounce-ms", type=click.IntRange(0, 10_000), default=50, show_default=True,
              help="How long after the last edit a storyboard is checked again.")
def command(stdio: bool, debounce_ms: int) -> None:
    """Run the storyboard language server over stdio, for an editor (docs/editors.md).

    It checks a storyboard as you type (every `validate` error and warning, with the project
    file's variables, on the file that holds it), completes element names, shot ids, models,
    providers, speakers and fields, shows a shot's resolved fields, prompt, cost and cache
    status on hover, goes to definitions and references, and fixes what a hint spells out.
    It never writes into the project, reads no key and asks no network."""
    from ..collector import paused
    from .server import create_server

    del stdio
    with paused():  # collected when the editor is idle (StoryboardServer.when_idle)
        create_server(debounce_ms / 1000).start_io()
