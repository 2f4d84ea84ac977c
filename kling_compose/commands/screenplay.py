"""`kling-compose import SCREENPLAY.fountain`: a storyboard made from a screenplay.

The screenplay is read with commands/fountain.py and mapped (docs/format.md, "Importing a
screenplay"):

- the title page's Title is the storyboard's `name` (else the file's name);
- each scene heading is a scene, its id the heading slugged (`int-harbour-office-night`, made
  unique); action before the first heading goes in a scene `opening`;
- each action paragraph is a shot: its text is the prompt, its duration its words read at 2.5
  a second, within the model's 3-15 s; a scene with nothing under its heading gets one
  establishing shot;
- each character is an element (one per name: `MARA` and `MARA (V.O.)` are one), with a
  description to fill in and its picture and voice as comments; `NARRATOR` speaks as the
  `narrator`;
- each speech is a line of `dialogue:` on the shot it follows (the action shot before it, or a
  shot of its own when there is none in the scene, or when the shot's lines would pass 15 s);
  a parenthetical is the line's tone, and so are (V.O.) (`voice-over`) and (O.S.)/(O.C.)
  (`off-screen`); lyrics are sung (`singing`);
- transitions join the shots in the film: CUT TO: a cut, DISSOLVE TO: a 0.5 s crossfade, a
  FADE a 1 s dip through black (FADE IN: at the start and FADE OUT. at the end the film's own
  fades); centered text (`>THE END<`) is a 3 s title card;
- notes, boneyard, sections, synopses and page breaks are left out.

The storyboard is validated (every stage up to compile) before it is written, and written
create-only (`--force` to replace a file) and atomically.
"""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Diagnostic, Location, UserError
from .fountain import Element, parse

PROVIDER = "preview"  # free and local: the storyboard runs at once
MODEL = "kling-3-pro"
ASPECT = "16:9"
WORDS_PER_S = 2.5  # conversational speech, and the pace an action paragraph is read at
MAX_BYTES = 2 << 20  # a feature screenplay is about 200 KB
MAX_SHOTS = 5000  # a two-hour film cut every 5 s is 1,440 shots
PROMPT_CHARS = 2500  # the longest prompt every Kling model takes
LINE_CHARS = 1000  # the longest line of dialogue (the schema's)
TONE_CHARS = 80
TITLE_CHARS = 200
NAME_CHARS = 200
TITLE_CARD_S = 3
CROSSFADE_S = 0.5
DIP_S = 1.0
FADE_S = 1.0
NARRATOR = "narrator"

# a parenthetical that is a pause, not a way of speaking: it splits the speech, gives no tone
_PAUSES = frozenset({"beat", "a beat", "long beat", "pause", "a pause", "long pause", "beat beat",
                     "cont'd", "contd", "continuing", "then"})
# character extensions that say where the voice comes from (the rest are read as a tone)
_EXTENSION_TONES = {"VO": "voice-over", "OS": "off-screen", "OC": "off-screen",
                    "CONTD": "", "CONT": "", "CONTINUING": "", "CONTINUED": ""}
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


# -- reading the screenplay -------------------------------------------------------------------


