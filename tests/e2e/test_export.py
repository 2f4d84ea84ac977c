"""`kling-compose export` end to end: a preview run, its timelines read back with
OpenTimelineIO, and every clip, in point, duration and crossfade checked against the
assembled film itself (its frames, decoded).

The shots start from solid black and white stills, alternating, so the film's brightness
tells, frame by frame, which shot is on screen and where a crossfade blends them: the
oracle the timelines are checked against is the film, not the exporter's arithmetic.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import opentimelineio as otio
import pytest
from PIL import Image, ImageStat

from kling_compose.media.ffmpeg import probe

from _e2e import PREVIEW, cli, make_project
from support.locks import read_lock, rehearsal_lock

FPS = 24
STORYBOARD = """\
version: 1
name: handoff
defaults: { aspect: '16:9' }
scenes:
  - id: main
    shots:
      - { id: s1, prompt: a black night, duration: 3, first_frame: assets/black.png }
      - { id: s2, prompt: a white morning, duration: 4, first_frame: assets/white.png }
      - { id: s3, prompt: night again, duration: 3, first_frame: assets/black.png }
outputs:
  - path: renders/fade.mp4
    transition: { crossfade: 0.3 }
  - path: renders/cut.mov
    sequence: [s2, s1, s2, s3]
"""
WHITE = {"s1": False, "s2": True, "s3": False}
PROMPTS = {"s1": "a black night", "s2": "a white morning", "s3": "night again"}


def write_stills(root: Path) -> None:
    for name, value in (("black", 0), ("white", 255)):
        Image.new("RGB", (320, 180), (value,) * 3).save(root / "assets" / f"{name}.png")


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One preview run of the storyboard, shared by the tests (which only add timelines)."""
    root = make_project(tmp_path_factory.mktemp("export") / "film", STORYBOARD)
    write_stills(root)
    result = cli("run", root, "-q", *PREVIEW)
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def exported(made):
    result = cli("export", made)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(made / "renders" / "fade.otio"),
                                     str(made / "renders" / "cut.otio")]
    return made


