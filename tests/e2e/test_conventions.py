"""Conventions a user expects (issue 10): a bad option value is a usage error with
did-you-mean, a setting that changes the output is in the cache key, `status` shows the project
as the last run left it, and an unreachable host is named with the setting that overrides it."""

from __future__ import annotations

import json
import socket

from _e2e import PREVIEW, chain_storyboard, cli, run_json
from test_money_runs import environment, run, sim  # noqa: F401

from kling_compose.media.ffmpeg import probe


def test_an_unknown_provider_is_a_usage_error_with_did_you_mean(project):
    root = project(chain_storyboard(1))
    for command in ("plan", "run", "status", "graph"):
        result = cli(command, root, "--provider", "prevew")
        assert result.exit_code == 2, (command, result.output)
        assert "unknown provider 'prevew'; did you mean 'preview'?" in result.output
    result = cli("plan", root, "--provider", "openai")
    assert result.exit_code == 2 and "one of preview, runware" in result.output


def test_the_preview_resolution_is_part_of_the_cache_key(project):
    root = project(chain_storyboard(2))
    assert run_json(root, "--preview-resolution", "144")["generated"] == 2
    small = probe(root / "renders" / "chain.mp4")
    again = run_json(root, "--preview-resolution", "180")  # (PREVIEW says 144: the last wins)
    assert again["generated"] == 2 and again["cached"] == 0, again
    film = probe(root / "renders" / "chain.mp4")
    assert (film.width, film.height) != (small.width, small.height)
    assert min(film.width, film.height) == 180  # every clip of the film at the new size
    plan = json.loads(cli("plan", root, "--json", "--preview-resolution", "144").stdout)
    assert {t["status"] for t in plan["tasks"]} == {"cached"}  # the 144 clips are still kept


def test_status_shows_the_project_as_the_last_run_left_it(project, sim):
    root = project(chain_storyboard(2))
    assert run(root, "fal", sim)["generated"] == 2
    report = json.loads(cli("status", root, "--json").stdout)  # no --provider
    assert report["done"] == len(report["tasks"]) == 6, report  # 2 shots, 2 uploads, frame, film
    assert {t["id"] for t in report["tasks"]} >= {"upload:fal:frame:s1:last"}
    preview = json.loads(cli("status", root, "--json", "--provider", "preview").stdout)
    assert preview["done"] == 0  # asked for explicitly: the preview has not run


def test_an_unreachable_host_is_named_with_its_setting_and_the_run_resumes(project):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = project(chain_storyboard(1).replace("first_frame: assets/start.png", ""))
    env = {"RUNWARE_API_KEY": "rw-key", "KLING_COMPOSE_RUNWARE_URL": f"http://127.0.0.1:{port}"}
    result = cli("run", root, "--provider", "runware", "--json", *PREVIEW, env=env)
    assert result.exit_code == 1
    error = next(t["error"] for t in json.loads(result.stdout)["tasks"] if "error" in t)
    assert f"cannot reach http://127.0.0.1:{port}" in error
    assert "KLING_COMPOSE_RUNWARE_URL" in error and "resumes" in error


def test_each_command_helps_with_examples_and_the_environment_it_reads():
    for command in ("validate", "render", "config", "plan", "graph", "run", "status"):
        text = cli(command, "--help").output
        assert "Examples:" in text and f"kling-compose {command}" in text, command
    text = cli("run", "--help").output
    assert "FAL_KEY" in text and "KLING_COMPOSE_<HOST>_URL" in text and "NO_COLOR" in text
    assert "_FILE" in text and ".env" in text


def test_quiet_prints_only_the_film_and_verbose_a_line_per_task(project):
    root = project(chain_storyboard(2))
    quiet = cli("run", root, "-q", *PREVIEW)
    assert quiet.exit_code == 0 and quiet.stdout.strip() == str(root / "renders" / "chain.mp4")
    assert quiet.stderr == ""
    verbose = cli("run", root, "-v", "--force", "s2", *PREVIEW)
    lines = [line for line in verbose.stderr.splitlines() if line.strip()]
    assert len(lines) == 4 and lines[-1].startswith("4/4 ") and "generate:s2" in verbose.stderr
    both = cli("run", root, "-q", "-v")
    assert both.exit_code == 2


def test_no_color_is_honoured(project):
    root = project(chain_storyboard(1))
    colour = cli("run", root, *PREVIEW, env={"FORCE_COLOR": "1", "NO_COLOR": None})
    assert "\x1b[32m" in colour.stdout  # `done` in green when colour is forced
    plain = cli("run", root, *PREVIEW, "--force", "s1", env={"FORCE_COLOR": "1",
                                                              "NO_COLOR": "1"})
    assert plain.exit_code == 0 and "\x1b[32m" not in plain.stdout and "done" in plain.stdout
