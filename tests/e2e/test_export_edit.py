"""`kling-compose export` of an edited film (issue 24): a preview run of an output with a
title card, trims, dips, a crossfade, music and dialogue, its timeline read back with
OpenTimelineIO and checked against the film itself and the files the run wrote beside it.

As in test_export.py, the shots start from black and white stills, so the film's brightness
tells, frame by frame, where each dip fades up into a white shot and where the crossfade
blends: the timeline's cuts and transitions are checked against those frames, its length
against the film's frame count, its markers against the subtitle file.
"""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import opentimelineio as otio
import pytest
from _e2e import PREVIEW, cli, make_project
from test_export import brightness, clips_of, is_black, is_white, read, write_stills

from kling_compose.media.ffmpeg import probe, run_ffmpeg

FPS = 24
STORYBOARD = """\
version: 1
name: handoff
defaults: { aspect: '16:9' }
elements:
  mara: { description: a woman in a green coat, voice_id: "829824295735410756" }
scenes:
  - id: main
    shots:
      - id: s1
        prompt: "@mara in a black night"
        duration: 3
        first_frame: assets/black.png
        dialogue:
          - { speaker: mara, line: "You came back.", tone: quietly }
          - { speaker: narrator, line: "She did not believe him." }
      - { id: s2, prompt: a white morning, duration: 4, first_frame: assets/white.png }
outputs:
  - path: renders/edit.mp4
    subtitles: [srt, vtt]
    audio: { music: assets/theme.wav, music_gain: -12 }
    fade_out: 0.5
    sequence:
      - { title: "THE NIGHT", subtitle: "a test", duration: 1 }
      - { shot: s2, in: 0.5, out: 3.5, transition: { dip: 0.5 } }
      - { shot: s1, in: 0.25, transition: { crossfade: 0.5 } }
      - { shot: s2, out: 2, transition: { dip: 0.4 } }
  - path: renders/plain.mp4
    sequence: [s2, s2]
"""
# the edit in frames at 24 fps: the card 24, s2 from frame 12 to 84 (72), s1 from frame 6 to
# its end (66) overlapping s2 by 12, s2 from 0 to 48; dips of 12 (6 out, 6 up) and 10 (5 + 5)
CARD, S2_IN, S2_FRAMES, S1_IN, S1_FRAMES, XFADE, LAST = 24, 12, 72, 6, 66, 12, 48
FILM_FRAMES = CARD + S2_FRAMES + S1_FRAMES - XFADE + LAST  # 198: dips and cards keep length
FADE_OUT = 12  # the film's last 0.5 s fade to black