def read_screenplay(path: Path | str, display: str) -> str:
    """The text of the screenplay at `path`: a regular file of at most MAX_BYTES of UTF-8
    text without control characters. Anything else (a folder, a device, binary data, another
    encoding, an empty file) is a UserError naming the file, and the line where it applies."""
    from ..files import read_bytes, shown

    where = Location(shown(display))
    data = read_bytes(path, display, what="the screenplay", limit=MAX_BYTES,
                      hint="give the path of a Fountain screenplay (a .fountain text file)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _utf16_without_bom(data):
        raise UserError.single("the screenplay is UTF-16 text, not UTF-8", where,
                               "save it as UTF-8 (Fountain files are plain UTF-8 text)")
    nul = data.find(b"\x00")
    if nul != -1:
        raise UserError.single("this is binary data, not a Fountain screenplay (a NUL byte)",
                               _byte_location(data, nul, where.file),
                               "give the path of a Fountain screenplay (a .fountain text file)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError.single(f"the screenplay is not UTF-8 text ({exc.reason})",
                               _byte_location(data, exc.start, where.file),
                               "save it as UTF-8 (Fountain files are plain UTF-8 text)"
                               ) from None
    control = re.search(r"[\x01-\x08\x0e-\x1f\x7f]", text)
    if control is not None:
        before = text[:control.start()]
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise UserError.single(
            f"a control character (U+{ord(control.group()):04X}) in the screenplay: it is "
            "not plain text", Location(where.file, line, col),
            "save the screenplay as plain text (Fountain files hold no control characters)")
    if not text.removeprefix("\ufeff").strip():
        raise UserError.single("the screenplay is empty", where,
                               "write a scene (INT. HOUSE - DAY), then what happens in it")
    return text


def _utf16_without_bom(data: bytes) -> bool:
    """Text in UTF-16 without its byte order mark: in its first 4 KB, every other byte a NUL
    (ASCII text, as a screenplay's headings and cues are), the others not."""
    head = data[:4096]
    if len(head) < 4:
        return False
    even, odd = head[0::2], head[1::2]
    return (even.count(0) == len(even) and not odd.count(0)) or \
        (odd.count(0) == len(odd) and not even.count(0))


def _byte_location(data: bytes, at: int, file: str) -> Location:
    before = data[:at]
    return Location(file, before.count(b"\n") + 1, at - (before.rfind(b"\n") + 1) + 1)


# -- the storyboard it makes ------------------------------------------------------------------


@dataclass(slots=True)
class Line:
    speaker: str
    line: str
    tone: str
    at: int  # the screenplay's line

    @property
    def words(self) -> int:
        return len(self.line.split())


@dataclass(slots=True)
class Shot:
    id: str
    prompt: str  # "" for a shot made for dialogue: written from its speakers at the end
    at: int
    action_words: int = 0
    lines: list[Line] = field(default_factory=list)

    @property
    def dialogue_words(self) -> int:
        return sum(line.words for line in self.lines)


@dataclass(slots=True)
class Scene:
    id: str
    heading: str
    at: int
    shots: list[Shot] = field(default_factory=list)


@dataclass(slots=True)
class Piece:
    """An item of the film's sequence: a shot, or a title card (`title`), joined to the piece
    before by `transition` (`cut`, `crossfade` or `dip`, for `seconds`)."""

    shot: str = ""
    title: str = ""
    transition: str = "cut"
    seconds: float = 0.0
    said: str = ""  # the transition as the screenplay wrote it
    at: int = 0


@dataclass(slots=True)
class Character:
    name: str  # as the screenplay writes it (MARA, McCLANE)
    shown: str  # as a prompt names it (Mara, McCLANE)
    at: int


@dataclass(slots=True)
class Imported:
    name: str
    characters: dict[str, Character]  # element name -> the character
    scenes: list[Scene]
    pieces: list[Piece]
    fade_in: bool = False
    fade_out: bool = False

    @property
    def shots(self) -> list[Shot]:
        return [shot for scene in self.scenes for shot in scene.shots]

    @property
    def lines(self) -> int:
        return sum(len(shot.lines) for shot in self.shots)


def durations() -> tuple[int, int]:
    """The shortest and longest clip the storyboard's model makes (3-15 s for Kling 3.0)."""
    from ..providers import PROVIDERS

    return PROVIDERS[PROVIDER].models[MODEL].durations_s


def flat(text: str) -> str:
    """`text` on one line, every run of white space one space."""
    return " ".join(text.split())


def cut(text: str, limit: int) -> str:
    """`text` of at most `limit` characters, cut at a space where there is one."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip()


def slug(text: str, separator: str = "-") -> str:
    """Lower-case ASCII letters and digits, runs of anything else one `separator`."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", separator, ascii_text.lower()).strip(separator)


