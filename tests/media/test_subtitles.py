"""Subtitles: SRT/WebVTT checked against the formats' grammar, voice activity on real audio
(made by ffmpeg with bursts at known times), cue placement."""

from __future__ import annotations

import re
import time
from itertools import pairwise
from pathlib import Path

import pytest

from kling_compose.media.ffmpeg import run_ffmpeg
from kling_compose.media.subtitles import Cue, align, speech_spans, spread, srt, webvtt

BURSTS = [(1.0, 2.0), (3.5, 4.2)]
TOL = 0.06


def _burst_expr(bursts: list[tuple[float, float]], amp: float = 0.25, noise: float = 0.003) -> str:
    """A speech-like burst (two partials, 4 Hz syllable modulation) inside each window, over
    low white noise (about -55 dBFS)."""
    gate = "+".join(f"between(t,{a},{b})" for a, b in bursts) or "0"
    voice = f"{amp}*(0.6+0.4*sin(2*PI*4*t))*(0.7*sin(2*PI*220*t)+0.3*sin(2*PI*660*t))"
    return f"({voice})*({gate})+{noise}*(2*random(0)-1)"


def make_audio(path: Path, bursts: list[tuple[float, float]], seconds: float,
               video: bool = False, noise: float = 0.003) -> Path:
    expr = _burst_expr(bursts, noise=noise).replace(",", "\\,")
    args = ["-f", "lavfi", "-i", f"aevalsrc={expr}:s=48000:d={seconds}"]
    if video:
        args = ["-f", "lavfi", "-i", f"color=c=gray:s=160x120:r=24:d={seconds}", *args,
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-ac", "2", "-shortest"]
    run_ffmpeg([*args, str(path)])
    return path


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("subtitle_audio")


# -- voice activity ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,video", [("bursts.wav", False), ("bursts.mp4", True)])
def test_speech_spans_finds_the_bursts(audio_dir, name, video):
    path = make_audio(audio_dir / name, BURSTS, 5.0, video=video)
    spans = speech_spans(path)
    assert len(spans) == len(BURSTS), spans
    for (a, b), (ea, eb) in zip(spans, BURSTS):
        assert abs(a - ea) <= TOL and abs(b - eb) <= TOL, (spans, BURSTS)


@pytest.mark.parametrize("noise", [0.003, 0.03])
def test_speech_spans_off_the_frame_grid_and_noisier(audio_dir, noise):
    # boundaries between 20 ms frames; background noise up to about -35 dBFS
    bursts = [(1.013, 2.031), (3.507, 4.219)]
    spans = speech_spans(make_audio(audio_dir / f"offgrid{noise}.mp4", bursts, 5.0, video=True,
                                    noise=noise))
    assert len(spans) == 2
    for (a, b), (ea, eb) in zip(spans, bursts):
        assert abs(a - ea) <= TOL and abs(b - eb) <= TOL, spans


def test_speech_spans_window(audio_dir):
    path = make_audio(audio_dir / "window.wav", BURSTS, 5.0)
    spans = speech_spans(path, start_s=3.0, end_s=4.0)
    assert len(spans) == 1
    a, b = spans[0]
    assert abs(a - 3.5) <= TOL and b == 4.0
    assert speech_spans(path, start_s=2.3, end_s=3.3) == []


def test_speech_spans_noise_only_and_silence(audio_dir):
    assert speech_spans(make_audio(audio_dir / "noise.wav", [], 4.0)) == []
    silent = audio_dir / "silence.wav"
    run_ffmpeg(["-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "2", str(silent)])
    assert speech_spans(silent) == []


def test_speech_spans_bridges_short_gaps_and_drops_clicks(audio_dir):
    # two bursts 0.1 s apart (a pause between words) and a 60 ms click
    path = make_audio(audio_dir / "gaps.wav", [(0.5, 1.2), (1.3, 2.0), (3.0, 3.06)], 4.0)
    spans = speech_spans(path)
    assert len(spans) == 1
    assert abs(spans[0][0] - 0.5) <= TOL and abs(spans[0][1] - 2.0) <= TOL


def test_speech_spans_without_audio_stream(audio_dir):
    path = audio_dir / "video_only.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=64x64:r=24:d=1", "-c:v", "libx264",
                "-preset", "ultrafast", str(path)])
    assert speech_spans(path) == []


def test_speech_spans_speed_60s(audio_dir):
    bursts = [(t + 0.5, t + 2.0) for t in range(0, 60, 3)]
    period = make_audio(audio_dir / "period.wav", [(0.5, 2.0)], 3.0)  # looped: aevalsrc is slow
    path = audio_dir / "long.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "color=c=gray:s=160x120:r=24:d=60", "-stream_loop", "19",
                "-i", str(period), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                "yuv420p", "-c:a", "aac", "-ac", "2", "-t", "60", str(path)])
    t = time.perf_counter()
    spans = speech_spans(path)
    took = time.perf_counter() - t
    assert len(spans) == len(bursts)
    assert took < 5.0, took  # ~0.3 s measured (docs/media.md); generous for a loaded machine


