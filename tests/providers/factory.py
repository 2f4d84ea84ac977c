"""Factories for compile-stage tests: ResolvedShot and Resolved objects built directly.

Imported by tests/providers/ and by tests/test_rules.py, tests/test_compiler.py as
`providers.factory` (tests/providers is a package so the name is the same everywhere).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kling_compose.errors import Location
from kling_compose.model import (
    Element,
    ElementRef,
    FrameSource,
    Line,
    Prompt,
    PromptSegment,
    Resolved,
    ResolvedShot,
    SHOT_FIELD_NAMES,
    ShotFields,
    Storyboard,
)

FILE = "storyboard.yaml"
ROOT = Path("/project")

# Each field of the factory's shot is "written" on its own line, so a test can assert
# exactly which field a diagnostic points at: field N of SHOT_FIELD_NAMES is on line 10 + N.
LINES = {name: 10 + n for n, name in enumerate(SHOT_FIELD_NAMES)}
SHOT_LINE = 9


def loc(field: str) -> Location:
    """Where the factory says `field` was written."""
    return Location(FILE, LINES[field], 5)


def prompt(text: str) -> Prompt:
    """A Prompt from text with `@name` references (`@@` is a literal @)."""
    parts: list[str | ElementRef] = []
    i = 0
    buf = ""
    while i < len(text):
        if text.startswith("@@", i):
            buf, i = buf + "@", i + 2
            continue
        if text[i] == "@":
            j = i + 1
            while j < len(text) and (text[j].isalnum() or text[j] in "_-"):
                j += 1
            if buf:
                parts.append(buf)
            parts.append(ElementRef(text[i + 1 : j]))
            buf, i = "", j
            continue
        buf, i = buf + text[i], i + 1
    if buf:
        parts.append(buf)
    return Prompt(tuple(parts))


def src(value: str, frame: str = "last") -> FrameSource:
    """A FrameSource from how a storyboard writes it: URL, data URI, UUID, path or `from:X`."""
    if value.startswith("from:"):
        return FrameSource("chain", value[5:], frame=frame)
    if value.startswith(("http://", "https://")):
        return FrameSource("url", value)
    if value.startswith("data:"):
        return FrameSource("data", value)
    if len(value) == 36 and value.count("-") == 4:
        return FrameSource("uuid", value)
    path = Path(value) if Path(value).is_absolute() else ROOT / value
    return FrameSource("path", value, path=path)


def element(name: str, **kw: Any) -> Element:
    for key in ("frontal_image", "voice"):
        if isinstance(kw.get(key), str):
            kw[key] = src(kw[key])
    for key in ("images", "videos", "voices"):
        if key in kw:
            kw[key] = tuple(src(v) if isinstance(v, str) else v for v in kw[key])
    if "tags" in kw:
        kw["tags"] = tuple(kw["tags"])
    return Element(name=name, location=Location(FILE, 3, 3), **kw)


def line(speaker: str, text: str, tone: str | None = None, at: int = 40) -> Line:
    """A dialogue line written on line `at` of the storyboard (its speaker at column 17)."""
    return Line(speaker, text, tone, Location(FILE, at, 13), Location(FILE, at, 17))


def segment(text: str, seconds: int, *lines: Line) -> PromptSegment:
    """A multi_prompt segment with its own lines."""
    return PromptSegment(prompt(text), seconds, dialogue=tuple(lines))


def make_shot(
    id: str = "s1",
    provider: str = "runware",
    model: str = "kling-3-pro",
    prompt_text: str | None = "A quiet harbour at dawn",
    **fields: Any,
) -> ResolvedShot:
    """A ResolvedShot with every given field located on its own line (see LINES)."""
    if "multi_prompt" in fields:
        prompt_text = None
        fields["multi_prompt"] = tuple(
            s if isinstance(s, PromptSegment) else PromptSegment(prompt(s[0]), s[1])
            for s in fields["multi_prompt"]
        )
    if "dialogue" in fields:
        fields["dialogue"] = tuple(fields["dialogue"])
    for key in ("first_frame", "last_frame", "video"):
        if isinstance(fields.get(key), str):
            fields[key] = src(fields[key])
    for key in ("reference_images", "reference_videos", "keyframes"):
        if key in fields:
            fields[key] = tuple(src(v) if isinstance(v, str) else v for v in fields[key])
    if "elements" in fields:
        fields["elements"] = tuple(fields["elements"])
    if prompt_text is not None:
        fields["prompt"] = prompt(prompt_text)
    names = set(fields) | {"provider", "model"}
    return ResolvedShot(
        id=id,
        scene="main",
        index=0,
        provider=provider,
        model=model,
        location=Location(FILE, SHOT_LINE, 7),
        locations={name: loc(name) for name in names if name in LINES},
        **fields,
    )


def make_resolved(*shots: ResolvedShot, root: Path = ROOT) -> Resolved:
    """A Resolved around `shots` with a minimal storyboard rooted at `root`."""
    storyboard = Storyboard(
        version=1,
        name="test",
        path=root / FILE,
        display_path=FILE,
        defaults=ShotFields(),
        elements={},
        scenes=(),
        outputs=(),
    )
    return Resolved(storyboard=storyboard, shots=tuple(shots))


def resolved_from_yaml(path: Path) -> Resolved:
    """A stand-in for the real front end, enough for the golden storyboards.

    Applies defaults -> scene defaults -> shot, parses sizes, prompts, frame sources and
    elements; no Jinja, no schema, no locations. The golden tests also run every case through
    `kling_compose.pipeline.load_resolved`, which supersedes this once it exists.
    """
    import yaml

    doc = yaml.safe_load(path.read_text())
    elements = {
        name: element(name, **{k: v for k, v in spec.items()})
        for name, spec in (doc.get("elements") or {}).items()
    }
    shots = []
    for scene in doc["scenes"]:
        for raw in scene["shots"]:
            fields = {**(doc.get("defaults") or {}), **(scene.get("defaults") or {}), **raw}
            shots.append(_shot_from_fields(fields, scene["id"], elements, len(shots)))
    resolved = make_resolved(*shots, root=path.parent.resolve())
    return resolved


def _shot_from_fields(fields: dict, scene: str, elements: dict, index: int) -> ResolvedShot:
    fields = dict(fields)
    shot_id = fields.pop("id")
    if "size" in fields:
        w, _, h = fields["size"].partition("x")
        fields["size"] = (int(w), int(h))
    said = lambda lines: [line(x["speaker"], x["line"], x.get("tone")) for x in lines or ()]
    if "multi_prompt" in fields:
        fields["multi_prompt"] = [segment(s["prompt"], s["duration"], *said(s.get("dialogue")))
                                  for s in fields["multi_prompt"]]
    if "dialogue" in fields:
        fields["dialogue"] = said(fields["dialogue"])
    names = [r.name for r in prompt(fields.get("prompt", "")).refs]
    for seg in fields.get("multi_prompt", ()):
        names += [r.name for r in seg.prompt.refs]
    names += fields.pop("elements", [])
    # as resolve.py: a speaker is not made an element of the shot (it may be text-to-video)
    if names:
        fields["elements"] = [elements[n] for n in dict.fromkeys(names)]
    shot = make_shot(
        id=shot_id,
        provider=fields.pop("provider"),
        model=fields.pop("model"),
        prompt_text=fields.pop("prompt", None),
        **fields,
    )
    from dataclasses import replace

    return replace(shot, scene=scene, index=index)


def diagnostics(shot: ResolvedShot, provider: str | None = None) -> list[str]:
    """The printed errors that compiling `shot` raises, or its job's warnings."""
    from kling_compose.compiler import compile_shots
    from kling_compose.errors import UserError

    try:
        jobs = compile_shots(make_resolved(shot), provider)
    except UserError as exc:
        return [str(d) for d in exc.diagnostics]
    return [str(d) for d in jobs[0].warnings]
