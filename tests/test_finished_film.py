"""Issue 24, the storyboard side: dialogue, an output's edit and deliverables as `validate` and
`plan` see them (the media side is tests/media/test_cut.py, the providers' dialogue and voices
tests/providers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.projects import cli, make_project

from kling_compose import build_plan, load_storyboard
from kling_compose.compiler import compile_shots
from kling_compose.plan import hash_key
from kling_compose.pipeline import load_resolved

TWO_CHARACTERS = """\
version: 1
name: tea
elements:
  mara: { description: a woman in a green coat }
  theo: { description: a tall man }
  kettle: { description: a copper kettle }
scenes:
  - id: kitchen
    shots:
      - id: tea
        prompt: "@kettle steams"
        duration: 5
        framing: { focus: [0.35, 0.5] }
        dialogue:
          - { speaker: mara, line: "You came back.", tone: quietly }
          - { speaker: theo, line: "I never left." }
          - { speaker: narrator, line: "She did not believe him." }
      - id: door
        duration: 10
        multi_prompt:
          - prompt: "@theo opens the door"
            duration: 4
            dialogue: [{ speaker: theo, line: "Goodbye, Mara." }]
          - { prompt: "@mara watches him go", duration: 6 }
"""


def resolved(root: Path, text: str):
    (root / "storyboard.yaml").write_text(text, encoding="utf-8")
    return load_resolved(root / "storyboard.yaml")


def test_lines_of_a_shot_and_of_its_segments_carry_their_spans(tmp_path):
    shots = {s.id: s for s in resolved(tmp_path, TWO_CHARACTERS).shots}
    tea, door = shots["tea"], shots["door"]
    assert [(line.speaker, line.text, line.tone, a, b) for line, a, b in tea.lines] == [
        ("mara", "You came back.", "quietly", 0.0, 5.0),
        ("theo", "I never left.", None, 0.0, 5.0),
        ("narrator", "She did not believe him.", None, 0.0, 5.0)]
    assert [(line.speaker, a, b) for line, a, b in door.lines] == [("theo", 0.0, 4.0)]
    assert tea.focus == (0.35, 0.5) and door.focus == (0.5, 0.5)
    # a speaker is not made one of the shot's elements (an element needs a first frame on
    # fal and Kling 3.0, and a text-to-video shot may speak); a shot that speaks has sound
    # unless told otherwise
    assert [e.name for e in tea.elements] == ["kettle"]
    assert tea.audio is True and door.audio is True
    assert tea.where("audio").line == 15  # the first line: where sound was asked for


def test_lines_too_many_for_their_seconds_are_a_warning(tmp_path):
    text = TWO_CHARACTERS.replace(
        'line: "Goodbye, Mara."',
        'line: "Goodbye Mara, I am going now and I will not come back to this house again"')
    jobs = compile_shots(resolved(tmp_path, text))
    (warning,) = [w for job in jobs for w in job.warnings if "natural speech" in w.message]
    assert warning.message.startswith("16 words of dialogue in a 4 s segment of 'door'")
    assert warning.location.line == 23
    assert "make the segment about 6 s" in warning.hint


ON_FAL = """\
version: 1
name: fal-tea
defaults: { provider: fal, duration: 5 }
elements:
  mara:
    frontal_image: https://example.com/mara.png
    voice_id: "829824295735410756"
scenes:
  - id: kitchen
    shots:
      - id: tea
        prompt: A kitchen at night
        dialogue:
          - { speaker: mara, line: "You came back.", tone: quietly }
          - { speaker: narrator, line: "She did not believe him." }
      - id: door
        prompt: "@mara at the door"
        first_frame: https://example.com/door.png
        dialogue: [{ speaker: mara, line: "Goodbye." }]