# -- the formats ------------------------------------------------------------------------------

SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
SRT_BLOCK = re.compile(rf"^(\d+)\n{SRT_TIME} --> {SRT_TIME}\n((?:[^\n]+\n)+)$")
VTT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})"
VTT_BLOCK = re.compile(rf"^{VTT_TIME} --> {VTT_TIME}\n((?:[^\n]+\n)+)$")


def _secs(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, list[str]]]:
    """A strict SubRip reader: numbered from 1, one blank line between cues, LF."""
    assert text.endswith("\n") and not text.endswith("\n\n")
    cues = []
    for i, block in enumerate(text.split("\n\n"), start=1):
        block = block if block.endswith("\n") else block + "\n"
        m = SRT_BLOCK.match(block)
        assert m, block
        assert int(m.group(1)) == i
        lines = m.group(10).rstrip("\n").split("\n")
        assert all("-->" not in ln for ln in lines)
        cues.append((_secs(*m.group(2, 3, 4, 5)), _secs(*m.group(6, 7, 8, 9)), lines))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, list[str]]]:
    """A strict WebVTT reader for what we write: header, blank line, cues, escaped text."""
    assert text.startswith("WEBVTT\n\n") or text == "WEBVTT\n"
    cues = []
    body = text[len("WEBVTT\n\n"):]
    for block in body.split("\n\n") if body else []:
        block = block if block.endswith("\n") else block + "\n"
        m = VTT_BLOCK.match(block)
        assert m, block
        lines = m.group(9).rstrip("\n").split("\n")
        for ln in lines:
            assert "-->" not in ln
            # no bare '&' or '<' except our entities and the voice span
            stripped = re.sub(r"^<v [^<>&\n]*(?:&(?:amp|lt|gt);[^<>&\n]*)*>|</v>$", "", ln)
            assert re.fullmatch(r"(?:[^&<>]|&(?:amp|lt|gt);)*", stripped), ln
        cues.append((_secs(*m.group(1, 2, 3, 4)), _secs(*m.group(5, 6, 7, 8)), lines))
    return cues


CUES = [
    Cue(4.0, 6.5, "I never left.", "theo"),
    Cue(0.5, 4.3, "You came back.\n\n  (quietly)  ", "mara"),   # overlaps the next; blank line
    Cue(6.5, 6.5, "Tom & <Jerry> --> later", None),            # zero length
    Cue(3661.0004, 3662.0006, "Après l'heure, 東京", "narrator"),
]


def test_srt_conforms_sorted_and_never_overlaps():
    text = srt(CUES)
    cues = parse_srt(text)
    assert [c[2][0] for c in cues] == ["You came back.", "I never left.", "Tom & <Jerry> -> later",
                                       "Après l'heure, 東京"]
    assert cues[0][2] == ["You came back.", "(quietly)"]
    for (s, e, _), nxt in zip(cues, cues[1:] + [None]):
        assert e > s
        if nxt:
            assert e <= nxt[0] and s <= nxt[0]
    assert cues[0][:2] == (0.5, 4.0)  # clamped to the next start
    assert cues[2][:2] == (6.5, 6.501)  # never ends at or before its start
    assert cues[3][:2] == (3661.0, 3662.001)  # rounded half up to the millisecond
    assert "01:01:01,000 --> 01:01:02,001" in text
    text.encode("utf-8")


def test_srt_merges_cues_starting_together():
    cues = parse_srt(srt([Cue(1, 2, "one"), Cue(1, 3, "two"), Cue(2.5, 4, "three")]))
    assert cues == [(1.0, 2.5, ["one", "two"]), (2.5, 4.0, ["three"])]


