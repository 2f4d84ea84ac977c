"""`python -m kling_compose.simulator` and `kling-compose simulate`: run the provider simulator
until Ctrl-C.

One click command serves both (cli.py adds `command` as `simulate`), so the two list the same
options with the same help. Only click and the fault parser are imported here: the server
(PyAV, Pillow, every provider's module) loads when the command runs, so `kling-compose`
starts as fast with this command as without it.
"""

from __future__ import annotations

import click

from . import SERVE_SHORT_SIDE
from .faults import DEFAULT_TASK_SECONDS, Faults


def _keys(ctx, param, values: tuple[str, ...]) -> dict[str, str]:
    keys = {}
    for value in values:
        provider, sep, key = value.partition("=")
        if not sep or not provider or not key:
            raise click.BadParameter(f"{value!r}: write PROVIDER=KEY, e.g. runware=rk")
        keys[provider] = key
    return keys


def _faults(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    try:
        Faults.parse(list(values))
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(str(exc)) from None
    return values


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="the port to listen on  [default: 0, a free port]")
@click.option("--key", "keys", multiple=True, metavar="PROVIDER=KEY", callback=_keys,
              help="the one key a provider accepts (runware, fal, kie, kling-v3-task; kling "
                   "takes ACCESS:SECRET); repeat per provider  [default: any non-empty key]")
@click.option("--task-seconds", type=click.FloatRange(min=0), default=DEFAULT_TASK_SECONDS,
              show_default=True, help="how long each generation takes before polls say done")
@click.option("--short-side", type=click.IntRange(16, 2160), default=SERVE_SHORT_SIDE,
              show_default=True,
              help="the short side in px of the clips it renders (at the aspect of the first "
                   "frame or of the requested size); Kling refuses a chained frame under 300")
@click.option("--fault", "faults", multiple=True, metavar="SPEC", callback=_faults,
              help="inject a fault, repeatable: 429:2,provider=runware,retry_after=1 | "
                   "503:1,kind=poll | reset:1,kind=submit,after_processing=1 | "
                   "fail=SUBSTRING,message=TEXT | drift=SUBSTRING (docs/simulator.md, Faults)")
def command(host: str, port: int, keys: dict[str, str], task_seconds: float, short_side: int,
            faults: tuple[str, ...]) -> None:
    """Run the local provider simulator (Runware, fal, kie, kling-v3-task, the official Kling
    API) for rehearsals and tests: see docs/simulator.md.

    It prints `export` lines to paste into a shell (the hosts and keys kling-compose then
    uses). GET /_sim/stats answers its counts (requests by provider and kind, generations, USD
    billed); they are printed when it stops (Ctrl-C, SIGTERM)."""
    from .server import serve

    serve(host, port, keys, Faults.parse(list(faults), task_seconds), short_side=short_side)


def main(argv: list[str] | None = None) -> None:
    """Parse options and serve."""
    command.main(args=argv, prog_name="python -m kling_compose.simulator")


if __name__ == "__main__":
    main()
