"""`kling-compose import SCREENPLAY.fountain` (issue 27): the example screenplay, three scenes
and two characters, becomes a storyboard that validates at once and renders on the preview
with its dialogue in order, in the storyboard and in the film's subtitles; the mapping's
corners (docs/format.md, "Importing a screenplay"); the output never written over unless
asked; and every input that is not a screenplay refused with one located message."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml
from _e2e import PREVIEW, cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "screenplay" / "harbour.fountain"
LINES = ["He said he would be back by the first light.", "You're early.",
         "I'm late. Twenty years late.", "Then sit. The kettle's on.",
         "Some lights you keep burning."]


def imported(tmp_path: Path, text: str, *args: str) -> dict:
    """Import `text` as tmp_path/script.fountain; the storyboard written, read as YAML."""
    script = tmp_path / "script.fountain"
    script.write_text(text, encoding="utf-8")
    result = cli("import", script, *args)
    assert result.exit_code == 0, result.output
    return yaml.safe_load((tmp_path / "storyboard.yaml").read_text(encoding="utf-8"))


def validate(folder: Path) -> str:
    result = cli("validate", folder)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output, result.output
    return result.output


def shots(board: dict) -> list[dict]:
    return [shot for scene in board["scenes"] for shot in scene["shots"]]


def spoken(board: dict) -> list[tuple[str, str, str | None]]:
    return [(d["speaker"], d["line"], d.get("tone")) for shot in shots(board)
            for d in shot.get("dialogue", ())]


# -- the example, validated and rehearsed -----------------------------------------------------


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("harbour")
    shutil.copy(EXAMPLE, root / "harbour.fountain")
    result = cli("import", root / "harbour.fountain")
    assert result.exit_code == 0, result.output
    assert "3 scene(s), 5 shot(s), 2 element(s), 5 line(s) of dialogue" in result.stdout
    text = (root / "storyboard.yaml").read_text(encoding="utf-8")
    return root, text, yaml.safe_load(text)


def test_the_example_maps_scenes_shots_characters_and_lines(example):
    _, text, board = example
    assert board["name"] == "The Harbour Light"  # the title page's Title
    assert board["defaults"] == {"provider": "preview", "model": "kling-3-pro", "aspect": "16:9"}
    assert "set `provider:` under defaults" in text  # the header says how to switch
    assert [s["id"] for s in board["scenes"]] == ["ext-harbour-dawn", "int-harbour-office-day",
                                                  "ext-pier-night"]
    assert board["scenes"][1]["description"] == "INT. HARBOUR OFFICE - DAY"
    assert set(board["elements"]) == {"mara", "theo"}  # MARA (V.O.) is MARA
    assert all(set(e) == {"description"} for e in board["elements"].values())
    assert "# voice: assets/mara-voice.wav" in text and "# frontal_image: assets/theo.png" in text
    # a shot per action paragraph, its text the prompt (the note is gone), a duration from
    # its words at 2.5 a second within 3-15 s
    prompts = [s["prompt"] for s in shots(board)]
    assert prompts[0] == "Fishing boats rock at their moorings. Gulls wheel over the grey water."
    assert len(prompts) == 5 and not any("warm colour" in p or "come in" in p for p in prompts)
    for shot in shots(board):
        words = max(len(shot["prompt"].split()),
                    sum(len(d["line"].split()) for d in shot.get("dialogue", ())))
        assert shot["duration"] == min(15, max(3, math.ceil(words / 2.5)))
    # each speech on the action shot before it, its parenthetical or extension its tone
    assert spoken(board) == [
        ("mara", LINES[0], "to herself"), ("theo", LINES[1], None), ("mara", LINES[2], None),
        ("theo", LINES[3], "quietly"), ("mara", LINES[4], "voice-over")]
    assert [len(s.get("dialogue", ())) for s in shots(board)] == [0, 1, 0, 3, 1]
    # the transitions join the shots: DISSOLVE TO: a crossfade, CUT TO: a cut, the centered
    # text a title card, FADE IN: and FADE OUT. the film's fades
    (film,) = board["outputs"]
    assert film["path"] == "renders/the-harbour-light.mp4" and film["subtitles"] == ["srt"]
    assert (film["fade_in"], film["fade_out"]) == (1, 1)
    assert film["sequence"] == [
        "ext-harbour-dawn-1", "ext-harbour-dawn-2",
        {"shot": "int-harbour-office-day-1", "transition": {"crossfade": 0.5}},
        "int-harbour-office-day-2", "ext-pier-night-1", {"title": "THE END", "duration": 3}]


def test_the_example_validates_and_plans_on_every_provider_as_the_header_says(example):
    root, _, _ = example
    assert "ok: 3 scene(s), 5 shot(s), 2 element(s), 1 output(s)" in validate(root)
    for provider in ("runware", "fal", "kie", "kling"):
        result = cli("plan", root, "--json", "--provider", provider)
        assert result.exit_code == 0, (provider, result.output)
        assert len([t for t in json.loads(result.stdout)["tasks"]
                    if t["kind"] == "generate"]) == 5


def test_the_example_renders_on_the_preview_with_its_lines_in_order(example):
    root, _, _ = example
    result = cli("run", root, "--json", *PREVIEW)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0 and summary["generated"] == 5, summary
    (film,) = summary["outputs"]
    assert film["subtitles"] == ["renders/the-harbour-light.srt"]
    assert film["cues"] == 5
    srt = (root / "renders" / "the-harbour-light.srt").read_text(encoding="utf-8")
    cues = []
    for block in srt.strip().split("\n\n"):
        _, times, *words = block.splitlines()
        start, end = (sum(float(x) * f for x, f in zip(re.split("[:,]", t)[:3],
                                                          (3600, 60, 1))) for t in
                      times.split(" --> "))
        cues.append((start, end, " ".join(words)))
    assert [words for _, _, words in cues] == LINES
    assert all(a < b for a, b, _ in cues)
    assert all(cues[i][1] <= cues[i + 1][0] for i in range(len(cues) - 1))


def test_the_docs_show_what_the_example_becomes(example):
    _, text, _ = example
    docs = (Path(__file__).parents[2] / "docs" / "format.md").read_text(encoding="utf-8")
    section = docs[docs.index("## Importing a screenplay"):]
    scene = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    becomes = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert scene in EXAMPLE.read_text(encoding="utf-8")
    assert becomes in text


# -- the mapping's corners --------------------------------------------------------------------


def test_a_scene_without_action_the_narrator_lyrics_and_dual_dialogue(tmp_path):
    board = imported(tmp_path, """\
