import pytest
from _mediakit import audio_peak, make_clip

from kling_compose.media.animatic import AnimaticSpec, render_animatic
from kling_compose.media.assemble import assemble
from kling_compose.media.ffmpeg import MediaError, probe

W, H, FPS = 160, 96, 24
FRAME = 1 / FPS


@pytest.fixture(scope="module")
def previews(tmp_path_factory):
    """Three preview clips of 1.0, 0.5 and 1.25 s (same size and fps)."""
    d = tmp_path_factory.mktemp("previews")
    return [
        render_animatic(AnimaticSpec(s, W, H, FPS, title=f"s{i}"), d / f"p{i}.mp4")
        for i, s in enumerate((1.0, 0.5, 1.25))
    ]


def assert_synced(info, expected_s):
    assert info.video_duration_s == pytest.approx(expected_s, abs=FRAME)
    assert info.has_audio
    assert info.audio_duration_s == pytest.approx(info.video_duration_s, abs=FRAME)


def test_stream_copy_concat_duration_and_sync(previews, tmp_path):
    out = tmp_path / "film.mp4"
    info = assemble(previews, out, workdir=tmp_path / "work")
    assert_synced(info, 2.75)
    assert info.frame_count == 24 + 12 + 30
    # video was copied, not re-encoded: the previews' exact codec parameters survive
    assert info.video_params == probe(previews[0]).video_params
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4", "work"]
    assert list((tmp_path / "work").iterdir()) == []  # scratch files are cleaned up


def test_single_clip(previews, tmp_path):
    info = assemble(previews[:1], tmp_path / "one.mp4", workdir=tmp_path)
    assert_synced(info, 1.0)


def test_mismatched_clip_is_normalised(previews, tmp_path):
    odd = make_clip(tmp_path / "odd.mp4", size="200x100", seconds=1.0, fps=30, rate=44_100)
    assert probe(odd).video_params != probe(previews[0]).video_params
    info = assemble([previews[0], odd, previews[1]], tmp_path / "f.mp4", workdir=tmp_path / "w")
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    assert info.frame_count == 24 + 24 + 12
    assert_synced(info, 2.5)


def test_clip_without_audio_contributes_silence(previews, tmp_path):
    mute = make_clip(tmp_path / "mute.mp4", size=f"{W}x{H}", seconds=1.0, audio=False)
    info = assemble([mute, previews[1]], tmp_path / "f.mp4", workdir=tmp_path / "w")
    assert_synced(info, 1.5)
    assert audio_peak(tmp_path / "f.mp4") > 0.005  # the preview's tone is still there


def test_audio_longer_than_video_is_trimmed(previews, audio_longer_clip, tmp_path):
    info = assemble([audio_longer_clip, audio_longer_clip], tmp_path / "f.mp4", workdir=tmp_path)
    assert_synced(info, 4.0)


def test_crossfade_duration(previews, tmp_path):
    info = assemble(previews, tmp_path / "x.mp4", crossfade_s=0.25, workdir=tmp_path / "w")
    assert_synced(info, 2.75 - 2 * 0.25)
    with pytest.raises(MediaError, match="crossfade"):
        assemble(previews, tmp_path / "y.mp4", crossfade_s=0.5, workdir=tmp_path / "w")
    assert not (tmp_path / "y.mp4").exists()


def test_missing_or_corrupt_input(previews, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    for bad in (tmp_path / "missing.mp4", junk):
        with pytest.raises(MediaError, match=bad.name):
            assemble([previews[0], bad], tmp_path / "f.mp4", workdir=tmp_path / "w")
    with pytest.raises(MediaError):
        assemble([], tmp_path / "f.mp4", workdir=tmp_path / "w")
    assert not (tmp_path / "f.mp4").exists()
