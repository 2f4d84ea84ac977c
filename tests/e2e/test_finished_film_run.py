"""Issue 24 end to end on the free preview: one storyboard with two characters' dialogue gives
the film, its subtitles, its mix at a measured loudness and its other deliverables, each
checked on the files the run wrote (ffmpeg and PyAV, not the renderer's own account)."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from array import array
from pathlib import Path

import av
import pytest
from support.projects import PREVIEW, cli, clone_project, make_project, run_json

from kling_compose.media.ffmpeg import ffmpeg_exe, probe
from kling_compose.media.mix import measure

STORYBOARD = """\
version: 1
name: tea
defaults: { aspect: "16:9" }
elements:
  mara: { description: a woman in a green coat }
  theo: { description: a tall man }
scenes:
  - id: kitchen
    shots:
      - id: quiet
        prompt: The kitchen at night, nobody there
        duration: 4
      - id: tea
        prompt: "@mara pours tea for @theo"
        duration: 5
        framing: { focus: [0.3, 0.5] }
        dialogue:
          - { speaker: mara, line: "You came back.", tone: quietly }
          - { speaker: theo, line: "I never left." }
      - id: door
        duration: 6
        multi_prompt:
          - prompt: "@theo opens the door"
            duration: 3
            dialogue: [{ speaker: narrator, line: "She did not believe him." }]
          - { prompt: "@mara watches him go", duration: 3 }
outputs:
  - path: renders/film.mp4
    subtitles: [srt, vtt]
    audio: { music: assets/theme.wav, music_gain: -20, duck: 12, loudness: -16 }
  - path: renders/vertical.mp4
    aspect: "9:16"
    subtitles: [srt]
    burn_in: true
  - path: renders/square.mp4
    aspect: "1:1"
    reframe: pad
  - path: renders/cut.mp4
    sequence:
      - { title: "NIGHT SHIFT", duration: 2, subtitle: "a kitchen story" }
      - { shot: tea, in: 0.5, out: 4.5, transition: { dip: 0.5 } }
      - { shot: door, out: 5 }
"""
SHOTS = {"quiet": (0.0, 4.0), "tea": (4.0, 9.0), "door": (9.0, 15.0)}  # film.mp4, seconds


def _theme(path: Path, seconds: float = 3.0) -> None:
    """A quiet two-note theme (shorter than the film: the bed loops it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"sine=frequency=523:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency=659:duration={seconds}", "-filter_complex",
                    "amix=inputs=2,volume=0.5", "-ar", "48000", "-ac", "2", str(path)],
                   check=True)


def _mono(path: Path, start: float, end: float) -> tuple[int, array]:
    """The film's sound between two times, mixed to mono floats, and its rate."""
    rate = 48_000
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    samples = array("f")
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.audio[0]):
            for out in resampler.resample(frame):
                samples.frombytes(bytes(out.planes[0])[:out.samples * 4])
    return rate, samples[int(start * rate):int(end * rate)]


def _rms_db(path: Path, start: float, end: float) -> float:
    """The film's sound level between two times (dBFS)."""
    _, samples = _mono(path, start, end)
    power = sum(x * x for x in samples) / max(1, len(samples))
    return 10 * math.log10(power) if power else -120.0


def _cues(srt: str) -> list[tuple[float, float, str]]:
    found = []
    for block in srt.strip().split("\n\n"):
        number, times, *text = block.splitlines()
        assert number.isdigit()
        a, b = (sum(float(x) * f for x, f in zip(re.split("[:,]", t)[:3], (3600, 60, 1)))
                + int(t[-3:]) / 1000 for t in times.split(" --> "))
        found.append((a, b, " ".join(text)))
    return found


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("film"), STORYBOARD)
    _theme(root / "assets" / "theme.wav")
    summary = run_json(root)
    assert summary["failed"] == 0, summary
    return root, summary


def test_the_film_its_subtitles_and_its_measured_loudness(made):
    root, summary = made
    srt = (root / "renders" / "film.srt").read_text(encoding="utf-8")
    vtt = (root / "renders" / "film.vtt").read_text(encoding="utf-8")
    cues = _cues(srt)
    assert [text for _, _, text in cues] == ["You came back.", "I never left.",
                                             "She did not believe him."]
    # in order, and each inside the shot (the segment) that speaks it
    assert all(a < b for a, b, _ in cues)
    assert all(cues[i][1] <= cues[i + 1][0] for i in range(len(cues) - 1))
    spans = [SHOTS["tea"], SHOTS["tea"], (9.0, 12.0)]
    for (a, b, text), (lo, hi) in zip(cues, spans):
        assert lo <= a and b <= hi + 1e-3, text
    assert vtt.startswith("WEBVTT\n") and "<v mara>You came back.</v>" in vtt
    # the target reached, measured here on the written file
    loudness = measure(root / "renders" / "film.mp4")
    assert abs(loudness.integrated_lufs - (-16)) <= 1.0
    assert loudness.true_peak_dbtp < -1.0
    (film,) = [o for o in summary["outputs"] if o["path"] == "renders/film.mp4"]
    assert abs(film["loudness_lufs"] - loudness.integrated_lufs) <= 0.2
    assert film["true_peak_db"] < -1.0
    assert film["subtitles"] == ["renders/film.srt", "renders/film.vtt"]