def _capitalised(name: str) -> str:
    """A cue's name as a prompt writes it: MARA is Mara, DR. SMITH Dr. Smith, 2ND GUARD 2nd
    Guard (a letter starts a word after a space, a dot or a hyphen)."""
    return re.sub(r"(^|[\s.-])(\w)", lambda m: m.group(1) + m.group(2).upper(), name.lower())


def _unique(base: str, taken: set[str], separator: str = "-") -> str:
    name, n = base, 2
    while name in taken:
        name = f"{base}{separator}{n}"
        n += 1
    taken.add(name)
    return name


def _chunks(text: str, max_words: int, max_chars: int) -> list[str]:
    """`text` in pieces of at most `max_words` words and `max_chars` characters, cut between
    sentences where it can be, else between words (a word longer than `max_chars` is cut)."""
    if len(text.split()) <= max_words and len(text) <= max_chars:
        return [text]
    words: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words += sentence.split()
        words.append("\n")  # a sentence's end: the preferred place to cut
    out: list[str] = []
    current: list[str] = []
    last_end = 0  # in `current`, the number of words up to its last sentence end

    def flush(upto: int) -> None:
        nonlocal current, last_end
        out.append(" ".join(current[:upto]))
        current, last_end = current[upto:], 0

    for word in words:
        if word == "\n":
            last_end = len(current)
            continue
        while len(word) > max_chars:
            if current:
                flush(len(current))
            out.append(word[:max_chars])
            word = word[max_chars:]
        # cut at the last sentence end; when what follows it is still too long with the word
        # (last_end is 0 after a cut), at the word
        while current and (len(current) + 1 > max_words
                           or len(" ".join(current)) + 1 + len(word) > max_chars):
            flush(last_end or len(current))
        current.append(word)
    if current:
        out.append(" ".join(current))
    return [piece for piece in out if piece]


