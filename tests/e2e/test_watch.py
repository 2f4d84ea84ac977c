"""`kling-compose watch` and `report --serve`: the edit-and-look loop, run as a user runs it.

`watch` runs as a child process (`python -m kling_compose watch`) on a storyboard of a 3-shot
chain plus an independent shot, at the preview's smallest test size; its output lines, file
identities under renders/shots/ and the ledger say what each save made. The storyboard names a
paid provider (fal), and the project file too, with keys and URLs pointing at the simulator:
the simulator seeing no request at all is the proof the watch never calls a paid provider.
The served report is opened in Debian's Chromium through Playwright (as tests/e2e/test_report.py
does) and must show a new prompt by itself after a save.
"""

from __future__ import annotations

import http.client
import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _e2e import PREVIEW, cli, make_project

from kling_compose.errors import Diagnostic, Location

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WAIT_S = 60  # the longest any one step may take on a loaded machine

BOARD = """version: 1
name: harbour
defaults:
  duration: 3
  aspect: '16:9'
  provider: fal
scenes:
  - id: main
    shots:
      - id: s1
        prompt: the keeper lights a lantern
        first_frame: assets/start.png
      - id: s2
        prompt: the lantern drifts out
        first_frame: { from: previous }
      - id: s3
        prompt: the boat reaches the pier
        first_frame: { from: previous }
  - id: aside
    shots:
      - id: solo
        prompt: gulls over the harbour
        first_frame: assets/start.png
"""


