import pytest
from _mediakit import audio_peak, cover, decoded_frame, mean_abs_diff

from kling_compose.media.animatic import (
    SPEAKER_HZ,
    AnimaticSpec,
    preview_size,
    render_animatic,
    spoken,
    title_card,
)
from kling_compose.media.ffmpeg import probe
from kling_compose.media.subtitles import align, speech_spans

W, H = 160, 96
BAND = max(12, H // 6)  # the caption band over the bottom of a clip that starts from an image


def above_band(image):
    """The picture without the bottom band (the shot's id and prompt)."""
    return image.crop((0, 0, W, H - BAND))


# two speakers in one span, a third line alone in a later span
LINES = ((0, "Hello there my friend", 0.0, 2.5), (1, "General Kenobi", 0.0, 2.5),
         (0, "You are a bold one", 2.6, 4.0))


def spec(**kw):
    base = dict(duration_s=1.0, width=W, height=H, fps=24, title="s010", caption="a prompt",
                band=True)
    return AnimaticSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, images):
    """Four animatics of the same size: card, first image, first->last, last only (silent)."""
    d = tmp_path_factory.mktemp("anim")
    first, last = images
    specs = {
        "card": spec(caption="word " * 400),
        "first": spec(first_image=first, duration_s=1.5),
        "both": spec(first_image=first, last_image=last, duration_s=1.25),
        "last_silent": spec(last_image=last, audio=False, duration_s=0.5),
        "said": spec(first_image=first, duration_s=4.0, lines=LINES),
    }
    return {k: (s, render_animatic(s, d / f"{k}.mp4")) for k, s in specs.items()}


@pytest.mark.parametrize("name", ["card", "first", "both", "last_silent", "said"])
def test_exact_duration_size_frames_and_audio_length(rendered, name):
    s, path = rendered[name]
    info = probe(path)
    n = round(s.duration_s * s.fps)
    assert (info.width, info.height, info.frame_count) == (W, H, n)
    assert info.video_duration_s == pytest.approx(n / s.fps, abs=1e-6)
    assert info.has_audio and info.audio_duration_s == pytest.approx(n / s.fps, abs=1e-3)
    assert info.video_params[0] == "h264" and info.video_params[4] == "yuv420p"
    assert info.audio_params[0] == "aac" and info.audio_params[2:] == (48000, "stereo")


def test_all_clips_share_codec_params(rendered):
    params = {(probe(p).video_params, probe(p).audio_params) for _, p in rendered.values()}
    assert len(params) == 1


def test_first_frame_is_the_first_image(rendered, images):
    first, last = images
    for name in ("first", "both"):
        frame0 = above_band(decoded_frame(rendered[name][1], 0))
        assert mean_abs_diff(frame0, above_band(cover(first, (W, H)))) < 6
        assert mean_abs_diff(frame0, above_band(cover(last, (W, H)))) > 30  # it discriminates


def test_last_frame_is_the_last_image_and_motion_happens(rendered, images):
    first, last = images
    for name in ("both", "last_silent"):
        end = above_band(decoded_frame(rendered[name][1], -1))
        assert mean_abs_diff(end, above_band(cover(last, (W, H)))) < 6
    # a zoomed first-image-only clip ends somewhere else than it starts
    path = rendered["first"][1]
    assert mean_abs_diff(decoded_frame(path, 0), decoded_frame(path, -1)) > 2
    mid = decoded_frame(rendered["both"][1], 15)
    assert mean_abs_diff(mid, cover(first, (W, H))) > 10 and mean_abs_diff(mid, cover(last, (W, H))) > 10


def test_every_clip_from_an_image_shows_its_own_id_and_prompt(tmp_path, images):
    """A band at the bottom names the shot: before, a shot starting from an image had no
    caption, and a chained shot showed the previous shot's title card all along."""
    first, _ = images
    alpha = render_animatic(spec(first_image=first, title="alpha", caption="one"),
                            tmp_path / "a.mp4")
    beta = render_animatic(spec(first_image=first, title="beta", caption="two"),
                           tmp_path / "b.mp4")
    for index in (0, -1):
        a, b = decoded_frame(alpha, index), decoded_frame(beta, index)
        band_a, band_b = (f.crop((0, H - BAND, W, H)) for f in (a, b))
        assert mean_abs_diff(band_a, band_b) > 1  # different text in the band
        assert mean_abs_diff(above_band(a), above_band(b)) < 1  # the same picture above it
        assert mean_abs_diff(band_a, above_band(cover(first, (W, H))).crop((0, 0, W, BAND))) > 10