class _Mapper:
    """The screenplay's elements, in order, made into scenes, shots, elements and the film."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.low, self.high = durations()
        self.max_words = int(self.high * WORDS_PER_S)  # the lines one shot can speak
        self.scenes: list[Scene] = []
        self.scene_ids: set[str] = set()
        self.shot_ids: set[str] = set()
        self.characters: dict[str, Character] = {}
        self.keys: dict[str, str] = {}  # a character's name, casefolded -> its element
        self.taken: set[str] = {NARRATOR}  # the element names given
        self.pieces: list[Piece] = []
        self.pending: Piece | None = None  # a transition waiting for the piece it leads to
        self.fade_in = False
        self.open: Shot | None = None  # the shot the next speech goes on
        self.cue: tuple[str, str] | None = None  # the speaker and the tone of its extensions
        self.tone = ""  # the last parenthetical's
        self.count = 0

    # scenes and shots

    def scene(self, heading: str, at: int) -> Scene:
        base = slug(heading)[:60].strip("-") or f"scene-{len(self.scenes) + 1}"
        scene = Scene(_unique(base, self.scene_ids), heading, at)
        self.scenes.append(scene)
        self.open = None
        return scene

    def current(self, at: int) -> Scene:
        """The scene a shot goes in: the last one, or `opening` for action before the first
        scene heading."""
        if not self.scenes:
            self.scenes.append(Scene(_unique("opening", self.scene_ids), "", at))
        return self.scenes[-1]

    def shot(self, prompt: str, at: int, words: int = 0) -> Shot:
        self.count += 1
        if self.count > MAX_SHOTS:
            raise UserError.single(
                f"the screenplay makes more than {MAX_SHOTS:,} shots", Location(self.display, at),
                "import it in parts (one storyboard a sequence or an act)")
        scene = self.current(at)
        shot = Shot(_unique(f"{scene.id}-{len(scene.shots) + 1}", self.shot_ids), prompt, at,
                     words)
        scene.shots.append(shot)
        self.place(Piece(shot=shot.id, at=at))
        return shot

    def place(self, piece: Piece) -> None:
        """Add a piece to the film, joined by the transition waiting for it."""
        pending, self.pending = self.pending, None
        if pending is not None:
            if not self.pieces:  # the film's first piece: only a fade means something here
                self.fade_in = self.fade_in or pending.transition == "dip"
            else:
                piece.transition, piece.seconds = pending.transition, pending.seconds
                piece.said, piece.at = pending.said, pending.at
        self.pieces.append(piece)

    # the screenplay's elements

    def element(self, e: Element) -> None:
        kind = e.kind
        if kind not in ("character", "parenthetical", "dialogue", "lyrics"):
            self.cue, self.tone = None, ""
        if kind == "scene_heading":
            self.end_scene()
            self.scene(flat(e.text) + (f" #{e.number}" if e.number else ""), e.line)
        elif kind == "action":
            self.action(e)
        elif kind == "character":
            self.character(e)
        elif kind == "parenthetical":
            words = flat(e.text.strip()[1:-1]).strip(" .,;:!?").lower()
            self.tone = "" if words in _PAUSES else flat(e.text.strip()[1:-1])
        elif kind in ("dialogue", "lyrics"):
            self.speech(e)
        elif kind == "transition":
            self.transition(e)
        elif kind == "centered":
            text = cut(flat(e.text), TITLE_CHARS)
            if text:
                self.place(Piece(title=text, at=e.line))
                self.open = None
        # sections, synopses, page breaks: for the writer, not the film

    def action(self, e: Element) -> None:
        text = flat(e.text)
        if not any(c.isalnum() for c in text):  # "...", "--": nothing to film
            return
        # cut as sent (an `@` is one character there), then escaped; a prompt has 2 or more
        for part in _chunks(text, 10**9, PROMPT_CHARS):
            if len(part) >= 2:
                self.open = self.shot(part.replace("@", "@@"), e.line, len(part.split()))

    def character(self, e: Element) -> None:
        name = flat(e.name)
        key = slug(name, "_")[:60].strip("_")
        if key == NARRATOR:
            speaker = NARRATOR
        else:
            speaker = self.keys.get(name.casefold(), "")
            if not speaker:
                # one element a character (MARA and @Mara are one): a name that makes the key
                # of another (DR. NO and DR NO, a name without ASCII letters and CHARACTER 1)
                # gets a key of its own, never that one's element and voice
                if not key:
                    key = f"character_{len(self.characters) + 1}"
                if key[0].isdigit():
                    key = "_" + key
                speaker = _unique(key, self.taken, "_")
                self.keys[name.casefold()] = speaker
                shown = _capitalised(name) if name == name.upper() else name
                self.characters[speaker] = Character(name, shown, e.line)
        tones = []
        for extension in e.extensions:
            code = re.sub(r"[^A-Z]", "", extension.upper())
            tone = _EXTENSION_TONES.get(code, flat(extension).lower())
            if tone:
                tones.append(tone)
        self.cue, self.tone = (speaker, ", ".join(dict.fromkeys(tones))), ""

    def speech(self, e: Element) -> None:
        if self.cue is None or not e.name:  # lyrics on their own: sung off screen
            speaker, cue_tone = NARRATOR, ""
        else:
            speaker, cue_tone = self.cue
        tones = [t for t in (cue_tone, self.tone, "singing" if e.kind == "lyrics" else "") if t]
        tone = cut(", ".join(tones), TONE_CHARS)
        self.tone = ""
        text = flat(e.text)
        if not text:
            return
        for part in _chunks(text, self.max_words, LINE_CHARS):
            line = Line(speaker, part, tone, e.line)
            shot = self.open
            if shot is None or shot.dialogue_words + line.words > self.max_words:
                shot = self.open = self.shot("", e.line)
            shot.lines.append(line)

    def transition(self, e: Element) -> None:
        said = flat(e.text)
        words = said.upper()
        if "DISSOLVE" in words:
            kind, seconds = "crossfade", CROSSFADE_S
        elif "FADE" in words:
            kind, seconds = "dip", DIP_S
        else:
            kind, seconds = "cut", 0.0
        if self.pending is not None and words.startswith("FADE IN"):
            return  # FADE OUT. then FADE IN: is the one dip
        self.pending = Piece(transition=kind, seconds=seconds, said=said, at=e.line)
        self.open = None

    def end_scene(self) -> None:
        """A scene with nothing under its heading is one establishing shot."""
        if self.scenes and not self.scenes[-1].shots:
            scene = self.scenes[-1]
            self.shot(f"Establishing shot: {scene.heading}".replace("@", "@@"), scene.at,
                      len(scene.heading.split()))

    def finish(self, name: str) -> Imported:
        self.end_scene()
        for scene in self.scenes:
            for shot in scene.shots:
                if not shot.prompt:
                    shot.prompt = self.dialogue_prompt(shot, scene)
        fade_out = self.pending is not None and self.pending.transition == "dip"
        return Imported(name, self.characters, self.scenes, self.pieces, self.fade_in,
                        fade_out)

    def dialogue_prompt(self, shot: Shot, scene: Scene) -> str:
        """The prompt of a shot made for its lines (in `scene`): who speaks, and where."""
        names = [self.characters[k].shown for k in
                 dict.fromkeys(line.speaker for line in shot.lines) if k in self.characters]
        if not names:
            said = "A voice speaks over the scene."
        elif len(names) == 1:
            said = f"{names[0]} speaks."
        else:
            said = f"{', '.join(names[:-1])} and {names[-1]} talk."
        text = f"{scene.heading}: {said}" if scene.heading else said
        return cut(text.replace("@", "@@"), PROMPT_CHARS)


def import_text(text: str, display: str, fallback_name: str) -> Imported:
    """The storyboard's content made from the screenplay `text` (named `display` in
    messages); `fallback_name` names it when the title page has no Title."""
    screenplay = parse(text)
    mapper = _Mapper(display)
    for element in screenplay.elements:
        mapper.element(element)
    name = cut(flat(screenplay.title), NAME_CHARS) or cut(flat(fallback_name), NAME_CHARS) \
        or "film"
    imported = mapper.finish(name)
    if not imported.shots:
        raise UserError.single(
            "the screenplay has no scene heading, no action and no dialogue: nothing to film",
            Location(display),
            "a scene starts with a heading (INT. HARBOUR - NIGHT) and an action paragraph "
            "says what happens (https://fountain.io/syntax)")
    return imported


# -- writing it -------------------------------------------------------------------------------

# what a YAML reader refuses or reads as a line break inside a double-quoted scalar
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f\u2028\u2029\ufeff\ufffe\uffff]")
_JINJA = re.compile(r"\{(?=[{%#])")


def quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar that reads back exactly: JSON's escapes (YAML
    reads them), characters YAML would refuse or fold escaped, and a `{` that would open Jinja
    syntax (`{{`, `{%`, `{#`: the file would be rendered as a template) escaped too."""
    out = json.dumps(text, ensure_ascii=False)
    out = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return _JINJA.sub(r"\\u007b", out)


