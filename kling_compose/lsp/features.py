"""What the editor asks for: completion, hover, definition, references and code actions.

Each feature reads the text as the editor holds it (text.py finds where the cursor is) and
the last Analysis of the storyboard (the names it knows, the resolved shots, the jobs); none
writes anything or asks the network. Positions are 0-based lines and code-point columns;
`Files.position` turns them into the client's units.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Protocol

from lsprotocol import types

from ..errors import Location
from ..model import NARRATOR, Element, FrameSource, Prompt, ResolvedShot
from . import text as yamltext
from .analysis import Analysis, Names, Place, Problem, speakers
from .fields import describe, fields_at
from .text import ITEM, context, mapping_keys, word_at

if TYPE_CHECKING:
    from ..providers import Job, ModelSpec

SOURCE = "kling-compose"


class Files(Protocol):
    """The text of a file as the editor holds it (else as on disk) and the client's units."""

    def lines(self, path: Path) -> list[str]: ...

    def position(self, path: Path, line: int, col: int) -> types.Position: ...

    def uri(self, path: Path) -> str: ...


def split_lines(text: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", text)


def _range(files: Files, path: Path, line: int, start: int, end: int) -> types.Range:
    return types.Range(files.position(path, line, start), files.position(path, line, end))


# -- diagnostics -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Fix:
    """An exact edit a hint spells out: replace `old` at (line, start..end) with `new`."""

    title: str
    line: int
    start: int
    end: int
    old: str
    new: str
    preferred: bool = False


def span(problem: Problem, lines: list[str]) -> tuple[int, int, int]:
    """(line, start, end), 0-based, of what a problem points at: the token at its column (a
    quoted string, a key, `@name`, a value), else its whole line; the first line when only
    the file is known."""
    place = problem.place
    if place is None or place.line is None:
        first = lines[0] if lines else ""
        return 0, 0, len(first)
    line = min(place.line - 1, max(len(lines) - 1, 0))
    text = lines[line] if lines else ""
    if place.col is None:
        start = len(text) - len(text.lstrip())
        return line, start, max(len(text.rstrip()), start)
    start = min(place.col - 1, len(text))
    end = yamltext.token_end(text, start)
    return line, start, max(end, start)


def diagnostic(problem: Problem, lines: list[str], files: Files, path: Path
               ) -> types.Diagnostic:
    line, start, end = span(problem, lines)
    message = problem.message
    if problem.place is not None and problem.place.rendered_line is not None:
        message += f" (line {problem.place.rendered_line} of `kling-compose render`)"
    if problem.hint:
        message += f"\nhint: {problem.hint}"
    severity = types.DiagnosticSeverity.Warning if problem.severity == "warning" \
        else types.DiagnosticSeverity.Error
    return types.Diagnostic(_range(files, path, line, start, end), message, severity=severity,
                            source=SOURCE)


_BASE60 = re.compile(r"\(YAML reads unquoted (\S+) in base 60\)")
_DID_YOU_MEAN = re.compile(r"did you mean (.+?)\?")
_QUOTED = re.compile(r"'([^']*)'")
_RESERVED = re.compile(r"YAML: a value starting with '(.)' must be quoted")


def fixes(problem: Problem, lines: list[str]) -> list[Fix]:
    """The edits a problem's hint spells out exactly, checked against the text they change:
    a base-60 number quoted, a value starting with '@' quoted, `@@` for a literal '@', and
    each did-you-mean replacement."""
    place = problem.place
    if place is None or place.line is None or place.col is None or place.line > len(lines):
        return []
    line = place.line - 1
    text = lines[line]
    col = place.col - 1
    message, hint = problem.message, problem.hint or ""
    found: list[Fix] = []
    base60 = _BASE60.search(message)
    if base60 and hint.startswith("quote it:") and text.startswith(base60[1], col):
        old = base60[1]
        found.append(Fix(f'Quote it: "{old}"', line, col, col + len(old), old, f'"{old}"',
                         True))
    reserved = _RESERVED.match(message)
    if reserved and text[col:col + 1] == reserved[1]:
        value = _plain_value(text, col)
        if value:
            new = json.dumps(value, ensure_ascii=False)
            found.append(Fix(f"Quote it: {_short(new)}", line, col, col + len(value), value,
                             new, True))
    if message == "'@' must be followed by an element name" and text[col:col + 1] == "@":
        found.append(Fix("Write @@ for a literal '@'", line, col, col + 1, "@", "@@", True))
    meant = _DID_YOU_MEAN.search(hint)
    if meant:
        suggestions = _QUOTED.findall(meant[1])
        wrong = [w for w in _QUOTED.findall(message) if w]
        target = _target(text, col, wrong)
        if target is not None:
            start, old = target
            for suggestion in suggestions:
                found.append(Fix(f"Replace '{old}' with '{suggestion}'", line, start,
                                 start + len(old), old, suggestion, len(suggestions) == 1))
    return found


def _target(text: str, col: int, wrong: list[str]) -> tuple[int, str] | None:
    """Where the mistaken word is: the token at the column (inside its quotes), else its one
    whole-word occurrence on the line (a place inside a template expression)."""
    end = yamltext.token_end(text, col)
    token = text[col:end]
    inner, offset = token, 0
    if len(token) >= 2 and token[0] in "\"'" and token[-1] == token[0]:
        inner, offset = token[1:-1], 1
    if inner in wrong:
        return col + offset, inner
    for word in wrong:
        hits = [m.start() for m in re.finditer(rf"(?<![\w@-]){re.escape(word)}(?![\w-])", text)]
        if len(hits) == 1:
            return hits[0], word
    return None


def _plain_value(text: str, col: int) -> str:
    """The plain scalar starting at `col`, as YAML would read it (parse._quoted_line)."""
    head, value = text[:col], text[col:]
    if "[" in head or "{" in head:
        cut = re.search(r"[,\]}]", value)
        value = value[:cut.start()] if cut else value
    else:
        value = re.split(r"\s#", value, maxsplit=1)[0]
    return value.rstrip()


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def still_applies(fix: Fix, lines: list[str]) -> bool:
    return fix.line < len(lines) and lines[fix.line][fix.start:fix.end] == fix.old


def code_action(fix: Fix, uri: str, files: Files, path: Path,
                diagnostics: list[types.Diagnostic]) -> types.CodeAction:
    edit = types.TextEdit(_range(files, path, fix.line, fix.start, fix.end), fix.new)
    return types.CodeAction(title=fix.title, kind=types.CodeActionKind.QuickFix,
                            diagnostics=diagnostics or None, is_preferred=fix.preferred,
                            edit=types.WorkspaceEdit(changes={uri: [edit]}))


# -- completion ------------------------------------------------------------------------------

def complete(lines: list[str], line: int, col: int, names: Names | None,
             path: Path, files: Files) -> list[types.CompletionItem]:
    """What may be written at the cursor: element names after `@` (and in `elements:`),
    shot ids in `from:` and outputs' sequences, model aliases of the shot's provider in
    `model:`, providers in `provider:`, speakers in `speaker:`, and the field names the
    schema allows where a key is typed."""
    text = lines[line] if line < len(lines) else ""
    before = text[:col]
    ref = yamltext.reference_before(before)
    if ref is not None:
        if names is None:
            return []
        _, at = ref
        edit = _range(files, path, line, at + 1, col)
        return [types.CompletionItem(
            name, kind=types.CompletionItemKind.Reference, detail="element",
            text_edit=types.TextEdit(edit, name), filter_text=name, sort_text=f"0{name}")
            for name in names.elements]
    ctx = context(lines, line, col)
    edit = _range(files, path, line, ctx.start, col)

    def values(items: Iterable[tuple[str, str | None]], kind: types.CompletionItemKind
               ) -> list[types.CompletionItem]:
        return [types.CompletionItem(label, kind=kind, detail=detail,
                                     text_edit=types.TextEdit(edit, label),
                                     sort_text=f"{i:05d}")
                for i, (label, detail) in enumerate(items)]

    key = ctx.key
    if key == "from":
        shots = names.shots if names else ()
        return values([("previous", "the shot before this one"),
                       *((s, "shot") for s in shots)], types.CompletionItemKind.Reference)
    if key == "shot" or (key == "sequence" and ctx.in_list):
        return values(((s, "shot") for s in (names.shots if names else ())),
                      types.CompletionItemKind.Reference)
    if key == "model":
        provider = provider_at(lines, line, ctx, names)
        return values(((alias, _model_detail(provider, alias)) for alias in
                       _models(provider)), types.CompletionItemKind.EnumMember)
    if key == "provider":
        from ..settings import PROVIDER_NAMES

        return values(((p, "provider") for p in PROVIDER_NAMES),
                      types.CompletionItemKind.EnumMember)
    if key == "speaker":
        if names is None:
            return values([(NARRATOR, "an off-screen voice")],
                          types.CompletionItemKind.Reference)
        return values(((s, "an off-screen voice" if s == NARRATOR else "element with a voice")
                       for s in speakers(names)), types.CompletionItemKind.Reference)
    if key == "elements" and ctx.in_list:
        return values(((e, "element") for e in (names.elements if names else ())),
                      types.CompletionItemKind.Reference)
    if key is None and ctx.rooted and not ctx.in_list:
        flow = "{" in before[ctx.indent:]
        present = {} if flow else mapping_keys(lines, line, ctx.indent)
        items = []
        for i, (name, schema) in enumerate(fields_at(ctx.path).items()):
            if name in present and present[name][0] != line:
                continue
            items.append(types.CompletionItem(
                name, kind=types.CompletionItemKind.Field,
                detail=schema.get("title"),
                documentation=types.MarkupContent(types.MarkupKind.Markdown, describe(schema))
                if describe(schema) else None,
                text_edit=types.TextEdit(edit, name if _colon_follows(text, col)
                                         else f"{name}: "),
                sort_text=f"{i:05d}"))
        return items
    return []


def _colon_follows(text: str, col: int) -> bool:
    return bool(re.match(r"[A-Za-z0-9_\-]*\s*:", text[col:]))


def provider_at(lines: list[str], line: int, ctx: yamltext.Context, names: Names | None
                ) -> str:
    """The provider of the mapping at the cursor: its own `provider:`, else its shot's
    (resolved, after inheritance), else the storyboard defaults'."""
    from ..providers import PROVIDERS
    from ..resolve import DEFAULT_PROVIDER

    keys = mapping_keys(lines, line, ctx.indent)
    own = keys.get("provider", (0, ""))[1].strip("\"'")
    if own in PROVIDERS:
        return own
    shot_id = keys.get("id", (0, ""))[1].strip("\"'")
    if names is not None:
        if shot_id in names.providers and ctx.path[-2:] == ("shots", ITEM):
            return names.providers[shot_id]
        if names.default_provider is not None and names.default_provider in PROVIDERS:
            return names.default_provider
    return DEFAULT_PROVIDER


def _models(provider: str) -> list[str]:
    from ..providers import PROVIDERS

    found = PROVIDERS.get(provider)
    return list(found.models) if found is not None else []


def _model_detail(provider: str, alias: str) -> str:
    from ..providers import PROVIDERS

    spec = PROVIDERS[provider].models[alias]
    price = spec.prices.get("silent")
    low, high = spec.durations_s
    return f"{provider}: {low}-{high} s" + (f", ${price}/s" if price is not None else "")


# -- hover -----------------------------------------------------------------------------------

def hover(lines: list[str], line: int, col: int, found: Analysis | None, path: Path,
          files: Files) -> types.Hover | None:
    """A shot id: its fields after inheritance, its prompt as the provider receives it, its
    estimated cost and cache status; `@element`: its description and images; a model
    alias: its price and limits at the shot's provider."""
    text = lines[line] if line < len(lines) else ""
    word = word_at(text, col)
    if word is None:
        return None
    name, start, end = word
    ctx = context(lines, line, end)
    where = _range(files, path, line, start, end)
    names = found.names if found is not None else None
    if name.startswith("@"):
        element = found.element(name[1:]) if found is not None else None
        return _markdown(element_text(element, found), where) if element else None
    if ctx.key == "model":
        provider = provider_at(lines, line, ctx, names)
        text_ = model_text(provider, name)
        return _markdown(text_, where) if text_ else None
    if found is not None and _names_shot(ctx, name, names):
        return _markdown(shot_text(found, name), where)
    if found is not None and _names_element(ctx, name, found):
        return _markdown(element_text(found.element(name), found), where)
    return None


def _names_shot(ctx: yamltext.Context, name: str, names: Names | None) -> bool:
    """The word is a shot's id: at a shot's `id:` (not a scene's or an element's), in a
    `from:`, or in an output's sequence."""
    if names is None or name not in names.shots:
        return False
    if ctx.key == "id":
        return ctx.path[-2:] == ("shots", ITEM)
    return ctx.key in ("from", "shot") or (ctx.key == "sequence" and ctx.in_list)


def _names_element(ctx: yamltext.Context, name: str, found: Analysis) -> bool:
    if found.element(name) is None:
        return False
    return ctx.key == "speaker" or (ctx.key == "elements" and ctx.in_list) or \
        (ctx.key is None and ctx.path == ("elements",))


def _markdown(value: str, where: types.Range) -> types.Hover:
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, value), where)


