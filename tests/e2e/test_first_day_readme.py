"""Issue 21, item 18 (e): the README's walkthrough, run as written.

It failed at `pick lantern-rises 2` (the project `init` writes has one take). The commands are
read from README.md, so the walkthrough and this test cannot drift apart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> list[str]:
    """The lines of the README's first shell block that starts with `kling-compose init`."""
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and lines[0].startswith("kling-compose init "):
            return lines
    raise AssertionError("README.md has no walkthrough block starting with `kling-compose init`")


def bash(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run script with bash -e, `kling-compose` being this checkout's (the venv's) command."""
    bin_dir = str(Path(sys.executable).parent)
    env = os.environ | {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    for name in [n for n in env if n.startswith("KLING_COMPOSE_")]:
        del env[name]
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300)


def test_the_readme_walkthrough_runs_as_written_and_its_takes_paragraph_holds(tmp_path):
    lines = walkthrough()
    assert lines[1].startswith("cd "), lines  # then every command runs in the new project
    done = bash("\n".join(lines), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    film = tmp_path / lines[1].split()[1]
    assert (film / "renders" / f"{film.name}.mp4").is_file()
    assert (film / "renders" / "report.html").is_file()
    # "give a shot `takes: 2` (the storyboard's comment shows where) ... run ... pick"
    text = README.read_text(encoding="utf-8")
    (pick,) = re.findall(r"`(kling-compose pick [^`]+)`", text)
    storyboard = film / "storyboard.yaml"
    commented = storyboard.read_text(encoding="utf-8")
    assert "        # takes: 2" in commented
    storyboard.write_text(commented.replace("        # takes: 2", "        takes: 2"),
                          encoding="utf-8")
    picked = bash(f"kling-compose run -q\n{pick}\nkling-compose run -q\nkling-compose status",
                  film)
    assert picked.returncode == 0, picked.stdout + picked.stderr
    assert "pick: 2" in storyboard.read_text(encoding="utf-8")
