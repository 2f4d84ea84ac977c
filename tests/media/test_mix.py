"""mix.py on real files: loudness measured with ebur128, normalised, music bed ducked."""

from __future__ import annotations

import math
import subprocess
from array import array
from pathlib import Path

import av
import pytest

from kling_compose.media.ffmpeg import MediaError, ffmpeg_exe, probe, run_ffmpeg
from kling_compose.media.mix import (
    bed,
    declick,
    measure,
    mix_music,
    normalise,
)

RATE = 48_000
MUSIC_HZ, VOICE_HZ = 220, 4000
# three 2-pole low-passes at 500 Hz: the 4 kHz "voice" is ~100 dB down, the 220 Hz music intact
MUSIC_ONLY = "lowpass=f=500,lowpass=f=500,lowpass=f=500"


def make_audio(path: Path, expr: str, seconds: float) -> Path:
    """A stereo WAV of the aevalsrc expression `expr` (in t), at 48 kHz."""
    run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc='{expr}':s={RATE}:d={seconds}:c=stereo",
                "-c:a", "pcm_s16le", str(path)])
    return path


def make_film(path: Path, expr: str | None, seconds: float, size: str = "160x96") -> Path:
    """An H.264 film of `seconds` at 24 fps with audio `expr` (AAC stereo), or without audio."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=24:duration={seconds}"]
    if expr is not None:
        args += ["-f", "lavfi", "-i", f"aevalsrc='{expr}':s={RATE}:d={seconds}:c=stereo"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p"]
    if expr is not None:
        args += ["-c:a", "aac", "-b:a", "192k"]
    run_ffmpeg([*args, "-movflags", "+faststart", str(path)])
    return path


def samples(path: Path, af: str | None = None) -> array:
    """The first audio stream of `path` decoded to mono float samples at 48 kHz."""
    mono = "pan=mono|c0=0.5*c0+0.5*c1"  # the mean of L and R (-ac 1 would add 3 dB)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path),
           "-map", "0:a:0", "-af", f"{af},{mono}" if af else mono,
           "-ar", str(RATE), "-f", "f32le", "-"]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout
    data = array("f")
    data.frombytes(out)
    return data


def rms_db(data: array, start_s: float, end_s: float) -> float:
    """RMS of data[start_s:end_s] in dBFS."""
    window = data[int(start_s * RATE) : int(end_s * RATE)]
    power = sum(x * x for x in window) / max(1, len(window))
    return 10 * math.log10(power) if power > 0 else -math.inf


def video_packets(path: Path) -> list[tuple[int | None, int, bytes]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.size, bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]


def sine(amp: float, hz: int) -> str:
    return f"{amp}*sin(2*PI*{hz}*t)"


# measure


def test_measure_matches_the_reference_sine(tmp_path):
    # a 1 kHz sine of peak A in both channels: K-weighting adds ~0.7 dB at 1 kHz, the mean
    # square is A^2/2 per channel and two channels sum, so I ~= 20 log10 A LUFS; true peak A
    ref = measure(make_audio(tmp_path / "ref.wav", sine(0.1, 1000), 10))
    assert ref.integrated_lufs == pytest.approx(-20.0, abs=0.3)
    assert ref.true_peak_dbtp == pytest.approx(-20.0, abs=0.2)
    assert ref.lra == pytest.approx(0.0, abs=0.5)
    louder = measure(make_audio(tmp_path / "loud.wav", sine(0.2, 1000), 10))
    assert louder.integrated_lufs - ref.integrated_lufs == pytest.approx(6.02, abs=0.2)


def test_measure_silence_and_errors(tmp_path):
    quiet = measure(make_audio(tmp_path / "silence.wav", "0", 3))
    assert quiet.integrated_lufs <= -70 and quiet.true_peak_dbtp == -math.inf
    with pytest.raises(MediaError, match="no audio"):
        measure(make_film(tmp_path / "mute.mp4", None, 1))
    with pytest.raises(MediaError):
        measure(tmp_path / "missing.wav")


# normalise


@pytest.mark.parametrize("amp,spike", [(0.01, 0), (0.9, 0), (0.01, 0.9)],
                         ids=["quiet", "loud", "quiet-with-spikes"])
def test_normalise_reaches_target_and_true_peak(tmp_path, amp, spike):
    # speech-like: a 4 Hz amplitude-modulated 1 kHz tone over a noise floor, 2 s of silence;
    # "spikes": 5 ms bursts near full scale every 3 s, so one linear gain would clip them and
    # loudnorm would fall back to its dynamic mode (10 LU short here): normalise limits instead
    expr = (f"if(between(t,6,8),0,{amp}*(0.6+0.4*sin(2*PI*4*t))*sin(2*PI*1000*t)"
            f"+{amp}*0.05*(random(0)*2-1))+{spike}*lt(mod(t,3),0.005)*sin(2*PI*3000*t)")
    film = make_film(tmp_path / "film.mp4", expr, 20)
    out = tmp_path / "norm.mp4"
    result = normalise(film, out, target_lufs=-14.0, true_peak_dbtp=-1.0)
    after = measure(out)  # measured independently of the function's own report
    assert after == result.after
    assert after.integrated_lufs == pytest.approx(-14.0, abs=1.0)
    assert after.true_peak_dbtp <= -1.0
    assert result.before.integrated_lufs == pytest.approx(measure(film).integrated_lufs)
    info, src = probe(out), probe(film)
    assert info.audio_params[2] == RATE  # not loudnorm's 192 kHz
    assert info.video_duration_s == pytest.approx(src.video_duration_s, abs=1 / 24)
    assert info.audio_duration_s == pytest.approx(src.audio_duration_s, abs=1 / 24)
    assert video_packets(out) == video_packets(film)  # video copied, bit for bit
    assert result.mode == ("limited" if spike else "linear")
    print(amp, spike, result)


def test_normalise_refuses_silence_and_no_audio(tmp_path):
    with pytest.raises(MediaError, match="silent"):
        normalise(make_film(tmp_path / "s.mp4", "0", 2), tmp_path / "o.mp4")
    with pytest.raises(MediaError, match="no audio"):
        normalise(make_film(tmp_path / "m.mp4", None, 1), tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()


# music bed and mix

SPANS = [(4.0, 7.0), (9.0, 10.0)]


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    # 5 s of music: the film is longer, so the bed must loop
    d = tmp_path_factory.mktemp("music")
    return make_audio(d / "theme.wav", sine(0.5, MUSIC_HZ), 5)


def test_bed_loops_fades_and_ducks(tmp_path, music):
    out = bed(music, tmp_path / "bed.m4a", 12.0, gain_db=-18, fade_s=1.0, dialogue=SPANS,
              duck_db=10, ramp_s=0.2)
    data = samples(out)
    assert len(data) / RATE == pytest.approx(12.0, abs=1 / 24)
    level = 20 * math.log10(0.5 / math.sqrt(2)) - 18  # the sine's RMS at -18 dB
    assert rms_db(data, 1.5, 3.5) == pytest.approx(level, abs=0.5)
    assert rms_db(data, 5.5, 8.0 - 1.0) == pytest.approx(level - 10, abs=0.5)  # ducked
    assert rms_db(data, 7.5, 8.5) == pytest.approx(level, abs=0.5)  # back up between lines
    assert rms_db(data, 9.2, 9.8) == pytest.approx(level - 10, abs=0.5)
    assert rms_db(data, 10.5, 10.9) == pytest.approx(level, abs=0.5)
    assert rms_db(data, 0, 0.05) < level - 15  # faded in
    assert rms_db(data, 11.95, 12.0) < level - 15  # faded out


def test_mix_music_audible_in_silence_ducked_under_dialogue(tmp_path, music):
    # the film: silence except two "dialogue" stretches of a 4 kHz tone at -12 dBFS
    voice = " + ".join(f"between(t,{s},{e})" for s, e in SPANS)
    film = make_film(tmp_path / "film.mp4", f"({voice})*{sine(0.25, VOICE_HZ)}", 12)
    out = mix_music(film, music, tmp_path / "mixed.mp4", gain_db=-18, duck_db=10,
                    dialogue=SPANS, fade_s=1.0)
    src, info = probe(film), probe(out)
    assert info.video_duration_s == pytest.approx(src.video_duration_s, abs=1e-6)
    assert info.audio_duration_s == pytest.approx(src.video_duration_s, abs=1 / 24)
    assert video_packets(out) == video_packets(film)
    assert info.video_params == src.video_params

    bed_only = samples(out, MUSIC_ONLY)
    open_air = rms_db(bed_only, 1.5, 3.5)
    assert open_air > -45  # audible where the film is silent (-27 dBFS expected)
    assert rms_db(bed_only, 4.5, 6.5) <= open_air - (10 - 3)
    assert rms_db(bed_only, 9.2, 9.8) <= open_air - (10 - 3)
    # the film's own audio is kept at its level (amix normalize=0 does not halve it)
    whole = samples(out)
    assert rms_db(whole, 4.5, 6.5) == pytest.approx(20 * math.log10(0.25 / math.sqrt(2)), abs=1)


def test_mix_music_trims_long_music_and_handles_a_mute_film(tmp_path):
    long_music = make_audio(tmp_path / "long.wav", sine(0.5, MUSIC_HZ), 8)
    film = make_film(tmp_path / "mute.mp4", None, 3)
    out = mix_music(film, long_music, tmp_path / "out.mp4", fade_s=0.5)
    info = probe(out)
    assert info.has_audio
    assert info.audio_duration_s == pytest.approx(3.0, abs=1 / 24)
    with pytest.raises(MediaError, match="forward"):
        mix_music(film, long_music, tmp_path / "bad.mp4", dialogue=[(2.0, 1.0)])
    assert not (tmp_path / "bad.mp4").exists()


def test_declick_fades_head_and_tail(tmp_path):
    film = make_film(tmp_path / "clip.mp4", sine(0.5, 1000), 2)
    out = declick(film, tmp_path / "declicked.mp4", fade_s=0.01)
    data = samples(out)
    assert abs(data[0]) < 0.01 and abs(data[-1]) < 0.05
    assert rms_db(data, 0.5, 1.5) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.5)
    assert video_packets(out) == video_packets(film)


def test_normalise_a_pure_tone_stays_linear(tmp_path):
    # LRA 0: loudnorm leaves linear mode for measured_LRA=0 unless told otherwise
    film = make_film(tmp_path / "tone.mp4", sine(0.05, 1000), 5)
    result = normalise(film, tmp_path / "out.mp4", target_lufs=-16.0)
    assert result.mode == "linear"
    assert measure(tmp_path / "out.mp4").integrated_lufs == pytest.approx(-16.0, abs=0.5)
