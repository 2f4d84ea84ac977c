
import av
import pytest
from PIL import Image

from kling_compose.media.ffmpeg import MediaError, probe
from kling_compose.media.frames import extract_frame

from _mediakit import decode_all_rgb

CLIPS = ["bframe_clip", "audio_longer_clip", "short_clip", "one_frame_clip", "gop2_clip", "gop10_clip"]


def png_rgb(path):
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


@pytest.mark.parametrize("name", CLIPS)
def test_last_frame_is_exactly_the_full_decode_last_frame(name, request, tmp_path):
    clip = request.getfixturevalue(name)
    frames = decode_all_rgb(clip)
    if len(frames) > 1:
        assert frames[-1] != frames[-2], "fixture must move, or the test proves nothing"
    out = extract_frame(clip, "last", tmp_path / "last.png")
    assert out == tmp_path / "last.png"
    assert png_rgb(out) == frames[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.png"]


@pytest.mark.parametrize("name", ["bframe_clip", "audio_longer_clip", "short_clip"])
def test_first_frame_is_exactly_the_first_decoded_frame(name, request, tmp_path):
    clip = request.getfixturevalue(name)
    frames = decode_all_rgb(clip)
    assert png_rgb(extract_frame(clip, "first", tmp_path / "f.png")) == frames[0]


def test_audio_longer_fixture_really_has_longer_audio(audio_longer_clip):
    info = probe(audio_longer_clip)
    assert info.audio_duration_s > info.video_duration_s + 1.0


def test_last_frame_replaces_existing_file(bframe_clip, tmp_path):
    out = tmp_path / "x.png"
    out.write_bytes(b"old")
    extract_frame(bframe_clip, "last", out)
    assert png_rgb(out) == decode_all_rgb(bframe_clip)[-1]


def test_bad_which_and_missing_or_corrupt_input(tmp_path, bframe_clip):
    with pytest.raises(ValueError):
        extract_frame(bframe_clip, "middle", tmp_path / "x.png")
    with pytest.raises(MediaError, match="missing.mp4"):
        extract_frame(tmp_path / "missing.mp4", "last", tmp_path / "x.png")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a movie" * 100)
    with pytest.raises(MediaError):
        extract_frame(junk, "first", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def _full_decode_last(clip):
    with av.open(str(clip)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        last = None
        for last in c.decode(s):
            pass
        return last


def test_last_frame_is_exact_on_a_1080p_clip(clip_1080p, tmp_path):
    # its speed against a full decode (>= 5x) is measured by bench/media.py, not here
    extract_frame(clip_1080p, "last", tmp_path / "l.png")
    assert png_rgb(tmp_path / "l.png") == _full_decode_last(clip_1080p).to_image().tobytes()