NARRATOR
Once, there was a harbour.

INT. KITCHEN - NIGHT

MARA
You came back.

THEO ^
I never left.

~Row, row, row your boat.

INT. HALL - NIGHT

INT. KITCHEN - NIGHT

@McCLANE (on the radio)
~Yippee ki-yay.

2ND GUARD
Halt.
""")
    validate(tmp_path)
    assert [s["id"] for s in board["scenes"]] == ["opening", "int-kitchen-night",
                                                  "int-hall-night", "int-kitchen-night-2"]
    assert set(board["elements"]) == {"mara", "theo", "mcclane", "_2nd_guard"}  # no narrator
    assert spoken(board) == [
        ("narrator", "Once, there was a harbour.", None), ("mara", "You came back.", None),
        ("theo", "I never left.", None), ("narrator", "Row, row, row your boat.", "singing"),
        ("mcclane", "Yippee ki-yay.", "on the radio, singing"), ("_2nd_guard", "Halt.", None)]
    # dialogue with no action before it in its scene is a shot of its own, named by its
    # speakers; a heading with nothing under it an establishing shot
    assert [s["prompt"] for s in shots(board)] == [
        "A voice speaks over the scene.", "INT. KITCHEN - NIGHT: Mara and Theo talk.",
        "Establishing shot: INT. HALL - NIGHT",
        "INT. KITCHEN - NIGHT: McCLANE and 2nd Guard talk."]
    assert [s["duration"] for s in shots(board)] == [3, 5, 3, 3]  # 11 words: 5 s


def test_long_speech_overflows_into_the_next_shot_and_long_action_is_split(tmp_path):
    speech = " ".join(f"Word{i}." for i in range(60))  # 60 words: 24 s, more than one shot
    action = "The tide comes in. " * 200  # 3,800 characters, more than a prompt takes
    board = imported(tmp_path, f"INT. PIER - DAY\n\n{action}\n\nMARA\n{speech}\n")
    validate(tmp_path)
    assert [len(s["prompt"]) <= 2500 for s in shots(board)] == [True] * 3
    assert " ".join(s["prompt"] for s in shots(board)[:2]) == action.strip()
    lines = [d["line"] for d in spoken_lines(board)]
    assert " ".join(lines) == speech
    assert all(len(line.split()) <= 37 for line in lines)
    # the first 37 words on the action shot before them (15 s at 2.5 a second), the rest on
    # a shot of their own
    assert [len(s.get("dialogue", ())) for s in shots(board)] == [0, 1, 1]
    assert [s["duration"] for s in shots(board)] == [15, 15, 10]


def test_paragraphs_with_nothing_to_film_are_left_out(tmp_path):
    board = imported(tmp_path, "INT. A - DAY\n\n...\n\n--\n\nA\n\nI.\n\nMail me@home.\n")
    validate(tmp_path)
    assert [s["prompt"] for s in shots(board)] == ["I.", "Mail me@@home."]


def spoken_lines(board: dict) -> list[dict]:
    return [d for shot in shots(board) for d in shot.get("dialogue", ())]


def test_text_that_yaml_or_jinja_would_read_stays_as_written(tmp_path):
    board = imported(tmp_path, """\
