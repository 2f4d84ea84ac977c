"""Dialogue and voices compiled per provider (issue 24; docs/providers.md, "Dialogue and
voices"): the lines in each prompt in the documented form, the speaker as the provider names
the element, the voices bound where the API has them, their limits located, the rest a
warning and the line in the prompt alone."""

from __future__ import annotations

import json
import math
import struct
import wave
from decimal import Decimal
from pathlib import Path

import pytest

from kling_compose.providers import PROVIDERS
from kling_compose.providers.base import PLACEHOLDER_PREFIX
from kling_compose.providers.dialogue import sample_seconds

from .factory import FILE, diagnostics, element, line, make_shot, segment

IMG, IMG2 = "https://example.com/a.png", "https://example.com/b.png"
VID = "https://example.com/v.mp4"
LINES = [line("mara", "You came back.", "quietly", at=40), line("theo", "I never left.", at=41),
         line("narrator", "She did not believe him.", at=42)]
SPOKEN = ['[{mara}, quietly]: "You came back."', '[{theo}]: "I never left."',
          '[Narrator, off-screen voice-over]: "She did not believe him."']
VOICE = f"{PLACEHOLDER_PREFIX}voice:mara"


def write_wav(path: Path, seconds: float) -> Path:
    rate = 8000
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", int(4000 * math.sin(n / 7)))
                                 for n in range(int(rate * seconds))))
    return path


def people(voice: str | None = "https://example.com/mara.wav", **theo):
    mara = element("mara", frontal_image=IMG, images=[IMG2], voice=voice)
    return [mara, element("theo", frontal_image=IMG2, images=[IMG], **theo)]


def talk(provider: str, model: str = "kling-3-pro", **fields):
    fields.setdefault("elements", people())
    fields.setdefault("dialogue", LINES)
    fields.setdefault("first_frame", IMG)
    return make_shot(provider=provider, model=model, prompt_text="@mara pours tea for @theo",
                     audio=True, **fields)


# -- the lines in the prompt, each provider's way ---------------------------------------------

@pytest.mark.parametrize("provider, model, mara, theo", [
    ("fal", "kling-3-pro", "@Element1", "@Element2"),  # seed 001: "@Element1, @Element2"
    ("kling", "kling-3-pro", "<<<element_1>>>", "<<<element_2>>>"),  # 3.0 spec
    ("runware", "kling-3-pro", "<<<element_1>>>", "<<<element_2>>>"),  # seed 000
    ("kie", "kling-3-pro", "@mara", "@theo"),  # kie: @element_name
    ("kling-v3-task", "kling-3-pro", "@mara", "@theo"),  # seed 002: @element_name
])
def test_every_line_follows_its_prompt_with_the_speaker_as_the_provider_names_it(
        compile_one, provider, model, mara, theo):
    shot = talk(provider, model)
    if provider == "kling-v3-task":
        shot = talk(provider, model, first_frame=None,
                    elements=[element("mara", frontal_image=IMG, images=[IMG2]),
                              element("theo", frontal_image=IMG2, images=[IMG])])
    job = compile_one(shot)
    prompt = PROVIDERS[provider].prompt_text(shot, shot.prompt)
    head, *lines = prompt.splitlines()
    assert head == f"{mara} pours tea for {theo}"
    assert lines == [s.format(mara=mara, theo=theo) for s in SPOKEN]
    assert json.dumps(prompt) in json.dumps(job.request)  # the prompt sent is the one measured


def test_each_multi_prompt_segment_carries_its_own_lines(compile_one):
    shot = make_shot(provider="fal", multi_prompt=[
        segment("@mara at the door", 5, line("mara", "Then stay.")),
        segment("@theo sits", 4),
        segment("Rain on the window", 3, line("narrator", "He stayed.", "low"))],
        elements=people(), first_frame=IMG)
    body = compile_one(shot).request
    assert [s["prompt"] for s in body["multi_prompt"]] == [
        '@Element1 at the door\n[@Element1]: "Then stay."',
        "@Element2 sits",
        'Rain on the window\n[Narrator, off-screen voice-over, low]: "He stayed."']
    assert body["elements"][0]["voice_id"] == VOICE  # mara speaks in segment 1


def test_a_shot_with_lines_and_no_prompt_sends_the_lines_as_its_prompt(compile_one):
    shot = make_shot(provider="fal", prompt_text=None,
                     dialogue=[line("narrator", 'It said "rain".')])
    assert compile_one(shot).request["prompt"] == \
        "[Narrator, off-screen voice-over]: \"It said 'rain'.\""


def test_the_limits_measure_the_prompt_with_its_lines(compile_one):
    shot = make_shot(provider="fal", prompt_text="a" * 2480, dialogue=[line("narrator", "b" * 40)])
    found = diagnostics(shot)
    assert any("prompt" in d and "2500" in d for d in found), found


# -- voices bound where the API has them ------------------------------------------------------