def format_usd(amount: Decimal | None) -> str:
    """As plan and validate print it (console.format_usd, without importing rich)."""
    return "unknown" if amount is None else f"${amount:.3f}"


def shot_text(found: Analysis, shot_id: str) -> str:
    shot = found.shot(shot_id)
    if shot is None:
        return f"**shot `{shot_id}`**\n\nNot resolved yet: the storyboard has errors " \
               f"({found.stage} stage)."
    job = found.job(shot_id)
    head = f"**shot `{shot.id}`** · scene `{shot.scene}` · {shot.provider} `{shot.model}`"
    parts = [head]
    if job is None:  # a shot of a storyboard that does not compile yet: no cost, no plan
        parts.append("Estimated cost and cache status: once the storyboard compiles "
                     f"({found.problems[0].message if found.problems else found.stage})")
    status = shot_status(found, shot_id) if job is not None else None
    line = f"Estimated cost: {format_usd(job.cost_usd)}" if job is not None else ""
    if job is not None and job.cost_note:
        line += f" ({job.cost_note})"
    if status is not None:
        if status.cost_line:
            line = status.cost_line
        line += f" · cache: {status.text}"
    if line:
        parts.append(line)
    if job is not None:
        parts.append(f"Prompt as {shot.provider} receives it:\n\n" + _fenced(
            prompts_sent(shot, job), "text"))
    parts.append("Resolved fields (after inheritance):\n\n" + _fenced(
        _resolved_yaml(found, shot), "yaml"))
    return "\n\n".join(parts)