def brightness(film: Path) -> list[float]:
    """The mean luma of the top half of each frame (the bottom has the shot's caption)."""
    with av.open(str(film)) as container:
        return [ImageStat.Stat(f.to_image().convert("L").crop(
            (0, 0, f.width, f.height // 2))).mean[0] for f in container.decode(video=0)]


def frames(path: Path, wanted: set[int]) -> dict[int, bytes]:
    """The decoded RGB of the frames numbered in `wanted`."""
    with av.open(str(path)) as container:
        return {i: f.to_image().tobytes()
                for i, f in enumerate(container.decode(video=0)) if i in wanted}


def is_white(luma: float) -> bool:
    return luma > 250


def is_black(luma: float) -> bool:
    return luma < 5


def pure(luma: float, shot: str) -> bool:
    return is_white(luma) if WHITE[shot] else is_black(luma)


def read(path: Path, **kwargs):
    timeline = otio.adapters.read_from_file(str(path), **kwargs)
    video = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    assert len(video) == 1
    return timeline, video[0]


def clips_of(track) -> list:
    return [c for c in track if isinstance(c, otio.schema.Clip)]


def film_frame_of_media_zero(clip) -> int:
    """The film frame showing the clip's media frame 0 (record in minus source in)."""
    return int(clip.range_in_parent().start_time.value - clip.source_range.start_time.value)


def check_against_lock(root: Path, clip, shot: str) -> None:
    lock = read_lock(rehearsal_lock(root))["shots"][shot]
    meta = clip.metadata["kling_compose"]
    assert meta["shot"] == shot and clip.name == shot
    assert (meta["provider"], meta["model"], meta["cost_usd"], meta["task_id"]) == (
        lock["provider"], lock["model"], lock["cost_usd"], lock["task_id"])
    assert meta["sha256"] == lock["sha256"][lock["pick"] - 1]
    assert (meta["prompt"], meta["scene"], meta["take"]) == (PROMPTS[shot], "main", 1)


def check_media(root: Path, otio_file: Path, clip, shot: str) -> Path:
    """The clip's media reference: relative to the export file, the shot's exported take,
    its available range the file's own frames."""
    url = clip.media_reference.target_url
    assert url == f"shots/{shot}.mp4"  # beside renders/<film>.otio
    media = otio_file.parent / url
    assert media.resolve() == (root / "renders" / "shots" / f"{shot}.mp4").resolve()
    assert media.is_file()
    info = probe(media)
    available = clip.media_reference.available_range
    assert (available.start_time.value, available.duration.value) == (0, info.frame_count)
    assert available.duration.rate == FPS == float(info.fps)
    return media


def test_the_crossfaded_film_is_its_timeline(exported):
    root = exported
    film = root / "renders" / "fade.mp4"
    timeline, video = read(root / "renders" / "fade.otio")
    clips, transitions = clips_of(video), [t for t in video
                                           if isinstance(t, otio.schema.Transition)]
    assert [c.name for c in clips] == ["s1", "s2", "s3"] and len(transitions) == 2
    info, luma = probe(film), brightness(film)
    # the whole timeline is the film: every frame, and its length in seconds within a frame
    assert video.duration().rate == FPS and video.duration().value == info.frame_count
    assert abs(video.duration().to_seconds() - info.video_duration_s) <= 1 / FPS
    assert timeline.duration().value == info.frame_count == len(luma)
    for clip in clips:
        check_against_lock(root, clip, clip.name)
        check_media(root, root / "renders" / "fade.otio", clip, clip.name)
    # each crossfade, read off the film: the outgoing shot is pure up to frame `start` (where
    # the incoming shot's frame 0 is laid under it), blended after, the incoming one pure
    # from `start + overlap`
    alone_from = 0  # the first frame of the film where shot `a` is on screen alone
    for a, transition, b in zip(clips, transitions, clips[1:]):
        start = film_frame_of_media_zero(b)
        overlap = int(transition.in_offset.value + transition.out_offset.value)
        assert overlap == 7  # 0.3 s at 24 fps
        assert pure(luma[start], a.name) and pure(luma[start + overlap], b.name)
        assert not pure(luma[start + 1], a.name) and not pure(luma[start + overlap - 1], b.name)
        assert all(not pure(luma[f], a.name) and not pure(luma[f], b.name)
                   for f in range(start + 1, start + overlap))
        # the transition sits on the cut: in_offset before it, out_offset after it
        cut = int(b.range_in_parent().start_time.value)
        assert cut - transition.in_offset.value == start
        assert transition.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
        # the outgoing clip plays to its last frame inside the transition
        a_end = film_frame_of_media_zero(a) + probe(root / "renders" / "shots" /
                                                     f"{a.name}.mp4").frame_count
        assert a_end == start + overlap
        # between crossfades each shot is on screen alone
        assert all(pure(luma[f], a.name) for f in range(alone_from, start + 1))
        alone_from = start + overlap
    assert film_frame_of_media_zero(clips[0]) == 0 == clips[0].source_range.start_time.value
    last = clips[-1]
    assert last.range_in_parent().end_time_exclusive().value == info.frame_count
    assert last.source_range.end_time_exclusive().value == probe(
        root / "renders" / "shots" / "s3.mp4").frame_count
    # the sound: an audio track with the same clips, ranges and crossfades
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio][0]
    assert [(c.name, c.source_range) for c in clips_of(audio)] == [
        (c.name, c.source_range) for c in clips]
    assert audio.duration() == video.duration()
    meta = timeline.metadata["kling_compose"]
    assert meta["output"] == "renders/fade.mp4" and meta["frames"] == info.frame_count
    assert meta["film"] == "fade.mp4" and meta["fps"] == "24"


def test_the_cut_film_is_its_timeline_frame_for_frame(exported):
    root = exported
    film = root / "renders" / "cut.mov"
    otio_file = root / "renders" / "cut.otio"
    _timeline, video = read(otio_file)
    clips = clips_of(video)
    assert [c.name for c in clips] == ["s2", "s1", "s2", "s3"]
    assert not [t for t in video if isinstance(t, otio.schema.Transition)]
    info, luma = probe(film), brightness(film)
    assert video.duration().value == info.frame_count == len(luma)
    assert abs(video.duration().to_seconds() - info.video_duration_s) <= 1 / FPS
    # the shots alternate black and white: every cut is a change of brightness, on its frame
    changes = [f for f in range(1, len(luma)) if is_white(luma[f]) != is_white(luma[f - 1])]
    assert changes == [int(c.range_in_parent().start_time.value) for c in clips[1:]]
    # the video is stream-copied: the film's frames are the clips' frames, bit for bit
    wanted = {}
    for clip in clips:
        check_against_lock(root, clip, clip.name)
        media = check_media(root, otio_file, clip, clip.name)
        first = int(clip.source_range.start_time.value)
        count = int(clip.source_range.duration.value)
        assert (first, count) == (0, probe(media).frame_count)
        rec = int(clip.range_in_parent().start_time.value)
        wanted.setdefault(media, {}).update({first: rec, first + count - 1: rec + count - 1})
    film_frames = frames(film, {f for pairs in wanted.values() for f in pairs.values()})
    for media, pairs in wanted.items():
        clip_frames = frames(media, set(pairs))
        for source, record in pairs.items():
            assert clip_frames[source] == film_frames[record], (media.name, source, record)


def test_the_edl_has_the_same_events(exported, tmp_path):
    root = exported
    result = cli("export", root, "--format", "edl")
    assert result.exit_code == 0, result.output
    for name, sequence, dissolves in (("fade", ["s1", "s2", "s3"], 2),
                                      ("cut", ["s2", "s1", "s2", "s3"], 0)):
        edl = root / "renders" / f"{name}.edl"
        text = edl.read_text()
        assert text.startswith(f"TITLE: {name}\n")
        events = [line.split() for line in text.splitlines() if line[:3].isdigit()]
        assert all(len(e[1]) <= 8 for e in events)  # CMX 3600 reel names
        assert f"* FROM CLIP: shots/{sequence[0]}.mp4" in text
        _timeline, video = read(edl, rate=FPS)
        film = probe(root / "renders" / ("fade.mp4" if name == "fade" else "cut.mov"))
        assert video.duration().value == film.frame_count
        clips = clips_of(video)
        assert [c.name for c in clips] == sequence
        transitions = [t for t in video if isinstance(t, otio.schema.Transition)]
        assert len(transitions) == dissolves
        _, ours = read(root / "renders" / f"{name}.otio")
        for theirs, mine in zip(clips, clips_of(ours)):
            # an EDL starts each dissolve on the cut; where each shot's frame 0 lands is kept
            assert film_frame_of_media_zero(theirs) == film_frame_of_media_zero(mine)
        for transition in transitions:
            assert transition.in_offset.value == 0 and transition.out_offset.value == 7
    out = tmp_path / "premiere.edl"
    premiere = cli("export", root, "--format", "edl", "--output", "fade", "--edl-style",
                   "premiere", "-o", out)
    assert premiere.exit_code == 0, premiere.output
    text = out.read_text()
    assert {line.split()[1] for line in text.splitlines() if line[:3].isdigit()} == {"AX"}
    assert "FROM CLIP:" not in text and "* FROM CLIP NAME:  s1.mp4" in text


def test_reel_names_are_distinct_and_at_most_8_characters():
    from kling_compose.commands.export import reel_names

    assert reel_names(["harbour-wide", "harbour-wider", "s1", "harbour-wide", "_"]) == {
        "harbour-wide": "HARBOURW", "harbour-wider": "HARBOUR2", "s1": "S1", "_": "SHOT"}


def test_one_film_to_a_file_of_ones_choice(exported, tmp_path):
    root = exported
    out = tmp_path / "edit room" / "cut.otio"
    result = cli("export", root, "--output", "cut", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    _, video = read(out)
    for clip in clips_of(video):
        assert (out.parent / clip.media_reference.target_url).resolve() == \
            (root / "renders" / "shots" / f"{clip.name}.mp4").resolve()
    several = cli("export", root, "-o", tmp_path / "x.otio")
    assert several.exit_code == 1 and "-o/--out writes one file" in several.stderr
    unknown = cli("export", root, "--output", "cutt")
    assert unknown.exit_code == 1 and "did you mean 'cut'?" in unknown.stderr
    assert cli("export", root, "--format", "aaf").exit_code == 2


def test_a_clip_that_is_not_the_films_is_refused(exported, tmp_path):
    root = shutil.copytree(exported, tmp_path / "copy")
    shot = root / "renders" / "shots" / "s2.mp4"
    shutil.copy(root / "renders" / "shots" / "s1.mp4", shot)
    result = cli("export", root)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "renders/shots/s2.mp4 is not the clip the film was made from" in result.stderr
    assert cli("run", root, "-q", *PREVIEW).exit_code == 0  # writes the picked take again
    assert cli("export", root).exit_code == 0


def test_a_film_not_assembled_yet_is_refused_with_what_to_do(tmp_path):
    root = make_project(tmp_path / "film", STORYBOARD)
    write_stills(root)
    never = cli("export", root, *PREVIEW)
    assert never.exit_code == 1 and "Traceback" not in never.output
    assert "renders/fade.mp4 is not assembled yet: no finished clip for shot(s) s1, s2, s3" \
        in never.stderr
    assert "run `kling-compose run --preview-resolution 144` first" in never.stderr
    assert not (root / "renders").exists()
    # a run that made only some shots: the films are not assembled, and not exported
    assert cli("run", root, "-q", "--only", "s1", *PREVIEW).exit_code == 0
    partly = cli("export", root)  # the last run's preview size
    assert partly.exit_code == 1 and "Traceback" not in partly.output
    assert "renders/fade.mp4 is not assembled yet: no finished clip for shot(s) s2, s3" \
        in partly.stderr
    assert "renders/cut.mov is not assembled yet: no finished clip for shot(s) s2, s3" \
        in partly.stderr
    assert not list((root / "renders").glob("*.otio"))