"""


def test_a_voice_that_cannot_bind_because_its_speaker_is_not_in_the_shot_is_a_warning(tmp_path):
    jobs = {job.shot.id: job for job in compile_shots(resolved(tmp_path, ON_FAL))}
    (warning,) = [w for w in jobs["tea"].warnings if "not one of its elements" in w.message]
    assert warning.message.startswith("'mara' speaks in shot 'tea' but is not one of its "
                                      "elements, so the voice is not bound")
    assert (warning.location.line, warning.location.col) == (14, 24)
    assert warning.hint == "name @mara in the prompt, or add it to the shot's `elements:`"
    # a text-to-video shot speaks on fal: its speaker is named, not sent as an element
    tea = jobs["tea"].request
    assert "elements" not in tea and tea["prompt"] == (
        'A kitchen at night\n[mara, quietly]: "You came back."\n'
        '[Narrator, off-screen voice-over]: "She did not believe him."')
    # `door` names @mara: she is its element, and her voice binds there
    door = jobs["door"]
    assert not [w for w in door.warnings if "not one of its elements" in w.message]
    assert door.request["elements"][0]["voice_id"] == "829824295735410756"
    assert door.request["prompt"].endswith('[@Element1]: "Goodbye."')


def test_validate_accepts_the_documented_storyboard(tmp_path):
    make_project(tmp_path, TWO_CHARACTERS)
    result = cli("validate", tmp_path / "storyboard.yaml")
    assert result.exit_code == 0, result.output


EDITED = TWO_CHARACTERS + """\
outputs:
  - path: renders/film.mp4
  - path: renders/cut.mp4
    fade_in: 1
    subtitles: [srt, vtt]
    audio: { music: assets/theme.wav, loudness: -14 }
    sequence:
      - { title: "NIGHT SHIFT", duration: 3 }
      - { shot: tea, in: 0.4, out: 4.6, transition: { dip: 0.5 } }
      - door
  - path: renders/vertical.mp4
    aspect: "9:16"
    burn_in: true
"""


def _wav(path: Path, hz: int) -> None:
    """One second of a square-ish tone: a real, if dull, music file."""
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"".join((8000 if (n * hz // 4000) % 2 else -8000).to_bytes(
            2, "little", signed=True) for n in range(8000)))


def _plan(root: Path, text: str, music: int = 440):
    make_project(root, text)
    _wav(root / "assets" / "theme.wav", music)
    return build_plan(load_storyboard(root / "storyboard.yaml"))


def test_an_output_s_edit_and_delivery_reach_its_assemble_task(tmp_path):
    plan = _plan(tmp_path, EDITED)
    plain = plan.tasks["assemble:renders/film.mp4"].assemble_params
    cut = plan.tasks["assemble:renders/cut.mp4"].assemble_params
    vertical = plan.tasks["assemble:renders/vertical.mp4"].assemble_params
    assert plain.sequence == ("tea", "door")
    # dialogue in its shots: even the default output is cut (its lines are timed and ducked)
    assert plain.edited and plain.pieces[0].lines[0][:2] == ("mara", "You came back.")
    title, tea, door = cut.pieces
    assert (title.shot, title.title, title.duration_s, title.background) == \
        (None, "NIGHT SHIFT", 3.0, "black")
    assert (tea.shot, tea.start_s, tea.end_s, tea.transition, tea.transition_s, tea.focus) == \
        ("tea", 0.4, 4.6, "dip", 0.5, (0.35, 0.5))
    assert (door.shot, door.transition, door.lines) == \
        ("door", "cut", (("theo", "Goodbye, Mara.", 0.0, 4.0),))
    assert cut.delivery.subtitles == ("srt", "vtt") and cut.delivery.fade_in_s == 1.0
    assert cut.delivery.music == str(tmp_path / "assets" / "theme.wav")
    assert cut.delivery.loudness_lufs == -14.0 and cut.delivery.duck_db == 10.0
    assert vertical.delivery.aspect == (9, 16) and vertical.delivery.burn_in
    assert vertical.delivery.reframe == "crop"


def test_a_film_is_made_again_when_its_music_changes_and_only_then(tmp_path):
    first = _plan(tmp_path / "a", EDITED)
    same = _plan(tmp_path / "b", EDITED)
    other = _plan(tmp_path / "c", EDITED, music=330)
    key = lambda plan, out: plan.tasks[f"assemble:renders/{out}"].cache_key
    assert key(first, "cut.mp4") == key(same, "cut.mp4")  # the folder is not in the key
    assert key(first, "cut.mp4") != key(other, "cut.mp4")
    assert key(first, "vertical.mp4") == key(other, "vertical.mp4")  # no music there


def test_an_unedited_film_keeps_the_key_it_always_had(tmp_path):
    text = "\n".join(line for line in TWO_CHARACTERS.splitlines()
                     if "dialogue" not in line and "speaker" not in line) + "\n"
    plan = _plan(tmp_path, text + "outputs:\n  - path: renders/film.mp4\n")
    task = plan.tasks["assemble:renders/film.mp4"]
    gens = [plan.tasks[f"generate:{s}"].cache_key for s in ("tea", "door")]
    assert not task.assemble_params.edited
    assert task.cache_key == hash_key("assemble", 0.0, [(g, 1) for g in gens])
    assert "edit" not in task.made_from


GENERATED = """\
version: 1
name: gen
defaults: { provider: fal, duration: 5 }
scenes:
  - id: a
    shots:
      - { id: one, prompt: A kettle starts to steam }
      - { id: two, prompt: A hand lifts the kettle, first_frame: { from: previous } }
      - { id: three, prompt: Steam fills the room }