def prompts_sent(shot: ResolvedShot, job: Job) -> str:
    from ..providers import PROVIDERS

    provider = PROVIDERS[job.provider]
    if shot.multi_prompt:
        return "\n".join(f"{i}. ({seg.duration_s} s) {provider.prompt_text(shot, seg.prompt)}"
                         for i, seg in enumerate(shot.multi_prompt, 1))
    if shot.prompt is not None:
        return provider.prompt_text(shot, shot.prompt)
    return ""


def _resolved_yaml(found: Analysis, shot: ResolvedShot) -> str:
    import yaml

    from ..commands.config import resolved_config

    assert found.resolved is not None
    one = replace(found.resolved, shots=(shot,), outputs=())
    config = resolved_config(one)
    data: dict[str, Any] = next((s for scene in config["scenes"] for s in scene["shots"]), {})
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip()


def _fenced(value: str, language: str) -> str:
    fence = "````" if "```" in value else "```"
    return f"{fence}{language}\n{value}\n{fence}"


@dataclass(frozen=True, slots=True)
class Status:
    text: str  # the verdict, in plan's words, with what it rests on
    cost_line: str | None = None  # the cost at the project's provider, when it is another


def shot_status(found: Analysis, shot_id: str) -> Status | None:
    from .status import statuses

    view = statuses(found)
    return view.of(shot_id) if view is not None else None