def test_tone_or_silence(rendered):
    assert audio_peak(rendered["last_silent"][1]) < 1e-4
    assert 0.005 < audio_peak(rendered["first"][1]) < 0.5


def test_title_card_shows_text_and_truncates():
    blank = title_card(W * 4, H * 4, "", "")
    card = title_card(W * 4, H * 4, "s010_harbour", "lanterns " * 500)
    assert card.size == (W * 4, H * 4)
    assert mean_abs_diff(card, blank) > 1


def test_preview_size_keeps_aspect_and_even_sides():
    assert preview_size(1920, 1080) == (640, 360)
    assert preview_size(1080, 1920) == (360, 640)
    assert preview_size(1000, 1000) == (360, 360)
    w, h = preview_size(1001, 777)
    assert w % 2 == 0 and h % 2 == 0 and abs(w / h - 1001 / 777) < 0.02
    with pytest.raises(ValueError):
        preview_size(0, 10)


def test_odd_size_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        render_animatic(spec(width=161), tmp_path / "x.mp4")
    assert list(tmp_path.iterdir()) == []


# dialogue: captions and speaker tones


def test_spoken_spreads_the_lines_of_a_span_by_words_with_gaps():
    said = spoken(spec(duration_s=4.0, lines=LINES))
    assert [(who, text) for who, text, _, _ in said] == [(w, t) for w, t, _, _ in LINES]
    (_, _, a0, b0), (_, _, a1, b1), (_, _, a2, b2) = said
    # a breath of 0.15 s inside each span's ends, 0.3 s between two lines of a span
    assert (a0, b1) == pytest.approx((0.15, 2.35)) and a1 - b0 == pytest.approx(0.3)
    assert (b0 - a0) > (b1 - a1)  # four words against two
    assert (a2, b2) == pytest.approx((2.74, 3.86))


def test_lines_sound_as_speaker_tones_that_speech_spans_finds(rendered):
    s, path = rendered["said"]
    said = spoken(s)
    spans = speech_spans(path)
    assert len(spans) == len(said)
    for (a, b), (_, _, sa, sb) in zip(spans, said):
        assert (a, b) == pytest.approx((sa, sb), abs=0.06)
    # so cue alignment on the animatic gives back the spoken spans
    cues = align([(t, str(w)) for w, t, _, _ in LINES[:2]], spans, 0.0, 2.5, min_s=0)
    assert [x for c in cues for x in (c.start_s, c.end_s)] == pytest.approx(
        [x for _, _, sa, sb in said[:2] for x in (sa, sb)], abs=0.06)
    # each speaker has its own pitch: count zero crossings inside each line
    for who, _, a, b in said:
        assert _pitch(path, a + 0.1, b - 0.1) == pytest.approx(SPEAKER_HZ[who], rel=0.05)


def _pitch(path, start, end):
    """The frequency of a pure tone from its zero crossings (left channel)."""
    import itertools
    from array import array

    import av

    x = array("f")
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.audio[0]):
            x.extend(array("f", bytes(f.planes[0]))[: f.samples])
    x = x[int(start * 48000) : int(end * 48000)]
    crossings = sum(1 for u, v in itertools.pairwise(x) if (u < 0) != (v < 0))
    return crossings / 2 / (end - start)


def test_captions_show_only_while_a_line_is_spoken(rendered, tmp_path, images):
    s, path = rendered["said"]
    plain = render_animatic(spec(first_image=images[0], duration_s=4.0), tmp_path / "p.mp4")
    said = spoken(s)
    strip = (0, 0, W, H // 4)  # the top: the bottom is the band's and a film's subtitles'

    def changed(t):  # pixels whose brightness moved a lot: text, not coding noise
        index = int(t * 24)
        a, b = (decoded_frame(f, index).crop(strip).convert("L") for f in (path, plain))
        return sum(1 for x, y in zip(a.tobytes(), b.tobytes()) if abs(x - y) > 64)

    for _, _, a, b in said:
        assert changed((a + b) / 2) > 50
    assert changed((said[0][3] + said[1][2]) / 2) == 0  # the gap between two lines
    # the band and everything below the caption are untouched
    assert mean_abs_diff(decoded_frame(path, 12).crop((0, H // 3, W, H)),
                         decoded_frame(plain, 12).crop((0, H // 3, W, H))) < 1
