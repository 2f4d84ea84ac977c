"""`kling-compose report`: the offline review page, opened in a real headless Chromium.

Chromium is Debian's `chromium` (`make test` installs it when /usr/bin/chromium is missing),
driven by Playwright through `executable_path`: Playwright's own browser download needs the
network. Without Chromium these tests fail and say so; they are never skipped. Each page is
checked the same way (`open_page`): it loads with no console error, no page error and no
request leaving file://, every <video> points at a file that exists and decodes (a frame is
loaded, the duration is above zero), every <img> loads, and a screenshot is written.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, make_project

from kling_compose.simulator import Faults, Simulator
from support.locks import read_lock, rehearsal_lock

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags, Chromium's own connections (component updates,
# safe browsing) are refused by a closed network and logged as errors.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIDEO_TIMEOUT_MS = 15_000

ELEMENTS = """elements:
  keeper:
    description: an old lantern keeper in a blue coat
"""


def storyboard(shots: list[str], extra: str = "", outputs: str = "") -> str:
    """A storyboard of 3 s shots in scene `harbour`; each item is a shot's YAML lines."""
    lines = ["version: 1", "name: regatta", "defaults:", "  duration: 3", "  aspect: '16:9'",
             extra.rstrip(), "scenes:", "  - id: harbour", "    shots:"]
    for shot in shots:
        lines += ["      " + ("- " if i == 0 else "  ") + line
                  for i, line in enumerate(shot.strip().splitlines())]
    return "\n".join(line for line in lines + [outputs.rstrip()] if line) + "\n"


CHAINED = storyboard([
    "id: s1\nprompt: \"@keeper lights the first lantern\"\nfirst_frame: assets/start.png",
    "id: s2\nprompt: the lantern drifts out\nfirst_frame: { from: previous }\ntakes: 2\npick: 2",
    "id: s3\nprompt: \"@keeper waves from the pier\"\nfirst_frame: { from: previous }",
], ELEMENTS)


