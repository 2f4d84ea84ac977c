"""`kling-compose report` of a project that speaks (issue 24): each shot's lines with their
voices, each film playing with its subtitles and showing its measured loudness, opened in
Chromium (test_report.py's `open_page`: offline, no console error, every video decoding).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from _e2e import make_project
from test_report import browser, open_page, report, run  # noqa: F401 (browser: a fixture)

STORYBOARD = """\
version: 1
name: tea
defaults: { aspect: '16:9', duration: 3 }
elements:
  mara: { description: a woman in a green coat, voice_id: "829824295735410756" }
  theo: { description: a tall man, voice: assets/theo-voice.wav }
scenes:
  - id: kitchen
    shots:
      - id: tea
        prompt: "@mara pours tea for @theo"
        first_frame: assets/start.png
        dialogue:
          - { speaker: mara, line: "You came back.", tone: quietly }
          - { speaker: theo, line: "I never left." }
      - id: door
        prompt: the door closes
        first_frame: assets/start.png
        dialogue:
          - { speaker: narrator, line: "She did not believe him." }
outputs:
  - path: renders/film.mp4
    subtitles: [vtt]
    audio: { loudness: -16 }
  - path: renders/social.mp4
    subtitles: [srt]
    sequence: [{ shot: tea, in: 0.2 }, door]
  - path: renders/silent.mp4
    sequence: [door]
"""


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("report-edit") / "film", STORYBOARD)
    from kling_compose.media.ffmpeg import run_ffmpeg

    run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=180:duration=6", "-ac", "1",
                str(root / "assets" / "theo-voice.wav")])
    result = run(root)
    assert result.exit_code == 0, result.output
    report(root)
    return root


@pytest.fixture(scope="module")
def tab(spoken, browser, tmp_path_factory):  # noqa: F811
    return open_page(browser, spoken / "renders" / "report.html",
                     tmp_path_factory.mktemp("screenshots") / "spoken.png")


def test_each_shot_shows_its_lines_and_the_voices_that_say_them(tab):
    lines = tab.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
      'article.shot')].map(a => [a.dataset.shot, [...a.querySelectorAll('li.line')].map(l => [
        l.dataset.speaker, (l.querySelector('.tone') || {}).textContent || null,
        l.querySelector('.words').textContent, l.querySelector('.voice').textContent])]))""")
    assert lines == {
        "tea": [["mara", "(quietly)", "You came back.", "· voice: voice_id 829824295735410756"],
                ["theo", None, "I never left.", "· voice: theo-voice.wav"]],
        "door": [["narrator", None, "She did not believe him.", "· voice: narrator"]]}


def film_facts(tab) -> dict[str, dict]:
    return tab.evaluate("""() => Object.fromEntries([...document.querySelectorAll(
      'figure.film')].map(f => { const v = f.querySelector('video');
        const t = v && v.querySelector('track');
        return [f.dataset.film, {
          track: t ? [t.kind, t.srclang, t.readyState] : null,
          cues: v && v.textTracks.length ? [...v.textTracks[0].cues].map(c => c.text) : [],
          file: (f.querySelector('a.subtitles') || {}).href || null,
          loudness: (f.querySelector('.loudness') || {}).dataset || null,
          listed: [...f.querySelectorAll('li.cue')].map(c => c.textContent.trim()),
        }]; }))""")


def test_each_film_plays_with_its_subtitles_and_shows_its_loudness(spoken, tab):
    tab.wait_for_function("""() => [...document.querySelectorAll('track')]
      .every(t => t.readyState === 2)""")  # loaded, not failed (3)
    films = film_facts(tab)
    said = ["<v mara>You came back.</v>", "<v theo>I never left.</v>",
            "<v narrator>She did not believe him.</v>"]
    # the run's .vtt; for the .srt-only film one written from the cues the run kept
    for path, file_suffix in (("renders/film.mp4", ".vtt"), ("renders/social.mp4", ".cues.vtt")):
        film = films[path]
        assert film["track"] == ["subtitles", "und", 2], film  # loaded by Chromium, from file:
        assert film["cues"] == said, film  # the player has them, each with its speaker
        vtt = Path(unquote(film["file"].removeprefix("file://")))
        assert vtt.name.endswith(file_suffix) and vtt.parent == spoken / "renders" / "report"
        text = vtt.read_text(encoding="utf-8")
        assert text.startswith("WEBVTT") and all(s in text for s in said)
        assert [words(c) for c in film["listed"]] == [
            "mara: You came back.", "theo: I never left.", "narrator: She did not believe him."]
        assert float(film["loudness"]["lufs"]) < 0
    assert (spoken / "renders" / "report" / Path(films["renders/film.mp4"]["file"]).name) \
        .read_bytes() == (spoken / "renders" / "film.vtt").read_bytes()
    assert abs(float(films["renders/film.mp4"]["loudness"]["lufs"]) + 16) <= 1  # normalised
    # a film without a subtitle file has no track (its cues are still listed)
    assert films["renders/silent.mp4"]["track"] is None
    assert [words(c) for c in films["renders/silent.mp4"]["listed"]] == [
        "narrator: She did not believe him."]


def words(listed: str) -> str:
    """A listed cue without its times ("0.14–1.12 s mara: You came back.")."""
    return re.sub(r"^\S+ s\s+", "", listed)


def test_the_page_is_the_same_when_nothing_changed_and_keeps_its_subtitles(spoken):
    page = spoken / "renders" / "report.html"
    before = page.read_bytes()
    report(spoken)
    assert page.read_bytes() == before
    names = sorted(p.name for p in (spoken / "renders" / "report").glob("*.vtt"))
    assert len(names) == 2 and sum(n.endswith(".cues.vtt") for n in names) == 1
