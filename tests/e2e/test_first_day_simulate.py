"""Issue 21, item 18 (a-c): rehearsing with `kling-compose simulate` as docs/simulator.md says.

(a) `kling-compose simulate --help` listed none of its options; (b) the lines it prints had no
`export`, so pasted into a shell they never reached kling-compose; (c) its clips were 320x180,
so a chain on kling failed ("at least 300px") after paying for its first shot."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading

from _e2e import cli

from kling_compose.cli import main
from kling_compose.simulator import Faults, serve

OPTIONS = ("--port", "--key", "--task-seconds", "--fault", "--short-side", "--host")


def test_simulate_help_lists_every_option_of_the_simulator_and_the_same_ones():
    ours = cli("simulate", "--help")
    assert ours.exit_code == 0
    for option in OPTIONS:
        assert option in ours.output, option
    theirs = subprocess.run([sys.executable, "-m", "kling_compose.simulator", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert theirs.returncode == 0, theirs.stderr
    # one command behind both: the same options with the same help
    words = lambda text: text.split("Options:")[1].split()  # terminal widths differ
    assert words(ours.output) == words(theirs.stdout)
    assert main.commands["simulate"].hidden is False


def test_simulate_passes_its_options_to_serve(monkeypatch):
    import kling_compose.simulator.server as server

    seen = {}
    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: seen.update(
        args=args, kwargs=kwargs))
    result = cli("simulate", "--port", "0", "--key", "fal=fk", "--task-seconds", "0.1",
                 "--fault", "503,kind=poll", "--short-side", "400")
    assert result.exit_code == 0, result.output
    host, port, keys, faults = seen["args"]
    assert (host, port, keys, faults.task_seconds) == ("127.0.0.1", 0, {"fal": "fk"}, 0.1)
    assert seen["kwargs"] == {"short_side": 400}
    for wrong in (["--key", "fal"], ["--fault", "nonsense"], ["--short-side", "8"]):
        refused = cli("simulate", *wrong)
        assert refused.exit_code == 2, (wrong, refused.output)


class _Served:
    """serve() in a thread, as `kling-compose simulate` runs it, its lines collected."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=serve, kwargs={
            "faults": Faults(task_seconds=0.05), "echo": self.lines.append, "stop": self.stop})

    def __enter__(self) -> _Served:
        self.thread.start()
        for _ in range(500):
            if any(line.startswith("export KLING_SECRET_KEY=") for line in self.lines):
                return self
            threading.Event().wait(0.02)
        raise AssertionError("no export lines: " + "\n".join(self.lines))

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)

    @property
    def exports(self) -> list[str]:
        return [line for line in self.lines if line.startswith("export ")]

    def env(self) -> dict[str, str]:
        pairs = (shlex.split(line)[1].split("=", 1) for line in self.exports)
        return dict(pairs)


def test_the_printed_lines_pasted_into_a_shell_reach_kling_compose():
    with _Served() as served:
        script = "\n".join(served.exports) + "\n" + shlex.join(
            [sys.executable, "-c", "import os; print(os.environ['KLING_COMPOSE_FAL_URL'], "
             "os.environ['FAL_KEY'])"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLING_COMPOSE_")}
        env.pop("FAL_KEY", None)
        child = subprocess.run(["bash", "-c", script], env=env, capture_output=True,
                               text=True, timeout=60)
        assert child.returncode == 0, child.stderr
        url, key = child.stdout.split()
        assert url == served.env()["KLING_COMPOSE_FAL_URL"] and key == served.env()["FAL_KEY"]


def test_a_chain_on_kling_rehearses_against_the_simulators_default_clips(tmp_path):
    """The project `init` writes chains two shots: on kling each chained frame must have
    300 px a side, so the simulator's default clips must."""
    root = tmp_path / "film"
    assert cli("init", root).exit_code == 0
    with _Served() as served:
        env = served.env() | {"KLING_COMPOSE_POLL_SECONDS": "0.05"}
        result = cli("run", root, "--json", "--provider", "kling", env=env)
    summary = json.loads(result.stdout)
    assert result.exit_code == 0 and summary["failed"] == 0, summary
    assert summary["generated"] == 3