def test_fal_binds_a_speaking_elements_voice_on_the_element_and_prices_voice_control(
        compile_one):
    job = compile_one(talk("fal"))
    elements = job.request["elements"]
    assert elements[0]["voice_id"] == VOICE and "voice_id" not in elements[1]
    # fal v3 pro: $0.196/s with voice control, 5 s
    assert job.cost_usd == Decimal("0.196") * 5
    silent_voice = compile_one(talk("fal", elements=people(voice=None)))
    assert silent_voice.cost_usd == Decimal("0.168") * 5  # audio, no voice


def test_an_element_that_does_not_speak_sends_no_voice(compile_one):
    job = compile_one(talk("fal", dialogue=[line("theo", "Hm.")]))
    assert all("voice_id" not in e for e in job.request["elements"])


def test_a_voice_id_is_sent_as_written_and_nothing_is_made(compile_one):
    job = compile_one(talk("fal", elements=[
        element("mara", frontal_image=IMG, voice_id="829877809978941442"),
        element("theo", frontal_image=IMG2)]))
    assert job.request["elements"][0]["voice_id"] == "829877809978941442"


def test_fal_refuses_a_third_voice_at_the_line_that_brings_it():
    trio = [people()[0], element("theo", frontal_image=IMG2, voice_id="v2"),
            element("ana", frontal_image=IMG, voice_id="v3")]
    shot = talk("fal", elements=trio, dialogue=[*LINES[:2], line("ana", "And me.", at=43)])
    (error,) = [d for d in diagnostics(shot) if "voices" in d]
    assert error.startswith(f"{FILE}:43:17: error: 3 voices speak in shot 's1' (mara, theo, ana);"
                            " fal binds at most 2 per generation")
    assert "hint: fal: at most 2 voices per task" in error


def test_kling_binds_a_voice_to_a_video_element_it_creates_and_prices_voice_control(
        compile_one):
    singer = element("mara", videos=[VID], voice="https://example.com/mara.wav")
    shot = make_shot(provider="kling", prompt_text="@mara sings", first_frame=IMG, audio=True,
                     elements=[singer], dialogue=[line("mara", "La la.")])
    job = compile_one(shot)
    kling = PROVIDERS["kling"]
    body = kling.element_request(singer, lambda s, m: s.value)
    assert body["element_voice_id"] == VOICE and body["reference_type"] == "video_refer"
    assert kling.voice_request(singer, lambda s, m: s.value) == {
        "voice_name": "mara-26ef675d", "voice_url": "https://example.com/mara.wav"}
    assert job.cost_usd == Decimal("1.4") * Decimal("0.14") * 5  # pro, sound, voice
    assert "voice control" in (job.cost_note or "")


def test_kling_cannot_bind_an_image_elements_voice_and_says_so_once(compile_one):
    job = compile_one(talk("kling"))
    assert [w.message for w in job.warnings if "voice" in w.message] == [
        "kling cannot bind the voice of element 'mara' (Kling binds a voice to a video element "
        "only (element_voice_id), and voice_list cannot go with element_list): its lines go "
        "into the prompt alone, spoken in a voice the model picks"]
    assert "element_voice_id" not in PROVIDERS["kling"].element_request(
        people()[0], lambda s, m: s.value)
    assert job.cost_usd == Decimal("1.2") * Decimal("0.14") * 5  # audio, no voice


def test_kling_takes_a_voice_sample_only_as_a_url(tmp_path):
    sample = write_wav(tmp_path / "mara.wav", 6)
    singer = element("mara", videos=[VID], voice=str(sample))
    shot = make_shot(provider="kling", prompt_text="@mara sings", first_frame=IMG, audio=True,
                     elements=[singer], dialogue=[line("mara", "La la.")])
    (error,) = diagnostics(shot)
    assert "kling takes a voice sample only as an http(s) URL" in error
    assert "voice_id:" in error


def test_runware_and_kie_send_a_sample_as_the_elements_audio(compile_one):
    runware = compile_one(talk("runware")).request["inputs"]["elements"][0]
    assert runware["voices"] == ["https://example.com/mara.wav"]  # seed 000 `voices`
    kie = compile_one(talk("kie")).request["input"]["kling_elements"][0]
    assert kie["element_input_audio_urls"] == ["https://example.com/mara.wav"]


@pytest.mark.parametrize("provider", ["runware", "kie"])
def test_a_voice_id_where_the_api_has_no_voice_ids_is_a_warning(compile_one, provider):
    job = compile_one(talk(provider, elements=[
        element("mara", frontal_image=IMG, images=[IMG2], voice_id="v-1"),
        element("theo", frontal_image=IMG2, images=[IMG])]))
    (warning,) = [w for w in job.warnings if "voice" in w.message]
    assert warning.message.startswith(f"{provider} cannot bind the voice of element 'mara'")
    assert warning.location is not None and warning.location.line == 3


