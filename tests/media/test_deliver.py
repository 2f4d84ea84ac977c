"""deliver.py on real files: reframed to another aspect (crop around a focus, pad), encoded
to the web and master presets; the bundled ffmpeg's encoders and text filters probed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest
from PIL import Image

from kling_compose.media.deliver import crop_window, encode, reframe, reframe_filter
from kling_compose.media.ffmpeg import MediaError, ffmpeg_exe, probe, run_ffmpeg


def _ffmpeg_list(kind: str) -> str:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", f"-{kind}"], check=True,
                          capture_output=True,
                          text=True).stdout


def _has(kind: str, name: str) -> bool:
    return any(line.split()[1:2] == [name] for line in _ffmpeg_list(kind).splitlines()
               if len(line.split()) > 1)


needs_prores = pytest.mark.skipif(
    not (_has("encoders", "prores_ks") and _has("encoders", "pcm_s24le")),
    reason="the bundled ffmpeg has no prores_ks or pcm_s24le encoder")


@pytest.fixture(scope="module")
def film(tmp_path_factory) -> Path:
    """3 s of testsrc2 at 640x360, 24 fps, with a sine (AAC)."""
    path = tmp_path_factory.mktemp("deliver") / "film.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=24:duration=3",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-ac", "2", str(path)])
    return path


@pytest.fixture(scope="module")
def halves(tmp_path_factory) -> Path:
    """2 s at 640x360: the left half red, the right half blue; a sine."""
    path = tmp_path_factory.mktemp("deliver") / "halves.mp4"
    run_ffmpeg(["-f", "lavfi", "-i", "color=c=red:size=320x360:rate=24:duration=2",
                "-f", "lavfi", "-i", "color=c=blue:size=320x360:rate=24:duration=2",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
                "-filter_complex", "[0:v][1:v]hstack=inputs=2[v]", "-map", "[v]", "-map", "2:a",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", str(path)])
    return path


def frame_rgb(path: Path, index: int = 0) -> Image.Image:
    """Frame `index` of `path` decoded to an RGB picture (PyAV)."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_image().convert("RGB")
    raise AssertionError(f"{path} has no frame {index}")


def red_blue_share(picture: Image.Image) -> tuple[float, float]:
    """The fractions of pixels that are clearly red / clearly blue."""
    data = picture.tobytes()
    pixels = [(data[i], data[i + 2]) for i in range(0, len(data), 3)]
    red = sum(1 for r, b in pixels if r > 150 and b < 100)
    blue = sum(1 for r, b in pixels if b > 150 and r < 100)
    return red / len(pixels), blue / len(pixels)


def brightest(picture: Image.Image) -> int:
    """The highest channel value in `picture`."""
    return max(hi for _, hi in picture.getextrema())


def test_crop_window():
    assert crop_window(640, 360, (9, 16)) == (202, 360)
    assert crop_window(640, 360, (1, 1)) == (360, 360)
    assert crop_window(360, 640, (16, 9)) == (360, 202)
    assert crop_window(640, 360, (16, 9)) == (640, 360)


def test_crop_16x9_to_9x16_keeps_frames_and_audio(film, tmp_path):
    out = tmp_path / "vertical.mp4"
    assert reframe(film, out, aspect=(9, 16), height=640, mode="crop") == (360, 640)
    src, dst = probe(film), probe(out)
    assert (dst.width, dst.height) == (360, 640)
    assert abs(dst.frame_count - src.frame_count) <= 1
    assert abs(dst.video_duration_s - src.video_duration_s) <= 1 / 24 + 1e-6
    assert dst.has_audio and dst.audio_params[0] == "aac"
    assert dst.audio_params == src.audio_params  # copied


def test_crop_follows_focus(halves, tmp_path):
    left, right = tmp_path / "left.mp4", tmp_path / "right.mp4"
    reframe(halves, left, aspect=(9, 16), height=640, mode="crop", focus=(0.2, 0.5))
    reframe(halves, right, aspect=(9, 16), height=640, mode="crop", focus=(0.8, 0.5))
    red, blue = red_blue_share(frame_rgb(left))
    assert red > 0.95 and blue < 0.01
    red, blue = red_blue_share(frame_rgb(right))
    assert blue > 0.95 and red < 0.01
    # clamped: a focus at the very edge keeps the window inside the frame
    edge = tmp_path / "edge.mp4"
    reframe(halves, edge, aspect=(9, 16), height=640, mode="crop", focus=(0.0, 0.5))
    assert red_blue_share(frame_rgb(edge))[0] > 0.95