def element_text(element: Element | None, found: Analysis | None) -> str:
    if element is None:
        return ""
    parts = [f"**@{element.name}**" + (f" · tags: {', '.join(element.tags)}"
                                         if element.tags else "")]
    if element.description:
        parts.append(element.description)
    media: list[str] = []
    if element.frontal_image is not None:
        media.append(f"frontal image: {_link(element.frontal_image, found)}")
    for label, sources in (("images", element.images), ("videos", element.videos),
                           ("voices", element.voices)):
        if sources:
            media.append(f"{label}: " + ", ".join(_link(s, found) for s in sources))
    if element.voice is not None:
        media.append(f"voice sample: {_link(element.voice, found)}")
    if element.voice_id:
        media.append(f"voice id: `{element.voice_id}`")
    if element.id:
        media.append(f"provider element id: `{element.id}`")
    if media:
        parts.append("\n".join(f"- {m}" for m in media))
    if element.frontal_image is not None and element.frontal_image.path is not None:
        parts.append(f"![{element.name}]({element.frontal_image.path.as_uri()})")
    return "\n\n".join(parts)


def _link(source: FrameSource, found: Analysis | None) -> str:
    if source.kind == "path" and source.path is not None:
        return f"[{source.value}]({source.path.as_uri()})"
    if source.kind == "url":
        return f"<{source.value}>"
    return f"`{source.value[:60]}`"