Title: {{ harbour }} & {% raw %}

EXT. PIER #{1}# - DAY

Mail me@example.com: "quoted" {# not a comment #} - yes: no # hash

MARA
(a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n o p q r s t u v w x y z)
@theo {{ line }}\u2028next\x85line
""")
    text = (tmp_path / "storyboard.yaml").read_text(encoding="utf-8")
    assert "{{" not in text and "{%" not in text and "{#" not in text
    validate(tmp_path)
    assert board["name"] == "{{ harbour }} & {% raw %}"
    (shot,) = shots(board)
    assert shot["prompt"] == 'Mail me@@example.com: "quoted" {# not a comment #} - yes: no # hash'
    (line,) = shot["dialogue"]
    assert line["line"] == "@theo {{ line }} next line"
    assert len(line["tone"]) <= 80


def test_a_title_card_and_a_crossfade_in_one_film_assemble(tmp_path):
    """A crossfade next to a run of cuts (or a title card) failed in ffmpeg's xfade before
    media/cut.py put the run back in frames."""
    board = imported(tmp_path, """\
>THE HARBOUR<

EXT. PIER - DAY

A boat.

A gull.

DISSOLVE TO:

EXT. SEA - DAY

Waves.
""")
    assert board["outputs"][0]["sequence"][0] == {"title": "THE HARBOUR", "duration": 3}
    result = cli("run", tmp_path, "--json", *PREVIEW)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["failed"] == 0


# -- where it writes --------------------------------------------------------------------------


def test_the_output_is_created_never_written_over_unless_forced(tmp_path):
    script = tmp_path / "a.fountain"
    script.write_text("INT. A - DAY\n\nA door opens.\n", encoding="utf-8")
    target = tmp_path / "storyboard.yaml"
    assert cli("import", script).exit_code == 0
    target.write_text("mine\n", encoding="utf-8")
    refused = cli("import", script)
    assert refused.exit_code == 1 and target.read_text(encoding="utf-8") == "mine\n"
    assert refused.stderr == (f"{tmp_path}/storyboard.yaml: error: '{tmp_path}/storyboard.yaml'"
                              " already exists: nothing was written\n  hint: give another -o "
                              "FILE, or --force to replace it\n")
    assert cli("import", script, "--force").exit_code == 0
    assert target.read_text(encoding="utf-8").startswith("# Imported from the screenplay a.fo")
    # never over the screenplay, even forced, nor over a device; a folder means its
    # storyboard.yaml; nothing else is left in the folder
    for args, message in [(["-o", script, "--force"], "this is the screenplay"),
                          (["-o", "/dev/null", "--force"], "this is a device"),
                          (["-o", tmp_path / "no" / "x.yaml"], "does not exist")]:
        result = cli("import", script, *args)
        assert result.exit_code == 1 and message in result.stderr, result.output
    assert script.read_text(encoding="utf-8") == "INT. A - DAY\n\nA door opens.\n"
    (tmp_path / "films").mkdir()
    assert cli("import", script, "-o", tmp_path / "films").exit_code == 0
    assert (tmp_path / "films" / "storyboard.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".gitattributes", ".gitignore", "a.fountain", "films", "storyboard.yaml"]


def test_dash_prints_the_storyboard_and_writes_nothing(tmp_path):
    script = tmp_path / "a.fountain"
    script.write_text("INT. A - DAY\n\nA door opens.\n", encoding="utf-8")
    result = cli("import", script, "-o", "-")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["scenes"][0]["shots"][0]["prompt"] == "A door opens."
    assert "1 scene(s), 1 shot(s)" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["a.fountain"]


# -- what is not a screenplay -----------------------------------------------------------------


HOSTILE = [
    ("empty", b"", "script.fountain: error: the screenplay is empty"),
    ("blank", b"  \n\n\t\n", "script.fountain: error: the screenplay is empty"),
    ("binary", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
     "script.fountain:3:1: error: this is binary data, not a Fountain screenplay (a NUL byte)"),
    ("latin-1", "INT. CAFÉ - DAY\n\nUn café.\n".encode("latin-1"),
     "script.fountain:1:9: error: the screenplay is not UTF-8 text (invalid continuation byte)"),
    ("utf-16", "INT. A - DAY\n".encode("utf-16"),
     "script.fountain: error: the screenplay is UTF-16 text, not UTF-8"),
    ("control", b"INT. A - DAY\n\nHe \x1b[31mwaits.\n",
     "script.fountain:3:4: error: a control character (U+001B) in the screenplay"),
    ("title only", b"Title: Nothing yet\nAuthor: me\n",
     "script.fountain: error: the screenplay has no scene heading, no action and no dialogue"),
    ("notes only", b"[[a note]]\n\n/* INT. GONE - DAY\n\nCut. */\n\n# ACT I\n\n= x\n\n===\n",
     "script.fountain: error: the screenplay has no scene heading, no action and no dialogue"),
    ("too big", b"A boat.\n\n" * 300_000,
     "script.fountain: error: the screenplay has 2,700,000 bytes, more than the 2,097,152 "
     "allowed"),
]


@pytest.mark.parametrize("bytes_, message", [(b, m) for _, b, m in HOSTILE],
                         ids=[name for name, _, _ in HOSTILE])
def test_what_is_not_a_screenplay_is_one_located_error(tmp_path, monkeypatch, bytes_, message):
    monkeypatch.chdir(tmp_path)
    Path("script.fountain").write_bytes(bytes_)
    result = cli("import", "script.fountain")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("error:") == 1 and result.stderr.count("\n") == 2
    assert sorted(os.listdir(tmp_path)) == ["script.fountain"]


def test_a_folder_a_device_a_pipe_and_nothing_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("folder.fountain")
    os.mkfifo("pipe.fountain")  # reading it would wait for ever
    os.symlink("/dev/zero", "zero.fountain")  # reading it would never end
    for path, message in [("folder.fountain", "the screenplay is a folder, not a regular file"),
                          ("/dev/zero", "the screenplay is a device, not a regular file"),
                          ("zero.fountain", "the screenplay is a device, not a regular file"),
                          ("pipe.fountain", "the screenplay is a named pipe, not a regular file"),
                          ("missing.fountain", "cannot read the screenplay: No such file or "
                                               "directory")]:
        result = cli("import", path)
        assert result.exit_code == 1, (path, result.output)
        assert result.stderr.startswith(f"{path}: error: {message}\n"), result.stderr
    assert cli("import").exit_code == 2  # a usage error: no screenplay given


def test_import_sets_up_git_as_init_does_and_leaves_a_users_files_alone(tmp_path):
    """A newcomer's first day: `import` into a git repository, then `run`: the renders and
    the local state were left for `git add .` to commit (init writes a .gitignore, import
    did not). Now it writes the .gitignore and .gitattributes a project has, where missing."""
    import subprocess

    folder = tmp_path / "film"
    folder.mkdir()
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    screenplay = folder / "harbour.fountain"
    shutil.copyfile(EXAMPLE, screenplay)
    result = cli("import", screenplay)
    assert result.exit_code == 0, result.output
    assert "wrote .gitignore and .gitattributes beside it" in result.stdout
    assert "storyboard.lock merge=union" in (folder / ".gitattributes").read_text()
    ran = cli("run", folder / "storyboard.yaml", *PREVIEW)
    assert ran.exit_code == 0, ran.output
    untracked = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                               cwd=folder, capture_output=True, text=True, check=True).stdout
    assert sorted(line[3:] for line in untracked.splitlines()) == [
        ".gitattributes", ".gitignore", "harbour.fountain", "storyboard.yaml"], untracked

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / ".gitignore").write_text("*.mov\n", encoding="utf-8")
    shutil.copyfile(EXAMPLE, mine / "harbour.fountain")
    result = cli("import", mine / "harbour.fountain", "-o", mine / "harbour.yaml")
    assert result.exit_code == 0, result.output
    assert "wrote .gitattributes beside it" in result.stdout
    assert (mine / ".gitignore").read_text() == "*.mov\n"  # the user's own, untouched
    assert "harbour.lock merge=union" in (mine / ".gitattributes").read_text()