# plain scalars YAML 1.1 reads as something else than a string
_YAML_WORDS = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null"})


_PLAIN = re.compile(r"[a-z_][a-z0-9_-]*")


def yaml_name(key: str) -> str:
    """A name the importer made (an element's, a scene's or a shot's id) as YAML text: plain
    (`mara`, `int-harbour-day-1`) when it starts with a letter, else quoted, and quoted when
    YAML would read the word as a boolean or null (a character called NULL or YES, a forced
    heading `.2` or `.0x1F`: a scene id YAML reads as a number)."""
    return key if _PLAIN.fullmatch(key) and key not in _YAML_WORDS else quoted(key)


def _number(value: float) -> str:
    return f"{value:g}"


def _seconds(shot: Shot, low: int, high: int) -> int:
    words = max(shot.action_words, shot.dialogue_words)
    return min(high, max(low, math.ceil(words / WORDS_PER_S)))


def _comment(text: str) -> str:
    """Text from the screenplay made safe for a comment: one line, no Jinja syntax."""
    return quoted(text)[1:-1]


HEADER = """\
# Imported from the screenplay {source} by `kling-compose import` (docs/format.md,
# "Importing a screenplay"): a scene per scene heading, a shot per action paragraph (its
# duration its words read at {pace:g} a second), an element per character, each speech on the
# shot it follows. Edit it as you would any storyboard.
#
# `kling-compose run` renders it with the free local preview provider (unless the project
# file kling-compose.yaml names another `provider:`, which a plain `run` uses: then
# `kling-compose run --provider preview` is the free one). For the real thing,
# set `provider:` under defaults to runware, fal, kie or kling, or run once with
# `kling-compose run --provider fal`; `kling-compose doctor --provider fal` checks the key
# and `kling-compose plan --provider fal` shows the estimate first.
version: 1
name: {name}

defaults:
  provider: {provider}
  model: {model}
  aspect: "{aspect}"
"""