def model_text(provider: str, alias: str) -> str | None:
    from ..providers import PROVIDERS

    found = PROVIDERS.get(provider)
    spec = found.models.get(alias) if found is not None else None
    if spec is None:
        hosts = [p.name for p in PROVIDERS.values() if alias in p.models]
        if not hosts:
            return None
        return f"**{alias}** is not offered by {provider}; it is offered by {', '.join(hosts)}"
    return model_spec_text(provider, spec)


def model_spec_text(provider: str, spec: ModelSpec) -> str:
    low, high = spec.durations_s
    prices = {"silent": "silent", "audio": "with audio", "video_input": "with a video input"}
    priced = [f"${spec.prices[k]}/s {label} ({low} s: ${spec.prices[k] * low:.3f})"
              for k, label in prices.items() if k in spec.prices]
    rows = [f"**{spec.alias}** on {provider} (`{spec.model_id}`)",
            "Price: " + ("; ".join(priced) if priced else "unknown (no published price)")]
    limits = [f"duration {low}-{high} s",
              f"prompt {spec.prompt_chars[0]}-{spec.prompt_chars[1]} characters"]
    if spec.sizes is not None:
        limits.append("sizes " + ", ".join(f"{w}x{h}" for w, h in spec.sizes))
    if spec.aspects is not None:
        limits.append("aspects " + ", ".join(spec.aspects))
    if spec.resolutions:
        limits.append("resolution " + " or ".join(spec.resolutions))
    limits.append(f"takes {spec.takes[0]}-{spec.takes[1]}")
    limits.append(f"up to {spec.max_elements} elements")
    if "multi_prompt" in spec.supports:
        limits.append(f"multi_prompt up to {spec.multi_prompt_segments} segments of "
                      f"{spec.segment_s[0]}-{spec.segment_s[1]} s")
    if spec.max_keyframes:
        limits.append(f"up to {spec.max_keyframes} keyframes")
    if spec.cfg_scale is not None:
        limits.append(f"cfg_scale {spec.cfg_scale[0]}-{spec.cfg_scale[1]}")
    rows.append("Limits: " + " · ".join(limits))
    rows.append("Fields: " + ", ".join(sorted(spec.supports)))
    rows.append(f"Source: {spec.source}")
    return "\n\n".join(rows)


# -- definition and references ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # "element" | "shot" | "file"
    name: str


def target_at(lines: list[str], line: int, col: int, found: Analysis | None
              ) -> Target | None:
    """What the cursor names: an element (`@name`, a speaker, an `elements:` entry, its
    definition), a shot (its id, a `from:`, a sequence entry) or an included file."""
    text = lines[line] if line < len(lines) else ""
    included = yamltext.include_at(text, col)
    if included is not None:
        return Target("file", included[0])
    word = word_at(text, col)
    if word is None or found is None:
        return None
    name, _, end = word
    if name.startswith("@"):
        return Target("element", name[1:])
    ctx = context(lines, line, end)
    if name == "previous" and ctx.key == "from":  # the shot before this one
        previous = _previous(found, enclosing_shot(lines, line))
        return Target("shot", previous) if previous else None
    if _names_shot(ctx, name, found.names):
        return Target("shot", name)
    if _names_element(ctx, name, found):
        return Target("element", name)
    return None


def _previous(found: Analysis, shot_id: str | None) -> str | None:
    names = found.names
    if names is None or shot_id not in names.shots:
        return None
    index = names.shots.index(shot_id)
    return names.shots[index - 1] if index > 0 else None