def test_webvtt_conforms_escapes_and_names_speakers():
    text = webvtt(CUES)
    cues = parse_vtt(text)
    assert [c[:2] for c in cues] == [(0.5, 4.3), (4.0, 6.5), (6.5, 6.501), (3661.0, 3662.001)]
    assert cues[0][2] == ["<v mara>You came back.", "(quietly)</v>"]
    assert cues[2][2] == ["Tom &amp; &lt;Jerry&gt; --&gt; later"]
    assert cues[3][2] == ["<v narrator>Après l'heure, 東京</v>"]
    assert "01:01:01.000 --> 01:01:02.001" in text
    assert webvtt([Cue(0, 1, "x", "A <b> & C")]).endswith("<v A &lt;b&gt; &amp; C>x</v>\n")


def test_empty_and_blank_cues():
    assert srt([]) == "" and webvtt([]) == "WEBVTT\n"
    assert parse_vtt(webvtt([Cue(0, 1, "  \n ")])) == []


# -- placement ---------------------------------------------------------------------------------

LINES = [("You came back.", "mara"), ("I never left, not for one day.", "theo"),
         ("She did not believe him.", "narrator")]


def test_spread_stays_inside_keeps_order_and_weights_words():
    cues = spread(LINES, 10.0, 16.0)
    assert [c.text for c in cues] == [t for t, _ in LINES]
    assert cues[0].start_s == 10.0 and cues[-1].end_s <= 16.0 + 1e-9
    for c, nxt in pairwise(cues):
        assert c.start_s < c.end_s <= nxt.start_s
    d = [c.end_s - c.start_s for c in cues]
    assert d[1] > d[2] > d[0] >= 0.8
    assert [c.speaker for c in cues] == ["mara", "theo", "narrator"]


def test_spread_minimum_and_tight_spans():
    cues = spread([("a", None), ("b c d e f g h i j k l m n o p q r s t", None)], 0.0, 3.0)
    assert cues[0].end_s - cues[0].start_s == pytest.approx(0.8)
    tight = spread(LINES, 0.0, 1.2)  # no room for 3 x 0.8 s: equal parts, inside, in order
    assert tight[0].start_s == 0.0 and tight[-1].end_s <= 1.2 + 1e-9
    assert all(c.start_s < c.end_s for c in tight)
    assert spread(LINES, 5.0, 5.0) == [] and spread([], 0.0, 5.0) == []


def test_align_puts_cue_k_on_burst_k(audio_dir):
    path = make_audio(audio_dir / "dialogue.mp4", [(0.6, 1.6), (2.2, 3.9), (4.5, 5.6)], 6.0,
                      video=True)
    spans = speech_spans(path)
    cues = align(LINES, spans, 0.0, 6.0)
    for c, (a, b) in zip(cues, [(0.6, 1.6), (2.2, 3.9), (4.5, 5.6)]):
        assert abs(c.start_s - a) <= TOL and abs(c.end_s - b) <= TOL, cues


def test_align_groups_and_splits_spans():
    # more spans than lines: the long line takes the spans its words need
    spans = [(0.0, 0.5), (1.0, 1.5), (2.0, 2.5), (3.0, 3.5)]
    two = align([("a", None), ("b c d", None)], spans, 0.0, 4.0, min_s=0)
    assert [(c.start_s, c.end_s) for c in two] == [(0.0, 0.5), (1.0, 3.5)]
    # fewer spans than lines: lines share a span, split by words, in order
    three = align(LINES, [(1.0, 2.0), (3.0, 7.0)], 0.0, 8.0, min_s=0)
    assert three[0].start_s == 1.0 and three[-1].end_s == 7.0
    for c, nxt in pairwise(three):
        assert c.start_s < c.end_s <= nxt.start_s + 1e-9
    # spans outside the shot are ignored; none left -> spread
    assert align(LINES, [(9.0, 10.0)], 0.0, 6.0) == spread(LINES, 0.0, 6.0)


def test_align_lengthens_short_cues_into_silence():
    cues = align([("hi", None), ("there", None)], [(1.0, 1.2), (3.0, 3.3)], 0.0, 3.5)
    assert cues[0].end_s == pytest.approx(1.8) and cues[1].end_s == pytest.approx(3.5)