outputs:
  - path: renders/film.mp4
  - path: renders/vertical.mp4
    aspect: "9:16"
    reframe: generate
    sequence: [two, three]
"""


def test_reframe_generate_adds_a_paid_generation_per_shot_at_the_aspect(tmp_path):
    plan = _plan(tmp_path, GENERATED)
    made = [t for t in plan.order if t.startswith("generate:")]
    # `two` chains from `one`: its variant chains from one's variant, made for it
    assert made == ["generate:one", "generate:two", "generate:three", "generate:one@9x16",
                    "generate:two@9x16", "generate:three@9x16"]
    for shot in ("one", "two", "three"):
        variant = plan.tasks[f"generate:{shot}@9x16"]
        assert variant.cost_usd == plan.tasks[f"generate:{shot}"].cost_usd > 0
        assert variant.generation.shot.aspect == "9:16"
    assert plan.tasks["generate:one@9x16"].generation.request["aspect_ratio"] == "9:16"
    assert "upload:fal:frame:one@9x16:last" in plan.tasks["generate:two@9x16"].depends_on
    vertical = plan.tasks["assemble:renders/vertical.mp4"]
    assert vertical.assemble_params.sequence == ("two@9x16", "three@9x16")
    assert plan.tasks["assemble:renders/film.mp4"].assemble_params.sequence == \
        ("one", "two", "three")


def test_a_variant_is_made_again_exactly_when_its_shot_or_its_source_changes(tmp_path):
    before = _plan(tmp_path / "a", GENERATED)
    after = _plan(tmp_path / "b", GENERATED.replace("A kettle starts", "A pot starts"))
    changed = {t for t in before.order if t.startswith("generate:")
               and before.tasks[t].cache_key != after.tasks[t].cache_key}
    assert changed == {"generate:one", "generate:two", "generate:one@9x16",
                       "generate:two@9x16"}


@pytest.mark.parametrize("field, message", [
    ("reframe: generate", "`reframe: generate` needs the output's `aspect`"),
    ("size: 1080x1080\n    aspect: '9:16'", "size 1080x1080 is not 9:16"),
])
def test_deliverable_mistakes_are_located(tmp_path, field, message):
    make_project(tmp_path, GENERATED.replace(
        "    aspect: \"9:16\"\n    reframe: generate\n", f"    {field}\n"))
    result = cli("validate", tmp_path / "storyboard.yaml")
    assert result.exit_code == 1
    assert f"storyboard.yaml:12:5: error: {message}" in result.output


def test_pick_on_a_variant_points_at_its_shot(tmp_path):
    make_project(tmp_path, GENERATED)
    result = cli("pick", "two@9x16", "1", tmp_path / "storyboard.yaml")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "'two@9x16' is shot 'two' generated again at 9:16" in result.output
    assert "kling-compose pick two 1" in result.output


def test_a_subtitle_path_that_is_a_folder_is_refused_before_the_run(tmp_path):
    make_project(tmp_path, GENERATED.replace("    sequence: [two, three]\n",
                                             "    sequence: [two, three]\n    subtitles: [srt]\n"))
    (tmp_path / "renders" / "vertical.srt").mkdir(parents=True)
    result = cli("validate", tmp_path / "storyboard.yaml")
    assert result.exit_code == 1
    assert "renders/vertical.srt is a folder: run writes the film's srt subtitles there" in \
        result.output


def test_no_variant_where_the_aspect_would_not_change_the_request(tmp_path):
    """A shot from an image is framed by its image on every provider, and one already at the
    aspect is what the output wants: their variants would be the same paid request twice."""
    text = GENERATED.replace(
        "      - { id: three, prompt: Steam fills the room }\n",
        "      - { id: three, prompt: Steam fills the room, first_frame: assets/start.png }\n"
        "      - { id: four, prompt: A tall window, aspect: '9:16' }\n"
        "      - { id: five, prompt: The window opens, first_frame: { from: three } }\n"
    ).replace("    sequence: [two, three]\n", "    sequence: [two, three, four, five]\n")
    plan = _plan(tmp_path, text)
    made = [t for t in plan.order if t.startswith("generate:") and "@" in t]
    assert made == ["generate:one@9x16", "generate:two@9x16"]
    vertical = plan.tasks["assemble:renders/vertical.mp4"].assemble_params
    assert vertical.sequence == ("two@9x16", "three", "four", "five")
    assert vertical.delivery.reframe == "crop"  # what is not generated again is cropped