def enclosing_shot(lines: list[str], line: int) -> str | None:
    """The id of the shot whose mapping holds `line`."""
    for i in range(line, -1, -1):
        row = yamltext.split_line(lines[i])
        if row.key == "id" and row.dash is not None:
            ctx = context(lines, i, row.value_col)
            if ctx.path[-2:] == ("shots", ITEM):
                return row.value.strip("\"'")
    return None


def definition(target: Target, found: Analysis, files: Files) -> list[types.Location]:
    if target.kind == "file":
        path = found.folder / target.name
        return [types.Location(files.uri(path), types.Range(types.Position(0, 0),
                                                            types.Position(0, 0)))]
    if target.kind == "element":
        element = found.element(target.name)
        return _locations(found, [element.location] if element else [], files, target)
    sb = found.storyboard
    shots = [s.location for s in sb.shots if s.id == target.name] if sb else []
    return _locations(found, shots[:1], files, target)


def references(target: Target, found: Analysis, files: Files, declaration: bool
               ) -> list[types.Location]:
    if target.kind == "file":
        return definition(target, found, files)
    places = list(_references(target, found))
    if declaration:
        places = [loc for loc in _declaration(target, found)] + places
    return _locations(found, places, files, target)


def _declaration(target: Target, found: Analysis) -> Iterator[Location]:
    sb = found.storyboard
    if sb is None:
        return
    if target.kind == "element":
        element = sb.elements.get(target.name)
        if element is not None and element.location is not None:
            yield element.location
        return
    for shot in sb.shots:
        if shot.id == target.name and shot.location is not None:
            yield shot.location
            return


def _references(target: Target, found: Analysis) -> Iterator[Location]:
    sb = found.storyboard
    if sb is None:
        return
    if target.kind == "element":
        levels = [sb.defaults, *(s.defaults for s in sb.scenes),
                  *(shot.fields for shot in sb.shots)]
        for fields in levels:
            prompts: list[Prompt] = [fields.prompt] if fields.prompt else []
            lines_ = list(fields.dialogue or ())
            for segment in fields.multi_prompt or ():
                prompts.append(segment.prompt)
                lines_ += segment.dialogue
            for prompt in prompts:
                for ref in prompt.refs:
                    if ref.name == target.name and ref.location is not None:
                        yield ref.location
            for ref in fields.elements or ():
                if ref.name == target.name and ref.location is not None:
                    yield ref.location
            for spoken in lines_:
                if spoken.speaker == target.name and spoken.speaker_location is not None:
                    yield spoken.speaker_location
        return
    if found.resolved is not None:
        for shot in found.resolved.shots:
            for chain in shot.chains:
                if chain.value == target.name and chain.location is not None:
                    yield chain.location
        for output in found.resolved.outputs:
            for shot_id, where in zip(output.sequence, output.sequence_locations):
                if shot_id == target.name and where is not None:
                    yield where


def _locations(found: Analysis, locations: Iterable[Location | None], files: Files,
               target: Target) -> list[types.Location]:
    out: list[types.Location] = []
    seen: set[tuple] = set()
    for location in locations:
        place = found.place(location)
        if place is None or place.line is None:
            continue
        lines = files.lines(place.path)
        line, start, end = _named(place, lines, target)
        key = (place.path, line, start)
        if key in seen:
            continue
        seen.add(key)
        out.append(types.Location(files.uri(place.path),
                                  _range(files, place.path, line, start, end)))
    return out


def _named(place: Place, lines: list[str], target: Target) -> tuple[int, int, int]:
    """The range of the name itself near a place: `{ from: a }` points at its `{`, an
    element's key at the key; a name not found there keeps the token at the place."""
    line = (place.line or 1) - 1
    text = lines[line] if line < len(lines) else ""
    col = min((place.col or 1) - 1, len(text))
    name = target.name
    pattern = rf"@?(?<![\w-]){re.escape(name)}(?![\w-])" if target.kind == "element" else \
        rf"(?<![\w-])(?:{re.escape(name)}|previous)(?![\w-])"
    m = re.compile(pattern).search(text, col)
    if m is None and line + 1 < len(lines) and text[col:].strip() in ("", "{"):
        following = lines[line + 1]
        m2 = re.compile(pattern).search(following)
        if m2 is not None:
            return line + 1, m2.start(), m2.end()
    if m is not None:
        return line, m.start(), m.end()
    return line, col, yamltext.token_end(text, col)
