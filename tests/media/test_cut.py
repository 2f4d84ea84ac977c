"""cut.render on real files: trims, transitions, title cards, cues in film time, music bed
and ducking, loudness, reframing, burn-in, watermark, presets and the stream-copy paths."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import pytest
from PIL import Image, ImageStat

from kling_compose.media import cut
from kling_compose.media.animatic import AnimaticSpec, render_animatic
from kling_compose.media.cut import Delivery, Part, Said, Watermark, render
from kling_compose.media.ffmpeg import MediaError, probe
from kling_compose.media.mix import measure

sys.path.insert(0, str(Path(__file__).parent))
from test_mix import make_audio, make_film, rms_db, samples, sine

FPS = 24
FRAME = 1 / FPS
VOICE = "0.3*sin(2*PI*4000*t)"
NOISE = "0.002*(random(0)*2-1)"
SPEECH = ((0.5, 1.5), (2.2, 3.4))
# three 2-pole low-passes at 500 Hz: the 4 kHz "voice" gone, a 220 Hz music bed intact
MUSIC_ONLY = "lowpass=f=500,lowpass=f=500,lowpass=f=500"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("cut")
    speech = "+".join(f"between(t,{a},{b})" for a, b in SPEECH)
    talk = make_film(d / "talk.mp4", f"({speech})*{VOICE}+{NOISE}", 4.0, size="320x180")
    quiet = make_film(d / "quiet.mp4", NOISE, 3.0, size="320x180")
    mute = make_film(d / "mute.mp4", None, 2.0, size="320x180")
    music = make_audio(d / "music.wav", sine(0.4, 220), 1.5)
    anims = [render_animatic(AnimaticSpec(s, 160, 96, FPS, title=f"s{i}"), d / f"a{i}.mp4")
             for i, s in enumerate((1.0, 0.5, 1.25))]
    logo = d / "logo.png"
    Image.new("RGBA", (64, 32), (255, 255, 255, 255)).save(logo)
    return {"talk": talk, "quiet": quiet, "mute": mute, "music": music, "anims": anims,
            "logo": logo, "dir": d}


def lines(a=0.0, b=4.0):
    return (Said("ann", "Hello there, friend", a, b), Said("bob", "General Kenobi", a, b))


def luma(path: Path, index: int) -> float:
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i == index:
                return ImageStat.Stat(frame.to_image().convert("L")).mean[0]
    raise IndexError(index)


def frame(path: Path, index: int) -> Image.Image:
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(c.streams.video[0])):
            if i == index:
                return f.to_image()
    raise IndexError(index)


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def assert_copied(out: Path, clips: list[Path]) -> None:
    """The film's video packets are the clips' own (the concat demuxer puts each clip's
    parameter sets in front of its first packet)."""
    got, want = video_packets(out), [p for c in clips for p in video_packets(c)]
    assert len(got) == len(want)
    assert all(g.endswith(w[-100:]) and 0 <= len(g) - len(w) < 64 for g, w in zip(got, want))


# -- length, transitions, title cards ---------------------------------------------------------


def test_trims_a_dip_and_a_title_card_last_exactly_the_sum_of_parts(media, tmp_path):
    parts = [
        Part(media["talk"], start_s=0.5, end_s=3.0),  # 2.5 s
        Part(title="Act two", subtitle="the harbour", duration_s=1.0, background="#102030",
             transition="dip", transition_s=0.5),
        Part(media["quiet"], start_s=1.0, transition="dip", transition_s=0.5),  # 2.0 s
        Part(media["mute"], end_s=1.0),  # 1.0 s, no audio: silence
    ]
    out = tmp_path / "film.mp4"
    r = render(parts, Delivery(), out, workdir=tmp_path / "w")
    info = probe(out)
    assert r.duration_s == pytest.approx(6.5, abs=FRAME)
    assert info.frame_count == 156
    assert info.audio_duration_s == pytest.approx(info.video_duration_s, abs=FRAME)
    assert (r.width, r.height) == (320, 180)
    # through black: the last frame before the card and the card's first frame are black,
    # the middle of the card is not
    assert luma(out, 59) < 8 and luma(out, 60) < 8 and luma(out, 72) > 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4", "w"]
    assert list((tmp_path / "w").iterdir()) == []


def test_a_film_of_title_cards_has_the_size_asked_and_silence(media, tmp_path):
    out = tmp_path / "x.mp4"
    r = render([Part(title="One", duration_s=1.0, background=media["logo"]),
                Part(title="Two", subtitle="and a half", duration_s=0.5, background="white",
                     transition="crossfade", transition_s=0.25)],
               Delivery(size=(160, 90)), out, workdir=tmp_path)
    assert (r.width, r.height) == (160, 90)
    assert r.duration_s == pytest.approx(1.25, abs=FRAME)
    assert r.loudness_lufs == pytest.approx(-70) and r.normalised is None


def test_crossfade_overlaps_and_moves_the_cues_with_the_picture(media, tmp_path):
    parts = [Part(media["talk"], lines=lines()),
             Part(media["talk"], transition="crossfade", transition_s=1.0, lines=lines())]
    r = render(parts, Delivery(subtitles=("srt", "vtt")), tmp_path / "x.mp4",
               workdir=tmp_path)
    assert r.duration_s == pytest.approx(7.0, abs=FRAME)
    assert probe(tmp_path / "x.mp4").audio_duration_s == pytest.approx(7.0, abs=FRAME)
    got = [(round(c.start_s, 2), round(c.end_s, 2), c.speaker) for c in r.cues]
    # aligned to the speech actually in the audio (20 ms VAD frames), the second clip 3 s on
    want = [(0.5, 1.5, "ann"), (2.2, 3.4, "bob"), (3.5, 4.5, "ann"), (5.2, 6.4, "bob")]
    for (s, e, who), (ws, we, wwho) in zip(got, want, strict=True):
        assert (s, e, who) == pytest.approx((ws, we, wwho), abs=0.05)
    assert r.subtitles["srt"].startswith("1\n00:00:00,5")
    assert "<v bob>General Kenobi</v>" in r.subtitles["vtt"]


def test_a_crossfade_after_a_run_of_cut_pieces_joins(media, tmp_path):
    """Cut pieces are joined by one concat filter, whose timestamps are in microseconds; a
    crossfade (xfade) from that run into the next piece, or from a single piece into a run,
    needs both sides in one time base (ffmpeg: "First input link main timebase (1/24) do
    not match the corresponding second input link xfade timebase (1/1000000)"). A screenplay
    imported with a DISSOLVE TO: after two cut shots, or a title card, makes such a film."""
    parts = [Part(title="Opening", duration_s=1.0),
             Part(media["quiet"], transition="crossfade", transition_s=0.5),  # 3 s
             Part(media["mute"]),  # 2 s, a cut
             Part(media["quiet"], transition="crossfade", transition_s=0.5)]  # 3 s
    r = render(parts, Delivery(), tmp_path / "x.mp4", workdir=tmp_path / "w")
    assert r.duration_s == pytest.approx(8.0, abs=FRAME)
    assert probe(tmp_path / "x.mp4").frame_count == 192


def test_a_trim_drops_and_moves_cues(media, tmp_path):
    r = render([Part(media["talk"], start_s=1.8, lines=lines())], Delivery(subtitles=("srt",)),
               tmp_path / "x.mp4", workdir=tmp_path)
    assert r.duration_s == pytest.approx(2.2, abs=FRAME)
    assert [c.text for c in r.cues] == ["General Kenobi"]
    assert (r.cues[0].start_s, r.cues[0].end_s) == pytest.approx((0.4, 1.6), abs=0.05)


def test_lines_without_speech_are_spread_by_words(media, tmp_path):
    r = render([Part(media["mute"], lines=(Said("narrator", "one two three", 0.0, 2.0),))],
               Delivery(), tmp_path / "x.mp4", workdir=tmp_path)
    assert len(r.cues) == 1 and (r.cues[0].start_s, r.cues[0].end_s) == pytest.approx((0, 2))


# -- sound -------------------------------------------------------------------------------------


def test_cuts_are_declicked(tmp_path):
    # two clips of a loud 330 Hz sine whose waveforms do not meet at zero at the cut
    a = make_film(tmp_path / "a.mp4", "0.5*sin(2*PI*330*t+1.5)", 1.0)
    b = make_film(tmp_path / "b.mp4", "0.5*sin(2*PI*330*t+1.5)", 1.0)
    out = tmp_path / "x.mp4"
    render([Part(a), Part(b)], Delivery(), out, workdir=tmp_path)
    data = samples(out)
    cut_at = 48_000
    assert max(abs(x) for x in data[cut_at - 24 : cut_at + 24]) < 0.05
    assert max(abs(x) for x in data[cut_at - 2400 : cut_at - 1200]) > 0.3


def test_music_is_heard_in_the_quiet_and_ducked_under_dialogue(media, tmp_path):
    out = tmp_path / "x.mp4"
    parts = [Part(media["mute"]), Part(media["talk"], lines=lines())]
    r = render(parts, Delivery(music=media["music"], music_gain_db=-12, duck_db=10), out,
               workdir=tmp_path)
    assert r.duration_s == pytest.approx(6.0, abs=FRAME)
    bed = samples(out, MUSIC_ONLY)
    silent = rms_db(bed, 0.5, 1.5)  # the clip without audio: music alone (fades done by 2 s)
    # (the bed fades out over the last 2 s, so compare before that)
    under = rms_db(bed, 2.0 + 0.6, 2.0 + 1.3)  # under ann's line
    between = rms_db(bed, 2.0 + 1.8, 2.0 + 1.9)  # between the two lines (ramps 0.25 s)
    assert silent > -30
    assert under == pytest.approx(between - 10, abs=1.5)


def test_loudness_is_normalised_to_the_target(media, tmp_path):
    out = tmp_path / "x.mp4"
    r = render([Part(media["talk"]), Part(media["quiet"])],
               Delivery(loudness_lufs=-16, music=media["music"]), out, workdir=tmp_path)
    m = measure(out)
    assert m.integrated_lufs == pytest.approx(-16, abs=1.0)
    assert m.true_peak_dbtp <= -1.0
    assert r.loudness_lufs == pytest.approx(m.integrated_lufs, abs=0.05)
    assert r.normalised in ("loudnorm", "limited")


# -- picture -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("delivery", "size"), [
    (Delivery(aspect=(9, 16)), (102, 180)),
    (Delivery(aspect=(1, 1), reframe="pad"), (320, 320)),
    (Delivery(size=(240, 240)), (240, 240)),
    (Delivery(aspect=(9, 16), size=(360, 640)), (360, 640)),
])
def test_reframed_outputs_have_the_right_size_and_length(media, tmp_path, delivery, size):
    parts = [Part(media["talk"], end_s=2.0, focus=(0.2, 0.5)),
             Part(title="End", duration_s=0.5)]
    r = render(parts, delivery, tmp_path / "x.mp4", workdir=tmp_path)
    assert (r.width, r.height) == size
    assert r.duration_s == pytest.approx(2.5, abs=FRAME)


def test_crop_follows_each_parts_focus(tmp_path):
    half = tmp_path / "rb.png"  # left half red, right half blue
    img = Image.new("RGB", (320, 180), (220, 0, 0))
    img.paste((0, 0, 220), (160, 0, 320, 180))
    img.save(half)
    clip = render_animatic(AnimaticSpec(1.0, 320, 180, FPS, first_image=half), tmp_path / "c.mp4")
    out = tmp_path / "x.mp4"
    render([Part(clip, focus=(0.1, 0.5)), Part(clip, focus=(0.9, 0.5))],
           Delivery(aspect=(9, 16)), out, workdir=tmp_path)
    r0, _, b0 = ImageStat.Stat(frame(out, 5)).mean
    r1, _, b1 = ImageStat.Stat(frame(out, 30)).mean
    assert r0 > 150 > b0 and b1 > 150 > r1


def test_burn_in_draws_the_cues_and_still_returns_the_texts(media, tmp_path):
    plain, burnt = tmp_path / "p.mp4", tmp_path / "b.mp4"
    parts = [Part(media["talk"], lines=lines())]
    render(parts, Delivery(aspect=(16, 9)), plain, workdir=tmp_path)
    r = render(parts, Delivery(burn_in=True, aspect=(16, 9), subtitles=("srt",)), burnt,
               workdir=tmp_path)
    bottom, top = (0, 130, 320, 180), (0, 0, 320, 50)
    during, after = 24, 44  # 1.0 s (ann speaks), 1.83 s (nobody)

    def changed(index, box):  # pixels whose brightness moved a lot (text, not coding noise)
        a, b = (frame(f, index).crop(box).convert("L") for f in (plain, burnt))
        return sum(1 for x, y in zip(a.tobytes(), b.tobytes()) if abs(x - y) > 64)

    assert changed(during, bottom) > 100
    assert changed(during, top) == changed(after, bottom) == 0
    assert "Hello there, friend" in r.subtitles["srt"]


def test_watermark_sits_in_its_corner(media, tmp_path):
    out = tmp_path / "x.mp4"
    render([Part(media["mute"])], Delivery(watermark=Watermark(media["logo"], "top-left", 1.0,
                                                               0.25)), out, workdir=tmp_path)
    img = frame(out, 10)
    corner = ImageStat.Stat(img.crop((8, 8, 80, 20)).convert("L")).mean[0]
    assert corner > 230  # 0.25 x 320 = 80 px of white from a 5 px margin
    assert ImageStat.Stat(img.crop((240, 160, 320, 180)).convert("L")).mean[0] < 230


def test_fades_in_and_out_of_black_and_silence(media, tmp_path):
    out = tmp_path / "x.mp4"
    render([Part(media["talk"])], Delivery(fade_in_s=0.5, fade_out_s=0.5), out,
           workdir=tmp_path)
    assert luma(out, 0) < 8 and luma(out, 95) < 8 and luma(out, 48) > 30
    data = samples(out)
    assert rms_db(data, 0, 0.02) < -50


def test_master_preset_is_prores_and_pcm(media, tmp_path):
    out = tmp_path / "x.mov"
    r = render([Part(media["talk"], end_s=1.0)], Delivery(preset="master"), out,
               workdir=tmp_path)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "prores"
        assert c.streams.audio[0].codec_context.name == "pcm_s24le"
    assert r.duration_s == pytest.approx(1.0, abs=FRAME)


# -- the copy paths ------------------------------------------------------------------------------


def test_a_plain_film_takes_the_stream_copy_fast_path(media, tmp_path, monkeypatch):
    calls = []
    real = cut.assemble
    monkeypatch.setattr(cut, "assemble", lambda *a, **k: calls.append(k) or real(*a, **k))
    out = tmp_path / "x.mp4"
    clips = media["anims"]
    r = render([Part(c) for c in clips], Delivery(subtitles=("srt",)), out, workdir=tmp_path)
    assert calls and calls[0].get("declick_s") == cut.DECLICK_S and "audio" not in calls[0]
    assert_copied(out, clips)
    assert r.duration_s == pytest.approx(2.75, abs=FRAME) and r.loudness_lufs is not None


def test_music_alone_keeps_the_picture_stream_copied(media, tmp_path):
    out = tmp_path / "x.mp4"
    clips = media["anims"]
    r = render([Part(c) for c in clips], Delivery(music=media["music"], loudness_lufs=-20),
               out, workdir=tmp_path)
    assert_copied(out, clips)
    assert r.duration_s == pytest.approx(2.75, abs=FRAME)
    info = probe(out)
    assert info.audio_duration_s == pytest.approx(2.75, abs=FRAME)
    assert r.loudness_lufs == pytest.approx(-20, abs=1.0)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("parts", "delivery", "message"), [
    (lambda m: [Part(m["talk"], start_s=3.0, end_s=5.0)], Delivery(), "outside"),
    (lambda m: [Part(m["talk"], start_s=-1.0)], Delivery(), "outside"),
    (lambda m: [Part(m["talk"]), Part(m["mute"], end_s=0.5, transition="crossfade",
                                       transition_s=1.0)], Delivery(), "crossfade"),
    (lambda m: [Part(m["talk"]), Part(m["mute"], transition="wipe", transition_s=1.0)],
     Delivery(), "transition"),
    (lambda m: [Part(title="x")], Delivery(size=(320, 180)), "duration"),
    (lambda m: [Part(title="x", duration_s=1)], Delivery(), "size"),
    (lambda m: [Part(m["talk"])], Delivery(size=(321, 180)), "even"),
    (lambda m: [Part(m["talk"])], Delivery(subtitles=("ass",)), "subtitle"),
    (lambda m: [Part(m["talk"])], Delivery(preset="master"), "master"),
    (lambda m: [Part(m["talk"], title="x", duration_s=1, background="nocolour"),
                Part(title="x", duration_s=1, background="nocolour")], Delivery(), "colour"),
    (lambda m: [], Delivery(), "no parts"),
])
def test_errors_are_clear_and_write_nothing(media, tmp_path, parts, delivery, message):
    out = tmp_path / "x.mp4"
    with pytest.raises(MediaError, match=message):
        render(parts(media), delivery, out, workdir=tmp_path / "w")
    assert not out.exists()


# -- a long film, rendered in stretches -----------------------------------------------------------


def frames_of(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as c:
        return [f.to_image().convert("L") for f in c.decode(c.streams.video[0])]


def differs(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two frames' brightness (0-255)."""
    return sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes())) / (a.width * a.height)