def film_of(root: Path, name: str = "edit") -> Path:
    """The film the run assembled, from the store (the sha256 its timeline names)."""
    from kling_compose.paths import ProjectPaths
    from kling_compose.project.store import Store

    timeline, _video = read(root / "renders" / f"{name}.otio")
    return Store(ProjectPaths(root).state).path(timeline.metadata["kling_compose"]["sha256"],
                                                ".mp4")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One preview run of the storyboard, its timelines exported as OTIO and EDL."""
    root = make_project(tmp_path_factory.mktemp("export-edit") / "film", STORYBOARD)
    write_stills(root)
    run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=220:duration=4", "-ac", "2",
                str(root / "assets" / "theme.wav")])  # 4 s: the bed loops under the film
    result = cli("run", root, "-q", *PREVIEW)
    assert result.exit_code == 0, result.output
    for fmt in ("otio", "edl"):
        exported = cli("export", root, "--format", fmt)
        assert exported.exit_code == 0, exported.output
    return root


def items(track) -> list[tuple]:
    """The track as (kind, name, source in, frames, record in) and transitions as
    ("T", name, in_offset, out_offset)."""
    out = []
    for item in track:
        if isinstance(item, otio.schema.Transition):
            out.append(("T", item.name, item.in_offset.value, item.out_offset.value))
        else:
            out.append((type(item).__name__, item.name, item.source_range.start_time.value,
                        item.source_range.duration.value,
                        item.range_in_parent().start_time.value))
    return out


def test_the_edited_timeline_follows_the_edit_and_is_the_film(made):
    root = made
    film = film_of(root)
    timeline, video = read(root / "renders" / "edit.otio")
    info, luma = probe(film), brightness(film)
    assert info.frame_count == len(luma) == FILM_FRAMES
    assert video.duration().value == FILM_FRAMES and video.duration().rate == FPS
    assert timeline.duration().value == FILM_FRAMES
    # the card, the trimmed shots, a dip (fade out to a zero-length black gap, fade up), the
    # crossfade centred on its cut (6 frames each side), the second dip
    s2_at, s1_at = CARD, CARD + S2_FRAMES - XFADE // 2
    last_at = CARD + S2_FRAMES + S1_FRAMES - XFADE
    assert items(video) == [
        ("Clip", "THE NIGHT", 0, CARD, 0),
        ("T", "dip THE NIGHT -> s2: out", 6, 0),
        ("Gap", "black (dip THE NIGHT -> s2)", 6, 0, s2_at),
        ("T", "dip THE NIGHT -> s2: in", 0, 6),
        ("Clip", "s2", S2_IN, S2_FRAMES - XFADE // 2, s2_at),
        ("T", "crossfade s2 -> s1", 6, 6),
        ("Clip", "s1", S1_IN + XFADE // 2, S1_FRAMES - XFADE // 2, s1_at),
        ("T", "dip s1 -> s2: out", 5, 0),
        ("Gap", "black (dip s1 -> s2)", 5, 0, last_at),
        ("T", "dip s1 -> s2: in", 0, 5),
        ("Clip", "s2", 0, LAST, last_at),
        ("T", "fade out", FADE_OUT, 0),
        ("Gap", "black (fade out)", FADE_OUT, 0, FILM_FRAMES)]
    # read off the film: the black card; each dip fades up into white s2 over its second half
    # (not yet white on the cut + up - 1, white from cut + up); the crossfade blends white s2
    # into black s1 from s1's first frame (cut - 6) for 12 frames
    assert all(not is_white(v) for v in luma[:CARD])
    for cut, up in ((s2_at, 6), (last_at, 5)):
        assert not is_white(luma[cut + up - 1]) and is_white(luma[cut + up])
        assert luma[cut] < luma[cut + up - 1]  # brightening
    assert is_black(luma[s2_at - 1])
    start = s1_at - XFADE // 2
    assert is_white(luma[start]) and is_black(luma[start + XFADE])
    assert all(not is_white(luma[f]) and not is_black(luma[f])
               for f in range(start + 1, start + XFADE))
    assert all(is_white(luma[f]) for f in range(s2_at + 6, start + 1))
    assert all(is_black(luma[f]) for f in range(start + XFADE, last_at))
    assert all(is_white(luma[f]) for f in range(last_at + 5, FILM_FRAMES - FADE_OUT))
    # the fade out: its 12 frames go down from white (still full on its first) to black
    fade = luma[FILM_FRAMES - FADE_OUT:]
    assert is_white(fade[0]) and not is_white(fade[1]) and is_black(fade[-1])
    assert all(a > b for a, b in pairwise(fade[1:]))


def test_the_title_card_is_a_named_black_generator_clip(made):
    _timeline, video = read(made / "renders" / "edit.otio")
    card = clips_of(video)[0]
    assert card.name == "THE NIGHT"
    reference = card.media_reference
    assert isinstance(reference, otio.schema.GeneratorReference)
    assert reference.generator_kind == "SolidColor"
    assert (reference.parameters["title"], reference.parameters["subtitle"],
            reference.parameters["color"]) == ("THE NIGHT", "a test", "black")
    assert card.metadata["cmx_3600"]["reel"] == "BL"
    assert card.metadata["kling_compose"]["duration_s"] == 1


def test_the_shots_carry_their_trims_and_point_at_the_takes(made):
    root = made
    _timeline, video = read(root / "renders" / "edit.otio")
    shots = [c for c in clips_of(video) if c.name in ("s1", "s2")]
    for clip in shots:
        assert clip.media_reference.target_url == f"shots/{clip.name}.mp4"
        assert (root / "renders" / clip.media_reference.target_url).is_file()
    meta = [c.metadata["kling_compose"] for c in shots]
    assert [(m["in_s"], m["out_s"], m["in_frame"], m["transition"]) for m in meta] == [
        (0.5, 3.5, 12, "dip"), (0.25, None, 6, "crossfade"), (0.0, 2.0, 0, "dip")]
    assert [dict(line) for line in meta[1]["dialogue"]] == [  # OTIO's AnyVector, AnyDictionary
        {"speaker": "mara", "line": "You came back.", "tone": "quietly"},
        {"speaker": "narrator", "line": "She did not believe him.", "tone": None}]


def test_the_sound_the_music_and_the_dialogue(made):
    root = made
    timeline, video = read(root / "renders" / "edit.otio")
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    assert [t.name for t in audio] == ["A1", "A2"]
    a1, a2 = audio
    # A1: the clips' sound where the picture has them, silence under the card
    assert items(a1) == [("Gap", "THE NIGHT (title card: silence)", 0, CARD, 0),
                         *items(video)[1:]]
    assert a1.duration() == video.duration()
    # A2: the music file from its start, looped (4 s = 96 frames) for the film's length
    assert [(c.name, c.source_range.start_time.value, c.source_range.duration.value)
            for c in a2] == [("theme.wav", 0, 96), ("theme.wav", 0, 96),
                             ("theme.wav", 0, FILM_FRAMES - 192)]
    assert a2.duration().value == FILM_FRAMES
    music = a2[0].metadata["kling_compose"]
    assert (music["music"], music["gain_db"], music["duck_db"]) == ("assets/theme.wav", -12, 10)
    assert a2[0].media_reference.target_url == "../assets/theme.wav"
    # the dialogue: one marker per subtitle, named by its speaker, over its frames
    subtitles = parse_srt((root / "renders" / "edit.srt").read_text(encoding="utf-8"))
    assert [s[2] for s in subtitles] == ["You came back.", "She did not believe him."]
    markers = list(timeline.tracks.markers)
    assert [(m.name, m.comment) for m in markers] == [
        ("mara", "You came back."), ("narrator", "She did not believe him.")]
    for marker, (start, end, _text) in zip(markers, subtitles):
        rng = marker.marked_range
        assert rng.start_time.value == round(start * FPS)
        assert rng.end_time_exclusive().value == round(end * FPS)
    # the mara line is said in s1, after its trim: inside s1's place in the film
    s1 = next(c for c in clips_of(video) if c.name == "s1")
    placed = s1.range_in_parent()
    assert placed.start_time.value - XFADE // 2 <= markers[0].marked_range.start_time.value \
        < placed.end_time_exclusive().value
    # the subtitle files beside the film, named in the timeline
    meta = timeline.metadata["kling_compose"]
    assert meta["subtitles"] == {"srt": "edit.srt", "vtt": "edit.vtt"}
    assert all((root / "renders" / f).is_file() for f in meta["subtitles"].values())
    assert meta["cues"] == 2 and meta["music"]["track"] == "A2"
    assert meta["frames"] == FILM_FRAMES and meta["edited"] is True
    assert isinstance(meta["loudness_lufs"], float) and isinstance(meta["true_peak_db"], float)


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        h, m, s = stamp.replace(",", ".").split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)

    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        start, end = re.split(r"\s+-->\s+", lines[1])
        cues.append((seconds(start), seconds(end), " ".join(lines[2:])))
    return cues


def test_the_edl_has_black_for_the_card_and_the_dips(made):
    root = made
    text = (root / "renders" / "edit.edl").read_text()
    events = [line.split() for line in text.splitlines() if line[:3].isdigit()]
    assert events[0][:4] == ["001", "BL", "V", "C"]  # the title card
    assert "* FROM CLIP NAME:  THE NIGHT" in text
    # each dip: a dissolve to BL (the fade out) and one from BL (the fade up)
    dissolves = [(e[1], e[4]) for e in events if e[3] == "D"]
    assert dissolves == [("BL", "006"), ("S2", "006"), ("S1", "012"), ("BL", "005"),
                         ("S2", "005"), ("BL", "012")]  # the last: the film's fade out
    assert not any(e for e in events if "-" in "".join(e[4:]))  # no negative timecode
    _timeline, video = read(root / "renders" / "edit.edl", rate=FPS)
    assert video.duration().value == FILM_FRAMES


def test_a_plain_film_beside_it_exports_as_before(made):
    """An output with no edit of its own (whole clips, cuts) is the plain timeline: no
    music track, no markers, no edit metadata."""
    timeline, video = read(made / "renders" / "plain.otio")
    assert [t.name for t in timeline.tracks] == ["V1", "A1"]
    assert not list(timeline.tracks.markers)
    assert "edited" not in timeline.metadata["kling_compose"]
    assert [(c.name, c.source_range.start_time.value) for c in clips_of(video)] == [
        ("s2", 0), ("s2", 0)]
    assert video.duration().value == probe(made / "renders" / "plain.mp4").frame_count
    assert "in_s" not in clips_of(video)[0].metadata["kling_compose"]


def test_markers_and_music_are_not_on_the_edl(made):
    text = (made / "renders" / "edit.edl").read_text()
    assert "theme.wav" not in text and "You came back." not in text
    assert Path(made / "renders" / "edit.otio").is_file()


def test_the_film_beside_the_timeline_is_the_film_it_describes(made):
    """renders/edit.mp4 is the assembled film (not another of the run's artifacts, such as
    its cues file, exported over it)."""
    from kling_compose.project.store import file_sha256

    timeline, _video = read(made / "renders" / "edit.otio")
    meta = timeline.metadata["kling_compose"]
    assert file_sha256(made / "renders" / meta["film"]) == meta["sha256"]