def storyboard_text(imported: Imported, source: str) -> str:
    """The storyboard as YAML, with comments saying what came from where."""
    low, high = durations()
    out = [HEADER.format(source=_comment(source), pace=WORDS_PER_S, name=quoted(imported.name),
                         provider=PROVIDER, model=MODEL, aspect=ASPECT)]
    if imported.characters:
        out.append("\n# One element per character. Describe each; a picture keeps it the same "
                   "from shot to\n# shot: give it a frontal_image, then write @name in a prompt "
                   "to send it with that shot.\nelements:\n")
        for key, character in imported.characters.items():
            shown = character.shown
            look = quoted(f"{shown}: describe how they look (age, face, hair, clothes)")
            out.append(
                f"  {yaml_name(key)}:  # {_comment(character.name)}, line {character.at}\n"
                f"    description: {look}\n"
                f"    # frontal_image: assets/{key}.png   # a picture of {_comment(shown)}\n"
                f"    # voice: assets/{key}-voice.wav     # a clean 5-30 s recording: the "
                "lines are spoken in it\n")
    out.append("\nscenes:\n")
    for scene in imported.scenes:
        out.append(f"  - id: {yaml_name(scene.id)}  # line {scene.at}\n")
        if scene.heading:
            out.append(f"    description: {quoted(scene.heading)}\n")
        out.append("    shots:\n")
        for shot in scene.shots:
            out.append(f"      - id: {yaml_name(shot.id)}  # line {shot.at}\n"
                       f"        prompt: {quoted(shot.prompt)}\n"
                       f"        duration: {_seconds(shot, low, high)}\n")
            if shot.lines:
                out.append("        dialogue:\n")
                for line in shot.lines:
                    tone = f", tone: {quoted(line.tone)}" if line.tone else ""
                    out.append(f"          - {{ speaker: {yaml_name(line.speaker)}, line: "
                               f"{quoted(line.line)}{tone} }}\n")
    out.append(_outputs(imported))
    return "".join(out)


def _outputs(imported: Imported) -> str:
    film = re.sub(r"[\W_]+", "-", imported.name.lower()).strip("-")[:80].strip("-") or "film"
    out = ["\noutputs:\n", f"  - path: renders/{film}.mp4\n"]
    if imported.lines:
        out.append(f"    subtitles: [srt]   # renders/{film}.srt, from the dialogue\n")
    if imported.fade_in:
        out.append(f"    fade_in: {_number(FADE_S)}   # FADE IN\n")
    if imported.fade_out:
        out.append(f"    fade_out: {_number(FADE_S)}   # the last fade out\n")
    edited = any(p.title or p.transition != "cut" for p in imported.pieces)
    if not edited:
        return "".join(out)
    out.append("    # every shot in order, joined as the screenplay's transitions say (a shot "
               "you add\n    # goes in here too)\n    sequence:\n")
    for piece in imported.pieces:
        join = "" if piece.transition == "cut" else \
            f", transition: {{ {piece.transition}: {_number(piece.seconds)} }}"
        said = f"  # {_comment(piece.said)}, line {piece.at}" if piece.said else ""
        if piece.title:
            said = f"  # centered text, line {piece.at}" if not said else said
            out.append(f"      - {{ title: {quoted(piece.title)}, duration: {TITLE_CARD_S}"
                       f"{join} }}{said}\n")
        elif join:
            out.append(f"      - {{ shot: {yaml_name(piece.shot)}{join} }}{said}\n")
        else:
            out.append(f"      - {yaml_name(piece.shot)}{said}\n")
    return "".join(out)