@pytest.mark.parametrize("preset", ["web", "master"])
def test_a_film_of_many_parts_is_rendered_in_stretches_and_looks_the_same(media, tmp_path,
                                                                         monkeypatch, preset):
    """ffmpeg keeps every input's decoder until it exits (1.7 GB for 50 clips at 1080p):
    past CHUNK_PARTS parts the picture is encoded stretch by stretch and joined copied. The
    stretches' film, cut only where a cut or a dip joins two parts and never inside a fade,
    has every frame of the one-call film: the same count, the same pictures (the dips, the
    crossfades, the burned-in cues at their film times, the watermark, both fades), and the
    same soundtrack."""
    a0, a1, a2 = media["anims"]
    said = (Said("ann", "Over the water", 0.1, 0.9),)
    parts = [Part(title="ONE", duration_s=0.5),
             Part(a0, transition="dip", transition_s=0.25, lines=said),
             Part(a2, lines=said),
             Part(a1, transition="crossfade", transition_s=0.2),
             Part(a0, start_s=0.25, lines=said),
             Part(a2, transition="dip", transition_s=0.5),
             Part(a1, lines=said),
             Part(a0, transition="crossfade", transition_s=0.25, lines=said),
             Part(title="END", duration_s=0.5, transition="dip", transition_s=0.25)]
    delivery = Delivery(burn_in=True, fade_in_s=0.3, fade_out_s=0.4, subtitles=("srt",),
                        watermark=Watermark(media["logo"], "top-right", 0.8, 0.2),
                        preset=preset)
    suffix = ".mp4" if preset == "web" else ".mov"
    whole, stretched = tmp_path / f"whole{suffix}", tmp_path / f"stretched{suffix}"
    one = render(parts, delivery, whole, workdir=tmp_path)
    calls = []
    real = cut.run_ffmpeg
    monkeypatch.setattr(cut, "run_ffmpeg", lambda args, **k: calls.append(args) or real(
        args, **k))
    monkeypatch.setattr(cut, "CHUNK_PARTS", 2)
    tl = cut.layout(parts)
    chunks = cut._chunks(tl, delivery)
    assert len(chunks) >= 3 and all(tl.pieces[a].into != "crossfade" for a, _ in chunks)
    many = render(parts, delivery, stretched, workdir=tmp_path)
    assert sum("-an" in c for c in calls) == len(chunks)  # a call per stretch
    assert many.duration_s == one.duration_s and many.cues == one.cues
    assert many.subtitles == one.subtitles
    assert (many.width, many.height) == (one.width, one.height)
    a, b = frames_of(whole), frames_of(stretched)
    assert len(a) == len(b) == tl.frames
    worst = max(differs(x, y) for x, y in zip(a, b))
    assert worst < 3, worst  # coding noise only: a misplaced cue or fade moves tens
    assert many.loudness_lufs == pytest.approx(one.loudness_lufs, abs=0.1)


def test_stretches_are_cut_only_at_cuts_and_dips_outside_the_fades(media, monkeypatch):
    a0, a1, _ = media["anims"]
    parts = [Part(a0), *[Part(a1, transition="crossfade", transition_s=0.1)] * 4, Part(a0),
             Part(a1, transition="dip", transition_s=0.2), Part(a0), Part(a1)]
    tl = cut.layout(parts)
    monkeypatch.setattr(cut, "CHUNK_PARTS", 3)
    assert cut._chunks(tl, Delivery()) == [(0, 5), (5, 8), (8, 9)]
    # a fade out over the film's last 1.5 s keeps its frames in one stretch
    fade = cut._chunks(tl, Delivery(fade_out_s=1.5))
    assert tl.frames - tl.pieces[fade[-1][0]].start >= round(1.5 * tl.fps)
    assert cut._chunks(tl, Delivery(fade_in_s=100)) == [(0, 9)]
