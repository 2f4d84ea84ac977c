from fractions import Fraction

import pytest

from kling_compose.media.ffmpeg import MediaError, atomic_output, ffmpeg_exe, probe, run_ffmpeg


def test_probe_reads_stream_durations_and_params(audio_longer_clip, one_frame_clip):
    info = probe(audio_longer_clip)
    assert info.video_duration_s == pytest.approx(2.0, abs=1e-3)
    assert info.audio_duration_s == pytest.approx(3.5, abs=0.03)
    assert (info.width, info.height, info.fps, info.frame_count) == (320, 240, Fraction(24), 48)
    assert info.has_audio and info.audio_params[:1] == ("aac",) and 48000 in info.audio_params
    assert info.video_params[0] == "h264" and info.video_params[2:5] == (320, 240, "yuv420p")
    silent = probe(one_frame_clip)
    assert (silent.has_audio, silent.audio_duration_s, silent.audio_params) == (False, None, ())
    assert silent.frame_count == 1


def test_probe_missing_and_corrupt(tmp_path):
    with pytest.raises(MediaError, match="nope.mp4"):
        probe(tmp_path / "nope.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"garbage" * 50)
    with pytest.raises(MediaError):
        probe(junk)


def test_run_ffmpeg_failure_is_one_line_with_stderr(tmp_path):
    assert ffmpeg_exe().endswith(tuple(["ffmpeg", "ffmpeg.exe"])) or "ffmpeg" in ffmpeg_exe()
    with pytest.raises(MediaError) as exc:
        run_ffmpeg(["-i", str(tmp_path / "absent.mp4"), str(tmp_path / "o.mp4")])
    msg = str(exc.value)
    assert "\n" not in msg and "absent.mp4" in msg and "exit" in msg


def test_atomic_output_publishes_on_success(tmp_path):
    out = tmp_path / "a.mp4"
    with atomic_output(out) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp != out
        tmp.write_bytes(b"data")
        assert not out.exists()
    assert out.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "a.mp4"
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    with pytest.raises(MediaError):
        with atomic_output(out) as tmp:
            run_ffmpeg(["-i", str(tmp_path / "absent.png"), str(tmp)])
    with pytest.raises(MediaError, match="nothing was written"):
        with atomic_output(out):
            pass  # e.g. ffmpeg exiting 0 without writing a file
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]