def test_crop_focus_per_span(halves, tmp_path):
    """A film's shots each keep their own focus: red for the first second, blue after."""
    out = tmp_path / "spans.mp4"
    reframe(halves, out, aspect=(9, 16), height=640, mode="crop",
            spans=[(0.0, 1.0, (0.2, 0.5)), (1.0, 2.0, (0.8, 0.5))])
    assert probe(out).frame_count == probe(halves).frame_count
    assert red_blue_share(frame_rgb(out, 5))[0] > 0.95    # t = 0.21 s
    assert red_blue_share(frame_rgb(out, 30))[1] > 0.95   # t = 1.25 s


def test_pad_to_square_letterboxes(halves, tmp_path):
    out = tmp_path / "square.mp4"
    assert reframe(halves, out, aspect=(1, 1), height=720, mode="pad") == (720, 720)
    info = probe(out)
    assert (info.width, info.height) == (720, 720)
    assert info.frame_count == probe(halves).frame_count and info.has_audio
    rgb = frame_rgb(out)
    # 640x360 scaled to 720x405: black bars of ~157 rows above and below
    assert brightest(rgb.crop((0, 0, 720, 150))) < 30
    assert brightest(rgb.crop((0, 570, 720, 720))) < 30
    red, blue = red_blue_share(rgb.crop((0, 170, 720, 550)))
    assert red > 0.45 and blue > 0.45


def test_reframe_filter_pad_default_and_errors():
    assert reframe_filter(640, 360, aspect=(1, 1), mode="pad")[1] == (640, 640)
    assert reframe_filter(640, 360, aspect=(9, 16), mode="crop")[1] == (202, 360)
    with pytest.raises(MediaError, match="focus"):
        reframe_filter(640, 360, aspect=(9, 16), focus=(1.5, 0.5))
    with pytest.raises(MediaError, match="mode"):
        reframe_filter(640, 360, aspect=(9, 16), mode="generate")  # type: ignore[arg-type]


def _atoms(path: Path) -> list[str]:
    """The top-level MP4/MOV atom types of `path`, in file order."""
    data, pos, names = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        names.append(data[pos + 4:pos + 8].decode("latin-1"))
        if size == 1:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        if size < 8:
            break
        pos += size
    return names


def _codecs(path: Path) -> tuple[str, str, str]:
    with av.open(str(path)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        return v.codec_context.name, v.codec_context.format.name, a.codec_context.name


def test_web_preset_h264_aac_faststart(film, tmp_path):
    out = tmp_path / "web.mp4"
    encode(film, out, "web")
    atoms = _atoms(out)
    assert atoms.index("moov") < atoms.index("mdat")
    assert _codecs(out) == ("h264", "yuv420p", "aac")
    assert probe(out).frame_count == probe(film).frame_count


@needs_prores
def test_master_preset_prores_pcm_mov(film, tmp_path):
    out = tmp_path / "master.mov"
    encode(film, out, "master")
    assert _codecs(out) == ("prores", "yuv422p10le", "pcm_s24le")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.profile == "HQ"
    assert probe(out).frame_count == probe(film).frame_count


def test_reframe_straight_to_a_preset(film, tmp_path):
    out = tmp_path / "vertical.mov"
    reframe(film, out, aspect=(9, 16), height=640, preset="master")
    assert _codecs(out) == ("prores", "yuv422p10le", "pcm_s24le")


def test_preset_refuses_wrong_container(film, tmp_path):
    with pytest.raises(MediaError, match="writes .mov"):
        encode(film, tmp_path / "master.mp4", "master")
    assert not (tmp_path / "master.mp4").exists()


def test_bundled_ffmpeg_text_filters():
    """Decides how burn_in subtitles are drawn (docs/media.md "deliver.py")."""
    assert _has("filters", "subtitles"), "no libass subtitles filter"
    assert _has("filters", "drawtext"), "no freetype drawtext filter"


def test_subtitles_filter_draws_a_cue(tmp_path):
    """libass draws an SRT cue with the system's fonts (fontconfig): the frame at the cue
    differs from the same frame without it. The way burn_in will be drawn."""
    srt = tmp_path / "cue.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,000\nYou came back.\n", encoding="utf-8")
    plain, drawn = tmp_path / "plain.png", tmp_path / "drawn.png"
    source = ["-f", "lavfi", "-i", "color=c=gray:size=640x360:rate=24:duration=1"]
    run_ffmpeg([*source, "-frames:v", "1", str(plain)])
    run_ffmpeg([*source, "-vf", f"subtitles=filename='{srt}'", "-frames:v", "1", str(drawn)])
    with Image.open(plain) as a, Image.open(drawn) as b:
        assert a.convert("RGB").tobytes() != b.convert("RGB").tobytes()
        # the text sits in the bottom fifth of the frame
        assert b.convert("RGB").crop((0, 0, 640, 280)).tobytes() == \
            a.convert("RGB").crop((0, 0, 640, 280)).tobytes()
