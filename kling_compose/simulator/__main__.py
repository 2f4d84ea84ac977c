"""`python -m kling_compose.simulator`: run the provider simulator until Ctrl-C."""

from __future__ import annotations

import argparse

from .faults import DEFAULT_TASK_SECONDS, Faults
from .server import serve


def main(argv: list[str] | None = None) -> None:
    """Parse options and serve."""
    parser = argparse.ArgumentParser(prog="python -m kling_compose.simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PROVIDER=KEY",
        help="the one key a provider accepts (default: any non-empty key)",
    )
    parser.add_argument("--task-seconds", type=float, default=DEFAULT_TASK_SECONDS)
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="e.g. 429:2,provider=runware,retry_after=1 | 503:1,kind=poll | "
        "reset:1,kind=submit,after_processing=1 | fail=SUBSTRING,message=TEXT",
    )
    args = parser.parse_args(argv)
    keys = dict(pair.split("=", 1) for pair in args.key)
    serve(args.host, args.port, keys, Faults.parse(args.fault, args.task_seconds))


if __name__ == "__main__":
    main()