def test_kling_v3_task_puts_the_lines_in_the_prompt_alone_with_a_warning(compile_one):
    shot = make_shot(provider="kling-v3-task", prompt_text="@mara waits",
                     elements=[element("mara", frontal_image=IMG, images=[IMG2],
                                       voice="https://example.com/mara.wav")],
                     dialogue=[line("mara", "Hello.")])
    job = compile_one(shot)
    assert job.request["input"]["prompt"] == '@mara waits\n[@mara]: "Hello."'
    (warning,) = job.warnings
    assert "kling-v3-task cannot bind the voice of element 'mara'" in warning.message
    assert warning.severity == "warning"


def test_the_same_unbindable_voice_warns_once_however_many_shots_it_speaks_in():
    from kling_compose.compiler import compile_shots

    from .factory import make_resolved

    shots = [make_shot(id=f"s{n}", provider="kling-v3-task", prompt_text="@mara waits",
                       elements=[element("mara", frontal_image=IMG, images=[IMG2],
                                         voice="https://example.com/mara.wav")],
                       dialogue=[line("mara", "Hello.")]) for n in (1, 2)]
    jobs = compile_shots(make_resolved(*shots))
    assert len(dict.fromkeys(w for job in jobs for w in job.warnings)) == 1  # as cli prints


# -- samples: format and length, located ------------------------------------------------------

def test_a_sample_outside_5_to_30_seconds_is_refused_at_its_voice(tmp_path):
    short = write_wav(tmp_path / "assets" / "short.wav", 3.0)
    assert sample_seconds(short) == pytest.approx(3.0, abs=0.01)
    shot = talk("fal", elements=people(voice=str(short)))
    errors = [d for d in diagnostics(shot) if "lasts" in d]
    assert len(errors) == 1
    assert f"voice sample '{short}' lasts 3.0 s; fal takes 5-30 s" in errors[0]
    assert "hint: fal create-voice: voice_url .mp3/.wav/.mp4/.mov, 5-30 s" in errors[0]


def test_a_sample_in_another_format_is_refused():
    shot = talk("fal", elements=people(voice="https://example.com/mara.ogg"))
    (error,) = [d for d in diagnostics(shot) if "voice sample" in d]
    assert "is not one of .mp3/.wav/.mp4/.mov; fal takes only those" in error


def test_a_sample_that_is_no_audio_is_refused(tmp_path):
    broken = tmp_path / "mara.wav"
    broken.write_bytes(b"not audio")
    (error,) = [d for d in diagnostics(talk("fal", elements=people(voice=str(broken))))
                if "voice sample" in d]
    assert "cannot read voice sample" in error


def test_a_sample_of_the_right_length_compiles_to_an_upload_and_a_voice(compile_one, tmp_path):
    sample = write_wav(tmp_path / "assets" / "mara.wav", 6.0)
    job = compile_one(talk("fal", elements=people(voice=str(sample))))
    assert job.request["elements"][0]["voice_id"] == VOICE
    assert job.inputs == ()  # the sample is the voice task's input, not the generation's


# -- capabilities -----------------------------------------------------------------------------

def test_the_capabilities_say_who_makes_voices_and_how_many_a_generation_binds():
    table = {name: (p.creates_voices, p.voices_per_task) for name, p in PROVIDERS.items()}
    assert table == {"fal": (True, 2), "kling": (True, 2), "runware": (False, 3),
                     "kie": (False, 3), "kling-v3-task": (False, 0), "preview": (False, 0)}
    for name, provider in PROVIDERS.items():
        if provider.creates_voices:
            assert type(provider).voice_request is not type(PROVIDERS["preview"]).voice_request


def test_kling_counts_only_the_voices_it_binds():
    singers = [element(n, videos=[VID], voice_id=f"v{n}") for n in ("a", "b", "c")]
    lines = [line(n, "La.", at=40 + i) for i, n in enumerate(("a", "b", "c"))]
    shot = make_shot(provider="kling", prompt_text="@a @b @c sing", first_frame=IMG, audio=True,
                     elements=singers, dialogue=lines)
    (error,) = [d for d in diagnostics(shot) if "voices speak" in d]
    assert error.startswith(f"{FILE}:42:17: error: 3 voices speak in shot 's1' (a, b, c); kling "
                            "binds at most 2 per generation")
    # image elements' voices are not bound (a warning each), so they do not count
    images = [element(n, frontal_image=IMG, images=[IMG2], voice_id=f"v{n}") for n in "abc"]
    found = diagnostics(make_shot(provider="kling", prompt_text="@a @b @c sing",
                                  first_frame=IMG, audio=True, elements=images, dialogue=lines))
    assert found and all("warning" in d and "cannot bind" in d for d in found), found


def test_a_line_stays_one_line_of_the_prompt_whatever_its_words_and_tone():
    from kling_compose.model import Line
    from kling_compose.providers.dialogue import line_text

    line = Line("mara", 'You came\nback, "again".', "angry] [whispering\n  low")
    assert line_text(line, "@Element1") == \
        '[@Element1, angry) (whispering low]: "You came back, \'again\'."'