class Watching:
    """`kling-compose watch ...` as a child process in the project's folder (as a user runs
    it: storyboard.yaml there); its output (stdout and stderr, in order) read line by line in
    a thread."""

    def __init__(self, root: Path, *args: str, env: dict | None = None) -> None:
        environ = os.environ | (env or {}) | {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        environ.pop("KLING_COMPOSE_STORE", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kling_compose", "watch", *PREVIEW, *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ, cwd=root)
        self.lines: list[str] = []
        self.cursor = 0  # lines before it were matched already
        self._new: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def expect(self, pattern: str, timeout: float = WAIT_S) -> re.Match:
        """The first line from the cursor on matching `pattern`; the cursor moves past it."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(self.cursor, len(self.lines)):
                match = re.search(pattern, self.lines[index])
                if match:
                    self.cursor = index + 1
                    return match
            self.cursor = len(self.lines)
            left = deadline - time.monotonic()
            try:
                line = self._new.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n"
                                     + self.output) from None
            if line is None:
                raise AssertionError(f"watch ended (exit {self.proc.wait()}) before a line "
                                     f"matching {pattern!r}:\n" + self.output)
            self.lines.append(line)
            self.cursor -= 1  # look at the new line too

    def since(self, start: int) -> list[str]:
        return self.lines[start:]

    def stop(self, timeout: float = 30) -> int:
        """SIGINT, as Ctrl-C sends it; the exit code, every line read."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        while True:
            line = self._new.get(timeout=10)
            if line is None:
                return code
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def watching():
    started: list[Watching] = []

    def start(root: Path, *args: str, env: dict | None = None) -> Watching:
        started.append(Watching(root, *args, env=env))
        return started[-1]

    yield start
    for watch in started:
        watch.close()


def harbour(project) -> Path:
    root = project(BOARD)
    (root / "kling-compose.yaml").write_text("provider: fal\n", encoding="utf-8")
    return root


def edit(root: Path, old: str, new: str) -> None:
    """Save the storyboard with `old` replaced, as an editor does (written in place)."""
    path = root / "storyboard.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def clips(root: Path) -> dict[str, tuple[int, int]]:
    """Each shot clip under renders/shots/ by shot, as (inode, mtime): a clip written again
    (atomically, through a temp file) has another."""
    return {p.stem: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (root / "renders" / "shots").glob("*.mp4")}


def ledger(root: Path) -> list[tuple[str, str, str]]:
    """The ledger's generations: (shot, provider, status)."""
    with sqlite3.connect(root / ".kling-compose" / "state.db") as db:
        return sorted(db.execute("SELECT shot, provider, status FROM tasks "
                                 "WHERE kind = 'generate'").fetchall())


def rendered(line_match: re.Match) -> set[str]:
    return set(line_match[1].split(", "))


# -- the loop, as a user lives it ----------------------------------------------------------

def test_a_save_rerenders_only_that_shot_and_what_chains_from_it_never_paying(
        project, watching, sim, sim_env):
    root = harbour(project)
    watch = watching(root, env=sim_env)  # fal's key and URL are there: never used
    watch.expect(r"watching .*every shot on the free preview provider")
    assert rendered(watch.expect(r"^rendered: ([^;(]+?)(;| \()")) == {"s1", "s2", "s3", "solo"}
    watch.expect(r"^report: renders/report.html$")
    before = clips(root)
    assert set(before) == {"s1", "s2", "s3", "solo"}
    first_s2 = (root / "renders" / "shots" / "s2.mp4").read_bytes()

    edit(root, "the lantern drifts out", "the lantern drifts out to sea")
    watch.expect(r"^changed: storyboard.yaml$")
    assert rendered(watch.expect(r"^rendering shot\(s\) ([^ ]+(?:, [^ ]+)*) and film")) == \
        {"s2", "s3"}
    assert rendered(watch.expect(r"^rendered: ([^;(]+?)(;| \()")) == {"s2", "s3"}
    watch.expect(r"^report: renders/report.html$")
    after = clips(root)
    # s1 and solo untouched; s3 is exported again only if its new clip has other bytes (the
    # preview draws the shot's id, not its prompt, and s2's last frame may be the same)
    assert "s2" in {shot for shot in after if after[shot] != before[shot]} <= {"s2", "s3"}
    # the ledger: the 4 first generations and the 2 new ones, every one on the preview
    made = ledger(root)
    assert [shot for shot, _, _ in made] == ["s1", "s2", "s2", "s3", "s3", "solo"], made
    assert {(provider, status) for _, provider, status in made} == {("preview", "done")}
    assert "the lantern drifts out to sea" in \
        (root / "renders" / "report.html").read_text(encoding="utf-8")

    # an error: said once, in full, and nothing is rendered
    edit(root, "      - id: s3\n", "      - id: s3\n        promt: sunset\n")
    watch.expect(r"^storyboard.yaml:\d+:\d+: error: unknown field 'promt'")
    watch.expect(r"^1 error\(s\): nothing is rendered until they are fixed$")
    # fixed: a one-line "fixed", and the storyboard is back to what was rendered
    mark = watch.cursor
    edit(root, "        promt: sunset\n", "")
    watch.expect(r"^fixed: storyboard.yaml: error: unknown field 'promt'")
    watch.expect(r"^nothing to render: all \d+ task\(s\) are up to date$")
    assert not any("error" in line and "fixed" not in line for line in watch.since(mark))
    assert clips(root) == after and len(ledger(root)) == 6

    # back to the first prompt: made before, so nothing is made, but s2's clip and the
    # report are the first prompt's again
    edit(root, "the lantern drifts out to sea", "the lantern drifts out")
    watch.expect(r"^nothing to render: all \d+ task\(s\) are up to date$")
    watch.expect(r"^report: renders/report.html$")
    assert (root / "renders" / "shots" / "s2.mp4").read_bytes() == first_s2
    assert len(ledger(root)) == 6
    assert "the lantern drifts out to sea" not in \
        (root / "renders" / "report.html").read_text(encoding="utf-8")

    code = watch.stop()
    assert code == 0, watch.output
    assert watch.lines[-1] == "watch: stopped", watch.output
    assert "Traceback" not in watch.output
    assert sim.requests() == [], "the watch called a hosted provider"


def test_a_save_during_a_render_is_rendered_after_it_from_the_latest_text(project, watching):
    root = project(BOARD)
    watch = watching(root)
    watch.expect(r"^report: ")
    edit(root, "the keeper lights a lantern", "the keeper lights two lanterns")
    watch.expect(r"^rendering shot\(s\) s1, s2, s3 ")
    # two saves while the chain renders: only the last one's text is ever rendered
    edit(root, "gulls over the harbour", "gulls over the water")
    time.sleep(0.05)  # within the render, or at worst within one burst of saves after it
    edit(root, "gulls over the water", "gulls over the lighthouse")
    assert rendered(watch.expect(r"^rendered: ([^;(]+?)(;| \()")) == {"s1", "s2", "s3"}
    watch.expect(r"^changed: storyboard.yaml$")
    assert rendered(watch.expect(r"^rendered: ([^;(]+?)(;| \()")) == {"solo"}
    watch.expect(r"^report: ")
    assert [shot for shot, _, _ in ledger(root)].count("solo") == 2  # "water": never made
    page = (root / "renders" / "report.html").read_text(encoding="utf-8")
    assert "gulls over the lighthouse" in page and "gulls over the water" not in page
    assert watch.stop() == 0, watch.output


def test_ctrl_c_during_a_render_stops_cleanly_and_releases_the_run_lock(project, watching):
    root = project(BOARD)
    watch = watching(root)
    watch.expect(r"^rendering shot\(s\) s1, s2, s3, solo ")
    code = watch.stop()
    said = watch.since(watch.cursor)
    # the render of 4 shots and a film takes a second or more: the signal lands in it
    assert code == 130, watch.output
    assert len(said) == 1 and said[0].startswith("watch: stopped during a render"), \
        watch.output
    assert "Traceback" not in watch.output
    # nothing half-written, not even in the store's own temp folder; and the next run takes
    # the project at once (the run lock is free)
    renders = root / "renders"
    assert not list(root.rglob(".tmp-*"))
    assert not list((root / ".kling-compose" / "tmp").glob("*"))
    result = cli("run", root, "--provider", "preview", *PREVIEW, "--json")
    assert result.exit_code == 0, result.output
    import av

    for clip in (renders / "shots").glob("*.mp4"):
        with av.open(str(clip)) as container:
            assert container.duration and container.duration > 0, clip
    assert {p.stem for p in (renders / "shots").glob("*.mp4")} == {"s1", "s2", "s3", "solo"}


def test_ctrl_c_while_waiting_exits_0_in_one_line(project, watching):
    root = project(BOARD)
    watch = watching(root)
    watch.expect(r"^report: ")
    mark = watch.cursor
    assert watch.stop() == 0
    assert watch.since(mark) == ["watch: stopped"], watch.output


def test_a_broken_project_file_is_said_and_waited_for_not_a_refusal(project, watching):
    root = project(BOARD)
    (root / "kling-compose.yaml").write_text("concurency: 2\n", encoding="utf-8")
    watch = watching(root)
    watch.expect(r"kling-compose.yaml:1:1: error: .*concurency")
    watch.expect(r"^1 error\(s\): nothing is rendered")
    (root / "kling-compose.yaml").write_text("concurrency: 2\n", encoding="utf-8")
    watch.expect(r"^changed: kling-compose.yaml$")
    watch.expect(r"^fixed: kling-compose.yaml: error: .*concurency")
    watch.expect(r"^rendered: s1, s2, s3, solo")
    assert watch.stop() == 0


# -- report --serve ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is not installed ({CHROMIUM} is missing): `make test` installs "
                    "it (apt-get install -y --no-install-recommends chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_the_served_report_reloads_in_chromium_after_a_save(project, watching, browser):
    root = project(BOARD)
    watch = watching(root, "--serve", "--port", "0")
    url = watch.expect(r"^serving (http://127\.0\.0\.1:\d+/report\.html) ")[1]
    watch.expect(r"^report: ")
    tab = browser.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.goto(url, wait_until="load")
    prompt = tab.locator('article.shot[data-shot="s2"] .prompt')
    assert prompt.inner_text() == "the lantern drifts out"
    tab.evaluate("() => { window.untouched = true; }")  # gone once the page reloads

    saved = time.monotonic()
    edit(root, "the lantern drifts out", "the lantern drifts out to sea")
    # no reload asked: the page's own script sees the new report and reloads
    tab.locator('article.shot[data-shot="s2"] .prompt',
                has_text="the lantern drifts out to sea").wait_for(timeout=30_000)
    seconds = time.monotonic() - saved
    assert tab.evaluate("() => window.untouched") is None
    assert seconds < 20, seconds
    clip = tab.locator('article.shot[data-shot="s2"] video.clip')
    assert clip.evaluate("v => new Promise(r => v.readyState >= 1 ? r(v.duration) : "
                         "v.addEventListener('loadedmetadata', () => r(v.duration)))") > 0

    # an error shows in the open page's banner, and goes when fixed
    edit(root, "      - id: s3\n", "      - id: s3\n        promt: sunset\n")
    tab.locator("#kling-compose-live-banner", has_text="unknown field 'promt'").wait_for(
        timeout=20_000)
    edit(root, "        promt: sunset\n", "")
    tab.locator("#kling-compose-live-banner").wait_for(state="detached", timeout=20_000)
    assert problems == []
    # the file on disk stays the offline page: no script
    assert "<script" not in (root / "renders" / "report.html").read_text(encoding="utf-8")
    tab.close()
    assert watch.stop() == 0, watch.output


def _get(port: int, path: str, headers: dict | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


def test_the_server_serves_the_folder_only_with_ranges_and_a_version(project):
    from kling_compose.commands.serve import ReportServer

    root = project(BOARD)
    renders = root / "renders"
    (renders / "report").mkdir(parents=True)
    page = renders / "report.html"
    page.write_text("<html><body><p>one</p></body></html>", encoding="utf-8")
    (renders / "report" / "clip.mp4").write_bytes(bytes(range(256)) * 4)
    server = ReportServer(renders, page, 0).start()
    try:
        port = server.port
        assert _get(port, "/").getheader("Location") == "/report.html"
        served = _get(port, "/report.html")
        assert b'<p>one</p><script id="kling-compose-live">' in served.body
        assert served.getheader("Cache-Control") == "no-store"
        version = _get(port, "/__kling-compose__/state").body
        page.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")  # the same bytes
        assert _get(port, "/__kling-compose__/state").body == version
        page.write_text("<html><body><p>two</p></body></html>", encoding="utf-8")
        assert _get(port, "/__kling-compose__/state").body != version
        part = _get(port, "/report/clip.mp4", {"Range": "bytes=10-19"})
        assert part.status == 206 and part.body == bytes(range(10, 20))
        assert part.getheader("Content-Range") == "bytes 10-19/1024"
        assert _get(port, "/report/clip.mp4", {"Range": "bytes=2000-"}).status == 416
        assert _get(port, "/report/clip.mp4").body == bytes(range(256)) * 4
        assert _get(port, "/../storyboard.yaml").status == 404
        assert _get(port, "/%2e%2e/storyboard.yaml").status == 404
        assert _get(port, "/report/").status == 404  # no listing
        assert _get(port, "/report.html", {"Host": "attacker.example"}).status == 403
        assert "<script" not in page.read_text(encoding="utf-8")
    finally:
        server.stop()


def test_report_serve_serves_until_ctrl_c_and_follows_a_report_written_again(project):
    import json

    root = project(BOARD)
    environ = os.environ | {"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "kling_compose", "report", "--serve",
                             "--port", "0"], cwd=root, env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("report: ")
        line = proc.stdout.readline()
        port = int(re.match(r"serving http://127\.0\.0\.1:(\d+)/report\.html ", line)[1])
        version = json.loads(_get(port, "/__kling-compose__/state").body)["version"]
        assert b"the lantern drifts out" in _get(port, "/report.html").body
        edit(root, "the lantern drifts out", "the lantern drifts out to sea")
        assert cli("report", root).exit_code == 0  # another terminal's `report`
        assert json.loads(_get(port, "/__kling-compose__/state").body)["version"] != version
        assert b"the lantern drifts out to sea" in _get(port, "/report.html").body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == "stopped serving\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_report_serve_refuses_a_port_in_use_before_writing_anything(project):
    root = project(BOARD)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("report", root, "--serve", "--port", port)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == f"error: port {port} on 127.0.0.1 is in use"
    assert "Traceback" not in result.output
    assert not (root / "renders" / "report.html").exists()
    result = cli("report", root, "--port", "8000")
    assert result.exit_code == 2 and "--port goes with --serve" in result.output


# -- the pieces ----------------------------------------------------------------------------

def test_what_changed_in_the_diagnostics_is_a_short_diff():
    from kling_compose.commands.watch import diagnostics_diff, fixed_line

    typo = Diagnostic("unknown field 'promt' in shot", Location("storyboard.yaml", 18, 9))
    moved = Diagnostic("unknown field 'promt' in shot", Location("storyboard.yaml", 19, 9))
    slow = Diagnostic("duration 20 is long", Location("storyboard.yaml", 30, 3),
                      severity="warning")
    new, fixed = diagnostics_diff([typo, slow], [moved])
    assert new == [] and fixed == [slow]  # a line added above it: the same error
    new, fixed = diagnostics_diff([typo], [moved, typo])
    assert new == [typo] and fixed == []  # a second one is new
    assert fixed_line(slow) == "fixed: storyboard.yaml: warning: duration 20 is long"


def test_the_watch_ignores_what_it_writes_and_follows_what_the_storyboard_reads(tmp_path):
    from watchfiles import Change

    from kling_compose.commands.watch import Checked, Request, SaveFilter, check, saves

    root = make_project(tmp_path / "film", BOARD)
    outside = tmp_path / "shared" / "vars.yaml"
    outside.parent.mkdir()
    outside.write_text("mood: dusk\n", encoding="utf-8")
    checked = check(Request(root / "storyboard.yaml", str(root / "storyboard.yaml"),
                            vars_files=(str(outside),)))
    assert checked.errors == () and checked.plan is not None
    # every shot on the preview, though the storyboard names fal
    assert {t.provider for t in checked.plan.tasks.values() if t.provider} == {"preview"}
    keep = SaveFilter(root)
    keep.update(checked)
    for path in ("storyboard.yaml", "kling-compose.yaml", "parts/harbour.yaml",
                 "assets/start.png"):
        assert keep(Change.modified, str(root / path)), path
    assert keep(Change.modified, str(outside))
    assert not keep(Change.modified, str(tmp_path / "shared" / "notes.txt"))
    for path in ("renders/report.html", "renders/shots/s1.mp4", "renders/harbour.mp4",
                 ".kling-compose/state.db", "storyboard.lock", ".tmp-abc.yaml",
                 ".git/index", "storyboard.yaml.swp"):
        assert not keep(Change.modified, str(root / path)), path
    assert isinstance(checked, Checked)
    # sed -i's temp file came and went within the burst: only the storyboard was saved
    board = str(root / "storyboard.yaml")
    gone = str(root / "sedX1a2b3")
    assert saves({(Change.added, gone), (Change.deleted, gone), (Change.modified, board)}) \
        == [board]
    assert saves({(Change.deleted, gone)}) == [gone]


def test_watch_without_watchfiles_says_how_to_install_it(project, monkeypatch):
    root = project(BOARD)
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # as when it is not installed
    result = cli("watch", root, "--serve", "--port", "0")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "needs watchfiles, which is not installed" in result.stderr
    assert "pip install 'watchfiles>=1.0'" in result.stderr
    result = cli("watch", root, "--port", "8000")
    assert result.exit_code == 2 and "--port goes with --serve" in result.output


def test_an_included_template_and_a_vars_file_elsewhere_are_followed(project, watching,
                                                                     tmp_path):
    """The storyboard's {% include %}d part, and a --vars file outside its folder (whose
    folder is watched, and in it that file alone)."""
    board = BOARD.replace("  - id: aside\n    shots:\n      - id: solo\n"
                          "        prompt: gulls over the harbour\n"
                          "        first_frame: assets/start.png\n",
                          '{% include "parts/aside.yaml" %}\n')
    board = board.replace("the boat reaches the pier", "the boat reaches the pier at {{ hour }}")
    root = project(board)
    (root / "parts").mkdir()
    part = root / "parts" / "aside.yaml"
    part.write_text("  - id: aside\n    shots:\n      - id: solo\n"
                    "        prompt: gulls over the harbour\n"
                    "        first_frame: assets/start.png\n", encoding="utf-8")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "vars.yaml").write_text("hour: dawn\n", encoding="utf-8")
    watch = watching(root, "--vars", str(shared / "vars.yaml"))
    assert rendered(watch.expect(r"^rendered: ([^;(]+?)(;| \()")) == {"s1", "s2", "s3", "solo"}
    watch.expect(r"^report: ")

    part.write_text(part.read_text(encoding="utf-8").replace("harbour", "bay"),
                    encoding="utf-8")
    watch.expect(r"^changed: parts/aside.yaml$")
    assert rendered(watch.expect(r"^rendered: ([^;(]+?)(;| \()")) == {"solo"}
    watch.expect(r"^report: ")

    (shared / "notes.txt").write_text("not read by the storyboard\n", encoding="utf-8")
    (shared / "vars.yaml").write_text("hour: dusk\n", encoding="utf-8")
    watch.expect(rf"^changed: {re.escape(str(shared / 'vars.yaml'))}$")  # not notes.txt
    assert rendered(watch.expect(r"^rendered: ([^;(]+?)(;| \()")) == {"s3"}
    watch.expect(r"^report: ")
    assert "at dusk" in (root / "renders" / "report.html").read_text(encoding="utf-8")
    assert watch.stop() == 0, watch.output