# -- Chromium -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is not installed ({CHROMIUM} is missing), so the report cannot "
                    "be tested in a browser: `make test` installs it (apt-get install -y "
                    "--no-install-recommends chromium); install it and run again")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed: `pip install -e '.[test]'` (never "
                    "`playwright install`: the tests use Debian's Chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# every <video>, once it has a decoded frame (or failed, or timed out): what Chromium says
_VIDEOS = """timeout => Promise.all([...document.querySelectorAll('video')].map(v =>
  new Promise(resolve => {
    const report = why => resolve({src: v.currentSrc || v.src, duration: v.duration,
      width: v.videoWidth, ready: v.readyState, error: v.error ? v.error.code : null, why});
    if (v.readyState >= 2) return report('ready');
    v.addEventListener('loadeddata', () => report('loadeddata'));
    v.addEventListener('error', () => report('error'));
    setTimeout(() => report('timeout'), timeout);
  })))"""
_IMAGES = """() => [...document.images].map(i => ({src: i.currentSrc || i.src,
  width: i.naturalWidth, complete: i.complete}))"""


def open_page(browser, page: Path, screenshot: Path):
    """The page in Chromium, checked: no console or page error, nothing fetched but local
    files, every video and image present and decoded; a full-page screenshot is written."""
    problems: list[str] = []
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    tab.on("requestfailed", lambda r: _benign(r) or problems.append(
        f"request failed: {r.url}: {r.failure}"))

    def offline_only(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            problems.append(f"network request: {route.request.url}")
            route.abort()

    tab.route("**/*", offline_only)
    tab.goto(page.as_uri(), wait_until="load")
    videos = tab.evaluate(_VIDEOS, VIDEO_TIMEOUT_MS)
    for video in videos:
        path = _local(video["src"])
        assert path.is_file() and path.is_relative_to(page.parent), video
        assert video["why"] in ("ready", "loadeddata") and video["error"] is None, video
        assert video["duration"] > 0 and video["width"] > 0, video
    for image in tab.evaluate(_IMAGES):
        assert _local(image["src"]).is_file() and image["complete"] and image["width"] > 0, \
            image
    # the whole page in the viewport: Chromium paints a paused video's frame only on screen
    tab.set_viewport_size({"width": 1280,
                           "height": tab.evaluate("() => document.documentElement.scrollHeight")})
    tab.wait_for_timeout(200)
    tab.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    assert problems == []
    return tab


def _benign(request) -> bool:
    """A video stops loading once it has what preload="metadata" asks for: Chromium reports
    that as an aborted request (a missing file is ERR_FILE_NOT_FOUND)."""
    return request.resource_type == "media" and request.failure == "net::ERR_ABORTED"


def _local(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", url
    return Path(unquote(parsed.path))


def shot_facts(tab) -> dict[str, dict]:
    """What the page says about each shot, read from the DOM."""
    return tab.evaluate("""() => Object.fromEntries([...document.querySelectorAll('article.shot')]
      .map(a => [a.dataset.shot, {
        status: a.dataset.status, takes: +a.dataset.takes, pick: +a.dataset.pick,
        prompt: (a.querySelector('.prompt') || {}).textContent,
        elements: [...a.querySelectorAll('.prompt mark.element')]
          .map(m => [m.dataset.element, m.title]),
        cost: a.querySelector('dd.cost').textContent,
        task_id: a.querySelector('dd.task-id').textContent,
        provider: a.querySelector('dd.provider').textContent,
        clip: (a.querySelector('video.clip') || {}).src || null,
        take_srcs: [...a.querySelectorAll('.take')].map(t => [+t.dataset.take, t.dataset.picked,
                    t.classList.contains('picked'), (t.querySelector('video') || {}).src]),
        first_frame: (a.querySelector('img.first-frame') || {}).src || null,
        from: [...a.querySelectorAll('li.from')].map(l => l.dataset.from),
        to: [...a.querySelectorAll('li.to')].map(l => l.dataset.to),
        continuity: (a.querySelector('.continuity') || {}).textContent || null,
        broken: !!a.querySelector('header .badge.broken'),
        error: (a.querySelector('.error') || {}).textContent || null,
      }]))""")


def run(root: Path, *args: str, env: dict | None = None):
    """`kling-compose run` in a thread of its own: Playwright's sync API keeps an event loop
    running in this one, where asyncio.run refuses to start."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(cli, "run", root, "--json", *PREVIEW, *args, env=env).result()


def report(root: Path, *args: str) -> Path:
    result = cli("report", root, *args)
    assert result.exit_code == 0, result.output
    page = root / "renders" / "report.html"
    assert result.stdout.strip() == f"report: {page}"
    return page


# -- a preview run: chained shots, two takes and a pick ------------------------------------

@pytest.fixture(scope="module")
def preview_project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("preview") / "film", CHAINED)
    result = run(root)
    assert result.exit_code == 0, result.output
    report(root)  # as the last run left it: its preview size, without flags
    return root


@pytest.fixture(scope="module")
def preview_tab(preview_project, browser, tmp_path_factory):
    """The preview project's page, opened and checked once for the tests that read it."""
    return open_page(browser, preview_project / "renders" / "report.html",
                     tmp_path_factory.mktemp("screenshots") / "preview.png")


def test_preview_page_loads_offline_with_every_clip_playable(preview_tab):
    tab = preview_tab
    # the film, and each shot's picked take once, plus the 2 takes of s2 side by side
    assert tab.locator("video").count() == 1 + 3 + 2
    film = tab.locator("figure.film")
    assert film.get_attribute("data-film") == "renders/regatta.mp4"
    assert film.get_attribute("data-status") == "done"
    assert "s1 → s2 → s3" in film.text_content()


def test_preview_page_shows_each_shot_in_order_with_prompt_takes_and_chain(preview_tab):
    shots = shot_facts(preview_tab)
    assert list(shots) == ["s1", "s2", "s3"]
    s1, s2, s3 = shots["s1"], shots["s2"], shots["s3"]
    assert {s["status"] for s in shots.values()} == {"done"}
    assert s1["prompt"] == "@keeper lights the first lantern"
    assert s1["elements"] == [["keeper", "an old lantern keeper in a blue coat"]]
    assert s2["elements"] == [] and s2["prompt"] == "the lantern drifts out"
    assert (s1["provider"], s1["cost"], s1["task_id"]) == ("preview", "$0.000", "none")
    # two takes, the second picked and marked; the shot's player and thumbnails show it
    assert (s2["takes"], s2["pick"]) == (2, 2)
    (one, n1, p1, src1), (two, n2, p2, src2) = s2["take_srcs"]
    assert (one, n1, p1, two, n2, p2) == (1, "false", False, 2, "true", True)
    assert src1 != src2 and s2["clip"] == src2
    take2 = Path(_local(src2)).name.split(".")[0]
    assert Path(_local(s2["first_frame"])).name == f"{take2}.first.jpg"
    assert s1["take_srcs"] == [] and s1["takes"] == 1
    # the chain, both ways
    assert (s1["from"], s1["to"]) == ([], ["s2"])
    assert (s2["from"], s2["to"]) == (["s1"], ["s3"])
    assert (s3["from"], s3["to"]) == (["s2"], [])
    # the run scored each chained take against its seed frame; s1 is not chained
    assert s1["continuity"] is None
    assert "first frame vs s1" in s2["continuity"] and "first frame vs s2" in s3["continuity"]
    assert preview_tab.locator("article[data-shot=s2] .take-continuity").count() == 2
    assert preview_tab.locator("#failures").count() == 0


def test_preview_clips_are_the_stored_takes_linked_under_renders(preview_project):
    lock = read_lock(rehearsal_lock(preview_project))
    folder = preview_project / "renders" / "report"
    for shot, entry in lock["shots"].items():
        for digest in entry["sha256"]:
            clip = folder / f"{digest}.mp4"
            stored = preview_project / ".kling-compose" / "objects" / digest[:2] / clip.name
            assert os.path.samefile(clip, stored), shot  # a hard link, not a copy
    page = (preview_project / "renders" / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_report_again_changes_nothing_and_removes_what_the_page_no_longer_shows(
        preview_project):
    page = preview_project / "renders" / "report.html"
    folder = preview_project / "renders" / "report"
    before = {p.name: p.stat().st_ino for p in folder.iterdir()}
    html = page.read_bytes()
    stale = folder / ("ab" * 32 + ".mp4")
    stale.write_bytes(b"an earlier report's take")
    mine = folder / "notes.txt"
    mine.write_text("kept")
    report(preview_project)
    assert page.read_bytes() == html
    assert {p.name: p.stat().st_ino for p in folder.iterdir()} == before | {"notes.txt":
                                                                          mine.stat().st_ino}
    mine.unlink()


# -- a simulated hosted provider: costs, task ids, a failure, continuity ----------------------

HOSTILE_MESSAGE = "<b>flagged</b> <script>window.pwned = 1</script> & more"


@pytest.fixture(scope="module")
def hosted_project(tmp_path_factory):
    """runware through the simulator: s1 -> s2 (2 takes, pick 2) -> s3, and s4 refused by
    the provider; then continuity verdicts in the ledger as the continuity check records them."""
    text = storyboard([
        "id: s1\nprompt: a lantern is lit\nfirst_frame: assets/start.png",
        "id: s2\nprompt: the lantern drifts\nfirst_frame: { from: previous }\ntakes: 2\npick: 2",
        "id: s3\nprompt: the lantern sinks\nfirst_frame: { from: previous }",
        "id: s4\nprompt: a dragon over the harbour",
    ], "  provider: runware\n  model: kling-3-pro\n",
        "outputs:\n  - path: renders/regatta.mp4\n    sequence: [s1, s2, s3]")
    root = make_project(tmp_path_factory.mktemp("hosted") / "film", text)
    with Simulator({"runware": "rw-key"}, Faults(task_seconds=0.05)) as sim:
        sim.faults.fail_generation("dragon", HOSTILE_MESSAGE)
        env = dict(sim.env()) | {"RUNWARE_API_KEY": "rw-key", "KLING_COMPOSE_POLL_SECONDS": "0.05"}
        result = run(root, env=env)
    assert result.exit_code == 1, result.output  # s4 failed
    summary = json.loads(result.stdout)
    assert summary["failed"] == 1 and summary["generated"] == 3, summary
    # what media/continuity.py records: one score per take; s2 uses take 2, which drifted
    verdicts = {"generate:s2": {"from": "s1", "seed": "last", "frame": "first",
                                "scores": [0.93, 0.41], "threshold": 0.8},
                "generate:s3": {"from": "s2", "seed": "last", "frame": "first",
                                "scores": [0.95], "threshold": 0.8}}
    with sqlite3.connect(root / ".kling-compose" / "state.db") as db:
        for task, verdict in verdicts.items():
            db.execute("UPDATE tasks SET result = json_set(result, '$.continuity', json(?)) "
                       "WHERE task_id = ? AND status = 'done'", (json.dumps(verdict), task))
    db.close()
    report(root)
    return root


@pytest.fixture(scope="module")
def hosted_tab(hosted_project, browser, tmp_path_factory):
    return open_page(browser, hosted_project / "renders" / "report.html",
                     tmp_path_factory.mktemp("screenshots") / "hosted.png")


def test_hosted_page_shows_costs_task_ids_and_the_failure_at_the_top(hosted_project, hosted_tab):
    tab = hosted_tab
    lock = read_lock(hosted_project / "storyboard.lock")["shots"]
    shots = shot_facts(tab)
    assert [s["status"] for s in shots.values()] == ["done", "done", "done", "failed"]
    for shot in ("s1", "s2", "s3"):
        assert shots[shot]["provider"] == "runware"
        assert shots[shot]["task_id"] == lock[shot]["task_id"] and lock[shot]["task_id"]
        assert shots[shot]["cost"] == f"${float(lock[shot]['cost_usd']):.3f}"
    assert shots["s2"]["takes"] == 2 and len(shots["s2"]["take_srcs"]) == 2
    spent = sum(float(lock[s]["cost_usd"]) for s in ("s1", "s2", "s3"))
    assert tab.locator("#spent").text_content() == f"${spent:.3f}"
    assert tab.locator("#counts").text_content() == "3 done, 1 failed"
    assert shots["s4"]["cost"].startswith("estimated $") and shots["s4"]["clip"] is None
    failure = tab.locator("#failures li.failure")
    assert failure.count() == 1 and failure.get_attribute("data-task") == "generate:s4"
    assert HOSTILE_MESSAGE in failure.text_content()  # as text, escaped
    assert HOSTILE_MESSAGE in shots["s4"]["error"]
    assert tab.evaluate("() => window.pwned") is None
    assert tab.evaluate("() => document.querySelectorAll('script').length") == 0
    # the failures come before the film and the shots
    order = tab.evaluate("() => [...document.querySelectorAll('main > section')].map(s => s.id)")
    assert order == ["failures", "films", "shots"]


def test_hosted_page_flags_a_broken_chain_and_shows_continuity_scores(hosted_tab):
    tab = hosted_tab
    shots = shot_facts(tab)
    assert shots["s2"]["broken"] and "0.41" in shots["s2"]["continuity"]
    assert "broken chain" in shots["s2"]["continuity"]
    assert not shots["s3"]["broken"] and "0.95" in shots["s3"]["continuity"]
    assert "first frame vs s2" in shots["s3"]["continuity"]
    takes = tab.locator("article[data-shot=s2] .take-continuity").all_text_contents()
    assert takes == ["continuity 0.93", "continuity 0.41 (broken)"]
    assert shots["s1"]["continuity"] is None and not shots["s1"]["broken"]  # none recorded
    flagged = tab.locator("#failures li.broken-chain")
    assert flagged.count() == 1 and flagged.get_attribute("data-shot") == "s2"
    assert "does not continue from s1" in flagged.text_content()


# -- projects never run ---------------------------------------------------------------------

def test_a_project_never_run_gets_a_page_of_pending_shots(project, browser, tmp_path):
    root = project(chain_storyboard(3))
    tab = open_page(browser, report(root), tmp_path / "never.png")
    shots = shot_facts(tab)
    assert {s: f["status"] for s, f in shots.items()} == {f"s{i}": "pending" for i in (1, 2, 3)}
    assert all(f["cost"] == "estimated $0.000" and f["clip"] is None for f in shots.values())
    assert tab.locator("video").count() == 0
    assert "not made yet" in tab.locator("figure.film").text_content()
    assert sorted(p.name for p in (root / "renders").iterdir()) == ["report", "report.html"]


HOSTILE_NAME = "</title><script>window.pwned = 1</script> harbour [/draft] \"q\" 'a' & ночь"
HOSTILE_PROMPT = "<img src=x onerror=\"window.pwned = 2\"> @keeper's </textarea><b>bold</b>"
HOSTILE = f"""version: 1
name: {json.dumps(HOSTILE_NAME)}
defaults:
  duration: 3
elements:
  keeper:
    description: "\\" onmouseover=\\"window.pwned = 3\\" x=\\""
scenes:
  - id: one
    shots:
      - id: one
        prompt: {json.dumps(HOSTILE_PROMPT)}
        negative_prompt: "<style>body {{ display: none }}</style>"
outputs:
  - path: "renders/cut <script>window.pwned = 4</script>.mp4"
"""


def test_hostile_names_and_prompts_are_shown_as_text(project, browser, tmp_path):
    root = project(HOSTILE)
    tab = open_page(browser, report(root), tmp_path / "hostile.png")
    assert tab.title().startswith(HOSTILE_NAME)
    assert tab.locator("h1").text_content() == HOSTILE_NAME
    facts = shot_facts(tab)["one"]
    assert facts["prompt"] == HOSTILE_PROMPT.replace("@@", "@")
    assert facts["elements"][0][1] == '" onmouseover="window.pwned = 3" x="'
    assert "<style>" in tab.locator(".prompt.negative").text_content()
    assert "<script>" in tab.locator("figure.film").get_attribute("data-film")
    tab.hover("mark.element")
    assert tab.evaluate("() => window.pwned") is None
    assert tab.evaluate("() => document.querySelectorAll('script, img:not(.first-frame)"
                        ":not(.last-frame), style').length") == 1  # the page's own <style>


# -- errors -----------------------------------------------------------------------------------

def test_a_broken_storyboard_is_a_located_error_not_a_traceback(project):
    root = project(chain_storyboard(2).replace("first_frame: { from: previous }",
                                               "first_frame: { from: nowhere }"))
    result = cli("report", root)
    assert result.exit_code == 1
    assert "error: unknown shot 'nowhere'" in result.stderr and "Traceback" not in result.output
    assert not (root / "renders").exists()


def test_a_renders_folder_leading_outside_the_project_is_refused(project, tmp_path):
    root = project(chain_storyboard(1))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "renders").symlink_to(outside)
    result = cli("report", root)
    assert result.exit_code == 1, result.output
    assert "renders leads outside the project" in result.stderr
    assert list(outside.iterdir()) == []


def test_a_folder_where_the_page_goes_is_named_in_the_error(project):
    root = project(chain_storyboard(1))
    (root / "renders" / "report.html").mkdir(parents=True)
    result = cli("report", root)
    assert result.exit_code == 1, result.output
    assert "error: could not write renders/report.html: Is a directory" in result.stderr
    assert sorted(p.name for p in (root / "renders").iterdir()) == ["report", "report.html"]