def check_storyboard(text: str, path: Path, display: str, screenplay: str) -> list[Diagnostic]:
    """Run the storyboard `text` (to be written at `path`) through every stage up to compile,
    as `validate` would; returns its warnings. An error is the importer's own mistake: it is
    reported at the screenplay, nothing is written."""
    from ..compiler import compile_shots
    from ..parse import parse_document
    from ..render import Source, render_source
    from ..resolve import resolve_storyboard
    from ..validate import validate_document

    try:
        resolved = resolve_storyboard(validate_document(parse_document(
            render_source(Source(path, display, text)))))
        jobs = compile_shots(resolved)
    except UserError as exc:
        raise UserError(*(Diagnostic(f"the storyboard made from it does not validate: "
                                     f"{d.message} (at {d.location})", Location(screenplay),
                                     "this is a mistake of `kling-compose import`: please "
                                     "report it with the screenplay")
                          for d in exc.diagnostics)) from None
    return list(dict.fromkeys(w for job in jobs for w in job.warnings))


@dataclass(slots=True)
class Written:
    """What `import` made: the storyboard's text, where it went (None: standard output),
    what it holds, and the validator's warnings."""

    text: str
    target: str | None
    imported: Imported
    warnings: list[Diagnostic]
    git_files: list[str] = field(default_factory=list)  # .gitignore, .gitattributes made


def import_screenplay(screenplay: str, output: str | None = None, force: bool = False
                      ) -> Written:
    """Read the screenplay at `screenplay`, make its storyboard, validate it and write it to
    `output` (None: storyboard.yaml beside the screenplay; a folder: its storyboard.yaml;
    `-`: nowhere, the caller prints it). An existing file is replaced only with `force`,
    never the screenplay itself."""
    from ..files import Protected, create_whole, is_dir, output_target, shown, write_atomic

    text = read_screenplay(screenplay, screenplay)
    stem = os.path.splitext(os.path.basename(os.path.normpath(screenplay)))[0]
    imported = import_text(text, screenplay, stem)
    to_stdout = output == "-"
    if output is None or (not to_stdout and is_dir(output)):
        folder = os.path.dirname(screenplay) if output is None else output
        display = os.path.join(folder, "storyboard.yaml")
    elif output.endswith(("/", os.sep)):  # a folder, by its slash: never a file by its name
        what = "is not a folder" if os.path.lexists(output) else "does not exist"
        raise UserError.single(f"the folder '{shown(output)}' {what}: nothing was written",
                               Location(shown(output)),
                               "create the folder first, or give the path of a file: -o FILE")
    else:
        display = output
    storyboard = storyboard_text(imported, os.path.basename(screenplay))
    if to_stdout:
        path = Path(os.path.dirname(os.path.abspath(screenplay))) / "storyboard.yaml"
        return Written(storyboard, None, imported,
                       check_storyboard(storyboard, path, "storyboard.yaml", screenplay))
    protected = Protected().add(screenplay, "the screenplay")
    hint = "give another -o FILE (or `-o -` to print it)"
    if not force and os.path.lexists(display):
        raise UserError.single(f"'{shown(display)}' already exists: nothing was written",
                               Location(shown(display)),
                               "give another -o FILE, or --force to replace it")
    real = output_target(display, display, what="the storyboard", protected=protected,
                         hint=hint)
    warnings = check_storyboard(storyboard, real, display, screenplay)
    if force:
        write_atomic(display, storyboard, display, what="the storyboard", protected=protected,
                     hint=hint)
    else:
        create_whole(real, storyboard.encode("utf-8"), display, what="the storyboard",
                     exists_hint="give another -o FILE, or --force to replace it")
    from .scaffold import git_files

    made = git_files(Path(display).parent, Path(display).stem)  # as `init` does, if missing
    return Written(storyboard, display, imported, warnings, made)