def test_the_music_is_heard_where_nobody_speaks_and_dips_under_dialogue(made):
    root, _ = made
    film = root / "renders" / "film.mp4"
    plain = root / "renders" / "square.mp4"  # the same clips, no music
    silent_shot = _rms_db(film, 1.0, 3.0)  # `quiet`: the preview's clip has no speech
    assert silent_shot > _rms_db(plain, 1.0, 3.0) + 20  # the bed is there
    # under a line the music dips: the music's own pitch (523 Hz, which no speaker's tone
    # has) is measured in the mixed film, so the speech on top does not hide the dip
    start, end, _ = _cues((root / "renders" / "film.srt").read_text(encoding="utf-8"))[0]
    under = _band_db(film, 523, start + 0.15, end - 0.15)  # inside the line, past the ramp
    heard = _band_db(film, 523, 2.2, 3.9)  # after the bed's 2 s fade in, before `tea`
    assert heard > under + 8  # 12 dB asked


def _band_db(path: Path, hz: float, start: float, end: float) -> float:
    """The level of one frequency in a stretch of the film (a Goertzel filter, dB)."""
    rate, samples = _mono(path, start, end)
    k = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return 10 * math.log10(power / len(samples) ** 2 + 1e-20)


def test_a_vertical_crop_and_a_padded_square_are_the_right_size_and_length(made):
    root, _ = made
    film = probe(root / "renders" / "film.mp4")
    for name, (w, h) in (("vertical", (9, 16)), ("square", (1, 1))):
        info = probe(root / "renders" / f"{name}.mp4")
        width, height = info.video_params[2:4]
        assert abs(width - height * w / h) <= 2, name  # even sizes: at most 2 px off
        assert abs(info.video_duration_s - film.video_duration_s) <= 1 / 24 + 1e-6
    width, height = film.video_params[2:4]
    vertical = probe(root / "renders" / "vertical.mp4")
    assert vertical.video_params[3] == height  # cropped: the film's height kept
    square = probe(root / "renders" / "square.mp4")
    assert square.video_params[2] == width  # padded: the film's width kept
    assert (root / "renders" / "vertical.srt").is_file()


def test_a_trimmed_sequence_with_a_dip_and_a_title_lasts_the_sum_of_its_parts(made):
    root, _ = made
    info = probe(root / "renders" / "cut.mp4")
    assert abs(info.video_duration_s - (2 + (4.5 - 0.5) + 5)) <= 1 / 24 + 1e-6


def test_a_second_run_makes_nothing_and_new_music_remixes_only_its_film(made, tmp_path):
    root, _ = made
    copy = shutil.copytree(root, tmp_path / "copy")
    again = run_json(copy)
    assert again["nothing_to_do"], again
    _theme(copy / "assets" / "theme.wav", seconds=2.0)
    remixed = run_json(copy)
    ran = {t["id"] for t in remixed["tasks"] if t["status"] == "done"}
    assert ran == {"assemble:renders/film.mp4"}


def test_a_teammate_s_clone_makes_the_same_films_without_generating(made, tmp_path):
    root, _ = made
    clone = clone_project(root, tmp_path / "clone")
    shutil.copytree(root / ".kling-compose" / "objects", clone / ".kling-compose" / "objects")
    # the preview's records travel with the objects here (they are not in the lock: issue 26)
    shutil.copy(root / ".kling-compose" / "rehearsal.storyboard.lock",
                clone / ".kling-compose" / "rehearsal.storyboard.lock")
    result = run_json(clone)
    assert result["generated"] == 0 and result["failed"] == 0, result
    assert (clone / "renders" / "film.srt").read_text() == \
        (root / "renders" / "film.srt").read_text()
    assert cli("validate", clone / "storyboard.yaml").exit_code == 0


def test_the_preview_run_has_no_traceback_in_its_table(made):
    root, _ = made
    result = cli("run", root, *PREVIEW)
    assert result.exit_code == 0 and "Traceback" not in result.output
    assert re.search(r"film: .*film\.mp4 \(-1[56](\.\d)? LUFS, true peak -[\d.]+ dBTP, "
                     r"renders/film\.srt, renders/film\.vtt\)", result.output), result.output


def test_a_silent_film_is_reported_silent_in_valid_json(tmp_path):
    root = make_project(tmp_path, """\
version: 1
name: quiet
scenes:
  - id: a
    shots:
      - { id: one, prompt: A kettle, duration: 3 }
outputs:
  - { path: renders/quiet.mp4, aspect: "1:1", reframe: pad }
""")
    result = cli("run", root, "--json", *PREVIEW)
    assert result.exit_code == 0 and "Infinity" not in result.stdout  # not JSON
    (film,) = run_json(root)["outputs"]
    assert film["silent"] is True and "loudness_lufs" not in film
    assert "(silent)" in cli("run", root, *PREVIEW).output
