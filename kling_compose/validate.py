"""Stage 3, validate: Document -> Storyboard.

Every JSON Schema violation is collected at once and mapped to the line and column of the
offending node; then the typed objects of model.py are built from the (now well-formed) data.
`schemas/storyboard.schema.json` is the one description of the format's structure.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from .errors import Diagnostic, Location, UserError, did_you_mean
from .model import (
    CUT,
    SHOT_FIELD_NAMES,
    Element,
    ElementRef,
    FrameSource,
    Framing,
    Line,
    Output,
    OutputAudio,
    Piece,
    Prompt,
    PromptSegment,
    Scene,
    Shot,
    ShotFields,
    Storyboard,
    Transition,
    Watermark,
)
from .parse import Document
from .paths import profiled

SCHEMA_RESOURCE = "storyboard.schema.json"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REF = re.compile(r"@@|@([A-Za-z_][A-Za-z0-9_]*)|@")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-9_]+)+(?:\.[0-9_]*)?")  # YAML 1.1 base 60

_PATTERN_TEXT = {
    "^[a-z0-9][a-z0-9_-]*$": "lowercase letters, digits, '-' and '_', starting with a letter "
    "or digit",
    "^[A-Za-z_][A-Za-z0-9_]*$": "letters, digits and '_', not starting with a digit",
    "^[1-9][0-9]*x[1-9][0-9]*$": "WIDTHxHEIGHT, for example 1920x1080",
    "^[1-9][0-9]*:[1-9][0-9]*$": "W:H, for example 16:9",
    "^[^/].*\\.(mp4|mov)$": "a relative path ending in .mp4 or .mov",
    "^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$": "up to 40 letters, digits, '-' and '_', starting with "
    "a letter or digit (it names a lock file and a folder)",
}
# JSON Schema counts 5.0 as an integer; the request must carry 5
_INTEGER_FIELDS = frozenset({"duration", "takes", "pick", "quality"})
_TYPE_NAMES = {
    "string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or "
    "false", "array": "a list", "object": "a mapping", "null": "empty",
}


def schema_text() -> str:
    """The storyboard JSON Schema exactly as shipped."""
    return resources.files("kling_compose").joinpath(SCHEMA_RESOURCE).read_text("utf-8")


@functools.cache
def _validator():
    from jsonschema.validators import validator_for

    schema = json.loads(schema_text())
    return validator_for(schema)(schema)


MAX_DOCUMENT_VALUES = 500_000  # values in the whole document, YAML aliases expanded


# From this many values on, a storyboard is first checked with fastjsonschema (the schema
# compiled to Python: about 15x faster than jsonschema on 10,000 shots, after 0.2 s to compile
# it); only a document it refuses goes through jsonschema, whose errors are the ones reported
# (fastjsonschema stops at the first, and is stricter on `$` in patterns, never looser: its
# verdict is checked against jsonschema's in tests/test_schema_fast_path.py).
FAST_CHECK_VALUES = 5_000


def schema_errors(data, values: int) -> list:
    """Every jsonschema error of `data` (a document of `values` values), [] when it is valid."""
    if values >= FAST_CHECK_VALUES and _fast_check(data):
        return []
    return list(_validator().iter_errors(data))


def _fast_check(data) -> bool:
    """True when fastjsonschema finds `data` valid."""
    from fastjsonschema import JsonSchemaException

    try:
        _fast_validator()(data)
    except JsonSchemaException:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _fast_validator():
    import fastjsonschema

    return fastjsonschema.compile(json.loads(schema_text()))


def validate_document(doc: Document, profile: str | None = None) -> Storyboard:
    """Check the document against the schema (all errors at once), then build the Storyboard,
    with the named profile's fields over `defaults`."""
    values = _check_extent(doc)
    errors = schema_errors(doc.data, values)
    if errors:
        diagnostics = sorted({_describe(e, doc) for e in errors}, key=Diagnostic.sort_key)
        raise UserError(*diagnostics)
    return _Builder(doc, profile).storyboard()


def _check_extent(doc: Document) -> int:
    """Refuse a document whose aliases expand it beyond any storyboard's size, before anything
    walks it (the schema check, the resolver and the compiler all would, for ever), located at
    the deepest part that holds too much."""
    from .parse import extent

    if doc.values is not None and doc.values <= MAX_DOCUMENT_VALUES:
        return doc.values  # counted by the parser: no node shared, nothing to expand
    seen: dict = {}
    size, _ = extent(doc.data, seen)
    if size <= MAX_DOCUMENT_VALUES:
        return size
    path: tuple[Any, ...] = ()
    node = doc.data
    while True:
        children = node.items() if isinstance(node, dict) else \
            enumerate(node) if isinstance(node, list) else ()
        big = next(((k, v) for k, v in children if seen[id(v)][0] > MAX_DOCUMENT_VALUES), None)
        if big is None:
            break
        path, node = path + (big[0],), big[1]
    raise UserError.single(
        f"the storyboard expands to {size} values, more than the {MAX_DOCUMENT_VALUES} it may "
        f"hold; this part alone to {seen[id(node)][0]}", doc.locate(path),
        hint="YAML aliases (*name) repeat what they point at, and nested ones multiply: "
             "write it out once")


# -- schema errors -> diagnostics ------------------------------------------------------------


def _describe(error, doc: Document) -> Diagnostic:
    """A located, plain-language diagnostic for one jsonschema error."""
    path = tuple(error.absolute_path)
    kind = error.validator
    name = _field_name(path)
    if kind in ("anyOf", "oneOf") and error.context:
        return _describe_alternatives(error, doc)
    if kind == "additionalProperties":
        return _unknown_fields(error, doc, path)
    if kind == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        field = missing[0] if missing else "?"
        return Diagnostic(f"{_owner(path)} is missing required field '{field}'",
                          doc.locate(path), hint=_required_hint(field))
    if not path and error.instance is None:
        return Diagnostic("the storyboard is empty", doc.locate(path),
                          hint=_required_hint("version"))
    if "propertyNames" in error.schema_path:
        bad = error.instance
        pattern = error.validator_value if kind == "pattern" else ""  # "": no such pattern
        return Diagnostic(f"{_named(path)} '{bad}' must be {_PATTERN_TEXT.get(pattern, 'a plain name')}",
                          doc.locate(path + (bad,), key=True))
    if kind == "propertyNames":
        bad = error.instance
        return Diagnostic(f"{_named(path)} '{bad}' must be {_PATTERN_TEXT.get(error.validator_value.get('pattern'), 'a plain name')}",
                          doc.locate(path + (bad,), key=True))
    location = doc.locate(path)
    got = _show(error.instance)
    if kind == "type":
        want = error.validator_value
        want = [want] if isinstance(want, str) else want
        if "string" in want and _kind_of(error.instance) in ("integer", "number"):
            unquoted = _read_as_number(error, doc, path)
            if unquoted is not None:
                return unquoted
        return Diagnostic(f"{name} must be {' or '.join(_TYPE_NAMES[t] for t in want)}, "
                          f"not {_kind_of(error.instance)} {got}", location,
                          hint=_type_hint(error.instance, want))
    if kind == "enum":
        options = ", ".join(str(v) for v in error.validator_value)
        hint = did_you_mean(str(error.instance), [str(v) for v in error.validator_value])
        return Diagnostic(f"{name} must be one of {options}, not {got}", location, hint=hint)
    if kind == "const":
        return Diagnostic(f"{name} must be {_show(error.validator_value)}, not {got}", location,
                          hint="this tool reads storyboard format version 1" if name == "'version'" else None)
    if kind == "pattern":
        text = _PATTERN_TEXT.get(error.validator_value, f"match {error.validator_value}")
        return Diagnostic(f"{name} {got} must be {text}", location)
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
                "exclusiveMaximum": "less than"}[kind]
        return Diagnostic(f"{name} must be {word} {error.validator_value}, not {got}", location)
    if kind == "minItems":
        return Diagnostic(f"{name} must not be empty" if error.validator_value == 1 else
                          f"{name} needs at least {error.validator_value} items", location)
    if kind == "minLength":
        return Diagnostic(f"{name} must not be empty", location)
    if kind == "maxItems":
        return Diagnostic(f"{name} has {len(error.instance)} items, more than the "
                          f"{error.validator_value} allowed", location,
                          hint="split them over several shots" if name == "'dialogue'" else None)
    if kind == "maxLength":
        return Diagnostic(f"{name} has {len(error.instance)} characters, more than the "
                          f"{error.validator_value} allowed", location)
    if kind == "uniqueItems":
        return Diagnostic(f"{name} lists an item twice", location)
    message = error.message  # jsonschema's own words hold the whole value: kept short
    return Diagnostic(f"{name}: {message if len(message) <= 200 else message[:197] + '...'}",
                      location)


def _read_as_number(error, doc: Document, path) -> Diagnostic | None:
    """`aspect: 16:9` unquoted is the integer 969 (YAML 1.1 reads digits:digits as base 60):
    say so, and show it quoted when quoting makes it valid."""
    text = doc.scalar_text(path)
    if text is None or not _SEXAGESIMAL.fullmatch(text):
        return None
    hint = None
    if _validator().evolve(schema=error.schema).is_valid(text):
        key = f"{path[-1]}: " if path and isinstance(path[-1], str) else ""
        hint = f'quote it: {key}"{text}"'
    return Diagnostic(f"{_field_name(path)} must be a string, not the number "
                      f"{_show(error.instance)} (YAML reads unquoted {text} in base 60)",
                      doc.locate(path), hint=hint)


def _describe_alternatives(error, doc: Document) -> Diagnostic:
    """anyOf (frame sources, transitions): report the alternative that fits the value's shape."""
    path = tuple(error.absolute_path)
    instance = error.instance
    shaped = [e for e in error.context if e.validator != "type" and not (
        e.validator == "const" and not isinstance(instance, str))]
    deepest = max(shaped, key=lambda e: len(e.absolute_path), default=None)
    if isinstance(instance, dict) and deepest is not None:
        return _describe(deepest, doc)
    name = _field_name(path)
    if path and path[-1] == "transition":
        return Diagnostic(f"{name} must be 'cut' or {{ crossfade: SECONDS }}, not "
                          f"{_show(instance)}", doc.locate(path))
    return Diagnostic(
        f"{name} must be a path, URL, data URI, asset UUID or {{ from: SHOT, frame: last | "
        f"first }}, not {_kind_of(instance)} {_show(instance)}", doc.locate(path))


def _unknown_fields(error, doc: Document, path) -> Diagnostic:
    known = list(error.schema.get("properties", {}))
    extra = re.findall(r"'([^']+)'", error.message.split("(")[-1]) or ["?"]
    unknown = extra[0]
    hint = did_you_mean(unknown, known)
    if hint is None and unknown in ("prompt", "multi_prompt"):
        hint = "prompts belong to shots, not to defaults"
    if hint is None and known:
        hint = "known fields here: " + ", ".join(known)
    return Diagnostic(f"unknown field '{unknown}' in {_owner(path)}",
                      doc.locate(path + (unknown,), key=True), hint=hint)


def _named(path) -> str:
    """What the keys of the mapping at `path` name: `profile name`, `element name`."""
    return "profile name" if tuple(path) == ("profiles",) else "element name"


def _owner(path) -> str:
    """What the mapping at `path` is, in the user's words."""
    names = {"defaults": "defaults", "elements": "element", "outputs": "output",
             "scenes": "scene", "shots": "shot", "multi_prompt": "multi_prompt segment",
             "transition": "transition"}
    for part in reversed(path):
        if isinstance(part, str):
            if len(path) >= 2 and path[-2] == "elements" and part == path[-1]:
                return f"element '{part}'"
            if len(path) == 2 and path[0] == "profiles":
                return f"profile '{part}'"
            return names.get(part, f"'{part}'")
    return "the storyboard"


def _field_name(path) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return f"'{part}'"
    return "the storyboard"


def _required_hint(field: str) -> str | None:
    return {
        "version": "start the storyboard with `version: 1`",
        "scenes": "add `scenes:` with at least one scene of shots",
        "shots": "a scene lists its shots under `shots:`",
        "from": "a chain is written { from: SHOT | previous, frame: last | first }",
    }.get(field)


def _type_hint(value, want) -> str | None:
    if "integer" in want and isinstance(value, str) and value.strip().rstrip("s").isdigit():
        return f"write the number without quotes or unit: {value.strip().rstrip('s')}"
    if "string" in want and isinstance(value, dict) and len(value) == 1:
        return "a value containing ': ' or starting with '{' must be quoted"
    return None


def _kind_of(value) -> str:
    for t, name in (((bool,), "boolean"), ((int,), "integer"), ((float,), "number"),
                    ((str,), "string"), ((list,), "list"), ((dict,), "mapping")):
        if isinstance(value, t):
            return name
    return "empty value" if value is None else type(value).__name__


def _show(value) -> str:
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 40 else text[:37] + "..."
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return json.dumps(value)


# -- typed objects ---------------------------------------------------------------------------

# kling-compose's own folders: a film there would be overwritten (renders/shots: each shot's
# clip is copied there) or deleted (.kling-compose/tmp: cleared by every run)
OWN_FOLDERS = {(".kling-compose",): ".kling-compose, kling-compose's own folder (the ledger, "
               "the clips paid for, temp files the next run deletes)",
               ("renders", "shots"): "renders/shots, where every shot's clip is copied (a "
               "film there would be overwritten)"}


def output_path(path: str) -> str:
    """A film's path in one spelling: ./renders/a.mp4, renders//a.mp4 and
    renders/x/../a.mp4 are renders/a.mp4 (the lock, the plan and the task ids use it)."""
    import posixpath

    return path if "\x00" in path else posixpath.normpath(path)


def _own_folder(key: tuple[str, ...]) -> str | None:
    for folder, what in OWN_FOLDERS.items():
        if key[:len(folder)] == folder and len(key) > len(folder):
            return what
    return None



RESERVED_PROFILES = frozenset({"shots", "report"})  # folders of renders/ (paths.py)


class _Builder:
    """Builds model objects from schema-valid data, stamping each with its Location."""

    def __init__(self, doc: Document, profile: str | None = None) -> None:
        self.doc = doc
        self.profile = profile
        self.root = doc.rendered.root
        self.problems: list[Diagnostic] = []
        self.media_sources: list[FrameSource] = []  # every input file, for check_outputs
        self._file_keys: dict[str, tuple[str, ...] | None] = {}  # path -> _file_key
        self._paths: dict[str, Path] = {}  # a path as written -> root / it

    def storyboard(self) -> Storyboard:
        data = self.doc.data
        elements = {name: self.element(name, spec or {}) for name, spec in
                    (data.get("elements") or {}).items()}
        scenes = tuple(self.scene(i, s) for i, s in enumerate(data["scenes"]))
        outputs = tuple(self.output(i, o) for i, o in enumerate(data.get("outputs") or []))
        self.check_outputs(outputs, [o["path"] for o in data.get("outputs") or []])
        self.check_store(data.get("store"))
        defaults = self.with_profile(self.fields(("defaults",), data.get("defaults") or {}))
        if self.problems:
            raise UserError(*self.problems)
        src = self.doc.rendered.source
        return Storyboard(
            version=data["version"], name=data["name"], path=src.path, display_path=src.display,
            defaults=defaults,
            elements=MappingProxyType(elements), scenes=scenes, outputs=outputs,
            outputs_given="outputs" in data, store=data.get("store"),
            profile=self.profile, profiles=tuple(data.get("profiles") or ()),
        )

    def with_profile(self, defaults: ShotFields) -> ShotFields:
        """`defaults` with the chosen profile's fields over them (each located in the profile);
        an unknown profile is a problem naming the ones there are."""
        profiles = self.doc.data.get("profiles") or {}
        folded: dict[str, str] = {}
        for name in profiles:
            if name.casefold() in RESERVED_PROFILES:  # renders/<profile>/: renders/shots/...
                self.problems.append(Diagnostic(
                    f"'{name}' cannot name a profile: renders/{name}/ is kling-compose's own",
                    self.doc.locate(("profiles", name)),
                    "choose another name, e.g. draft or final"))
            elif name.casefold() in folded:  # one lock file and folder on macOS and Windows
                self.problems.append(Diagnostic(
                    f"profiles '{folded[name.casefold()]}' and '{name}' differ only in case: "
                    "on macOS and Windows they would share one lock file",
                    self.doc.locate(("profiles", name)), "give them distinct names"))
            folded.setdefault(name.casefold(), name)
        self.check_profiled_paths(folded)
        if self.profile is None:
            return defaults
        if self.profile not in profiles:
            names = ", ".join(profiles)
            hint = did_you_mean(self.profile, profiles)
            self.problems.append(Diagnostic(
                f"no profile '{self.profile}' in {self.doc.rendered.source.display}",
                self.doc.locate(("profiles",)) if profiles else None,
                (f"{hint} (profiles: {names})" if hint else f"profiles: {names}") if profiles
                else "declare it: `profiles: {draft: {model: kling-3-std}}` beside defaults"))
            return defaults
        override = self.fields(("profiles", self.profile), profiles[self.profile] or {})
        values = {name: getattr(override, name) if getattr(override, name) is not None
                  else getattr(defaults, name) for name in SHOT_FIELD_NAMES}
        locations = {**defaults.locations, **override.locations}
        return ShotFields(**values, locations=MappingProxyType(locations))

    def check_profiled_paths(self, folded: dict[str, str]) -> None:
        """A film named like another film under a profile (renders/cut.final.mp4 beside
        renders/cut.mp4 and a profile `final`) would be one file written by two runs."""
        for index, output in enumerate(self.doc.data.get("outputs") or ()):
            path = output.get("path") if isinstance(output, dict) else None
            if not isinstance(path, str):
                continue
            stem = PurePosixPath(path).stem
            tag = stem.rpartition(".")[2] if "." in stem else ""
            if tag.casefold() in folded:
                self.problems.append(Diagnostic(
                    f"output path '{path}' is where profile '{folded[tag.casefold()]}' writes "
                    f"the film of '{path.replace('.' + tag, '', 1)}'",
                    self.doc.locate(("outputs", index, "path")),
                    f"name the film without '.{tag}' before its suffix"))

    def check_store(self, url: str | None) -> None:
        """`store:` names a folder or an s3:// bucket: anything else is refused here, not by
        `run` (engine/artifacts.open_store reads it the same way)."""
        from urllib.parse import urlsplit

        if url is None:
            return
        parts = urlsplit(url)
        bad = (parts.scheme == "s3" and not parts.netloc) or \
            (len(parts.scheme) > 1 and parts.scheme not in ("s3", "file"))
        if bad:
            self.problems.append(Diagnostic(
                f"store '{url}' is neither a folder nor s3://bucket/prefix",
                self.doc.locate(("store",)),
                hint="write a folder (a path or file:///...) or s3://bucket/prefix"))

    def scene(self, index: int, data: dict) -> Scene:
        path = ("scenes", index)
        shots = tuple(
            Shot(s["id"], self.fields(path + ("shots", j), s), self.doc.locate(path + ("shots", j, "id")))
            for j, s in enumerate(data["shots"])
        )
        return Scene(data["id"], shots, self.fields(path + ("defaults",), data.get("defaults") or {}),
                     self.doc.locate(path + ("id",)))

    def fields(self, path, data: dict) -> ShotFields:
        locate = self.doc.locate
        values: dict[str, Any] = {}
        locations = {key: locate(path + (key,)) for key in data if key != "id"}
        converters = _CONVERTERS
        for key, value in data.items():
            if key in _INTEGER_FIELDS:
                value = int(value)
            convert = getattr(self, converters[key]) if key in converters else None
            if convert is not None:
                values[key] = convert(path + (key,), value)
            elif key != "id":
                values[key] = value
        return ShotFields(**values, locations=MappingProxyType(locations))

    # one converter per field whose YAML form differs from its typed form
    def _field_prompt(self, path, value: str) -> Prompt:
        return self.prompt(path, value)

    def _field_multi_prompt(self, path, value) -> tuple[PromptSegment, ...]:
        return tuple(
            PromptSegment(self.prompt(path + (i, "prompt"), seg["prompt"]), int(seg["duration"]),
                          self.doc.locate(path + (i,)),
                          self._field_dialogue(path + (i, "dialogue"), seg.get("dialogue") or ()))
            for i, seg in enumerate(value)
        )

    def _field_dialogue(self, path, value) -> tuple[Line, ...]:
        locate = self.doc.locate
        return tuple(Line(line["speaker"], line["line"], line.get("tone"), locate(path + (i,)),
                          locate(path + (i, "speaker")))
                     for i, line in enumerate(value))

    def _field_framing(self, path, value) -> Framing:
        x, y = value.get("focus", (0.5, 0.5))
        return Framing((float(x), float(y)))

    def _field_size(self, path, value: str) -> tuple[int, int]:
        w, h = value.split("x")
        return int(w), int(h)

    def _field_first_frame(self, path, value) -> FrameSource:
        return self.source(path, value)

    _field_last_frame = _field_first_frame
    _field_video = _field_first_frame

    def _field_reference_images(self, path, value) -> tuple[FrameSource, ...]:
        return tuple(self.source(path + (i,), v) for i, v in enumerate(value))

    _field_reference_videos = _field_reference_images
    _field_keyframes = _field_reference_images

    def _field_elements(self, path, value) -> tuple[ElementRef, ...]:
        return tuple(ElementRef(name, self.doc.locate(path + (i,))) for i, name in enumerate(value))

    def _field_provider_options(self, path, value) -> MappingProxyType:
        return MappingProxyType(value)

    def _field_cfg_scale(self, path, value) -> float:
        return float(value)

    def prompt(self, path, text: str) -> Prompt:
        """Split prompt text into literal text and @element references: the literal text
        between two references (or the ends) is one part, an empty one none."""
        if "@" not in text:
            return Prompt((text,), self.doc.locate(path))
        parts: list = []
        literal = ""  # the text since the last reference
        last = 0
        for m in _REF.finditer(text):
            start = m.start()
            literal += text[last:start]
            name = m.group(1)
            if name:
                if literal:
                    parts.append(literal)
                    literal = ""
                parts.append(ElementRef(name, self.doc.locate_text(path, start)))
            elif m.end() - start == 2:  # @@
                literal += "@"
            else:
                self.problems.append(Diagnostic(
                    "'@' must be followed by an element name", self.doc.locate_text(path, start),
                    hint="write @@ for a literal '@'"))
            last = m.end()
        literal += text[last:]
        if literal:
            parts.append(literal)
        return Prompt(tuple(parts), self.doc.locate(path))

    def source(self, path, value) -> FrameSource:
        """A frame source; local paths are made absolute (existence is checked in resolve)."""
        location = self.doc.locate(path)
        if isinstance(value, dict):
            return FrameSource("chain", value["from"], location, value.get("frame", "last"))
        return self.media(value, location)

    def check_outputs(self, outputs: tuple[Output, ...], written: list[str]) -> None:
        """Each film its own file, outside kling-compose's own folders and over no input: two
        spellings of one path (./renders/a.mp4, renders//a.mp4, a link to renders) would be
        one file holding one film while the lock names the other's; a film in renders/shots
        is overwritten by a shot's copy, one in .kling-compose/tmp deleted by the next run."""
        seen: dict[tuple, tuple[Output, str]] = {}
        inputs: dict[tuple[str, ...], FrameSource] = {}
        for source in self.media_sources:
            key = self._file_key(source.value)
            if key is not None:
                inputs.setdefault(key, source)
        storyboard = self._file_key(self.doc.rendered.source.path)
        for out, raw in zip(outputs, written):
            key = self._file_key(out.path)
            if key is None or "\x00" in out.path:
                continue  # outside the project, a loop, not a file name: resolve says so
            own = _own_folder(key)
            if own is not None:
                self.problems.append(Diagnostic(
                    f"output path '{raw}' is inside {own}", out.location,
                    "write films elsewhere in the project, e.g. renders/film.mp4"))
                continue
            if key == storyboard or key in inputs:
                clashing = inputs.get(key)
                where = clashing.location if clashing is not None else None
                what = "the storyboard" if key == storyboard else \
                    f"an input of the storyboard (line {where.line})" if where else \
                    "an input of the storyboard"
                self.problems.append(Diagnostic(
                    f"output path '{raw}' is {what}: the film would overwrite it",
                    out.location, "give the film its own path, e.g. renders/film.mp4"))
                continue
            if key in seen:
                first, first_raw = seen[key]
                line = f" (line {first.location.line})" if first.location else ""
                if raw == first_raw:
                    message = f"output path '{raw}' is used twice"
                elif out.path == first.path:
                    message = f"output path '{raw}' is the same file as '{first_raw}'{line}"
                else:
                    message = (f"output path '{raw}' is the same file as '{first_raw}'{line} "
                               "(through a link, or on a file system that ignores case: "
                               "macOS, Windows)")
                self.problems.append(Diagnostic(message, out.location,
                                                "give each output its own path"))
                continue
            seen[key] = (out, raw)

    def _file_key(self, path) -> tuple[str, ...] | None:
        """Which file in the project a path names, spelling aside: its parts from the project
        folder, links followed, case folded; None outside the project (or a link loop).
        Once per spelling: a storyboard names one image from hundreds of shots, and each
        resolution walks the path's links (kling-compose lsp validates on every edit)."""
        from pathlib import Path

        spelling = str(path)
        if spelling in self._file_keys:
            return self._file_keys[spelling]
        try:
            real_root = self.root.resolve()
            real = (self.root / Path(path)).resolve()
            parts = real.relative_to(real_root).parts
            key: tuple[str, ...] | None = tuple(p.casefold() for p in parts)
        except (OSError, RuntimeError, ValueError, TypeError):
            key = None
        self._file_keys[spelling] = key
        return key

    def media(self, value: str, location: Location | None) -> FrameSource:
        if value[:8].lower().startswith(("http://", "https://")):
            return FrameSource("url", value, location)
        if value[:5].lower() == "data:":
            return FrameSource("data", value, location)
        if _UUID.match(value):
            return FrameSource("uuid", value, location)
        path = self._paths.get(value)
        if path is None:  # a file named by many shots: joined once
            path = self._paths[value] = self.root / value
        source = FrameSource("path", value, location, path=path)
        self.media_sources.append(source)
        return source

    def element(self, name: str, data: dict) -> Element:
        path = ("elements", name)
        media = lambda key: tuple(self.media(v, self.doc.locate(path + (key, i)))
                                  for i, v in enumerate(data.get(key) or ()))
        frontal = data.get("frontal_image")
        return Element(
            name=name, location=self.doc.locate(path, key=True),
            description=data.get("description"),
            frontal_image=self.media(frontal, self.doc.locate(path + ("frontal_image",))) if frontal else None,
            images=media("images"), videos=media("videos"), voices=media("voices"),
            tags=tuple(data.get("tags") or ()), id=data.get("id"),
            voice=self.media(data["voice"], self.doc.locate(path + ("voice",)))
            if data.get("voice") else None,
            voice_id=data.get("voice_id"),
        )

    def output(self, index: int, data: dict) -> Output:
        path = ("outputs", index)
        locate = self.doc.locate
        items = data.get("sequence") or ()
        pieces = tuple(self.piece(path + ("sequence", i), item) for i, item in enumerate(items))
        shots = [(p.shot, locate(path + ("sequence", i) + (() if isinstance(items[i], str)
                                                         else ("shot",))))
                 for i, p in enumerate(pieces) if p.shot is not None]
        transition = self.transition(path + ("transition",), data.get("transition", "cut"))
        crossfade = transition.seconds if transition.kind == "crossfade" else 0.0
        audio = data.get("audio")
        mark = data.get("watermark")
        return Output(
            path=profiled(output_path(data["path"]), self.profile), sequence=tuple(s for s, _ in shots),
            crossfade_s=crossfade, location=locate(path),
            crossfade_location=transition.location if crossfade else None,
            sequence_locations=tuple(where for _, where in shots),
            pieces=pieces if any(not isinstance(i, str) for i in items) else (),
            transition=transition,
            fade_in_s=float(data.get("fade_in", 0)), fade_out_s=float(data.get("fade_out", 0)),
            subtitles=tuple(data.get("subtitles") or ()), burn_in=bool(data.get("burn_in")),
            audio=None if audio is None else OutputAudio(
                music=self.media(audio["music"], locate(path + ("audio", "music")))
                if audio.get("music") else None,
                music_gain_db=float(audio.get("music_gain", -18)),
                duck_db=float(audio.get("duck", 10)),
                loudness_lufs=float(audio["loudness"]) if "loudness" in audio else None,
                location=locate(path + ("audio",))),
            aspect=data.get("aspect"),
            size=self._field_size(path + ("size",), data["size"]) if "size" in data else None,
            reframe=data.get("reframe", "crop"), preset=data.get("preset", "web"),
            watermark=None if mark is None else Watermark(
                self.media(mark["image"], locate(path + ("watermark", "image"))),
                corner=mark.get("corner", "bottom-right"),
                opacity=float(mark.get("opacity", 0.8)), scale=float(mark.get("width", 0.12)),
                location=locate(path + ("watermark",))),
        )

    def transition(self, path, value) -> Transition:
        if not isinstance(value, dict):
            return CUT
        ((kind, seconds),) = value.items()
        return Transition(kind, float(seconds), self.doc.locate(path + (kind,)))

    def piece(self, path, item) -> Piece:
        """One sequence item: a shot id, a trimmed shot or a title card."""
        locate = self.doc.locate
        if isinstance(item, str):
            return Piece(shot=item, location=locate(path))
        transition = self.transition(path + ("transition",), item["transition"]) \
            if "transition" in item else None
        if "shot" in item:
            return Piece(shot=item["shot"], start_s=_number(item.get("in")),
                         end_s=_number(item.get("out")), transition=transition,
                         location=locate(path))
        background = item.get("background")
        if background is not None and "." not in background and "/" not in background \
                and not _COLOUR.match(background):
            self.problems.append(Diagnostic(
                f"background '{background}' is neither a colour nor an image file",
                locate(path + ("background",)),
                hint=f"write a colour ({', '.join(COLOURS)} or #RRGGBB) or an image path"))
        elif background is not None and not _COLOUR.match(background):
            background = self.media(background, locate(path + ("background",)))
        return Piece(title=item["title"], subtitle=item.get("subtitle"),
                     duration_s=float(item.get("duration", 3)), background=background,
                     transition=transition, location=locate(path))


# field -> the _Builder method converting it (`_field_<name>`), looked up once, not per key
_CONVERTERS: dict[str, str] = {name.removeprefix("_field_"): name for name in vars(_Builder)
                               if name.startswith("_field_")}

# a title card's background colours: ffmpeg's names of these, or #RRGGBB
COLOURS = ("black", "white", "gray", "navy", "maroon", "teal", "olive", "purple", "red",
           "green", "blue", "yellow", "orange")
_COLOUR = re.compile(r"^(#[0-9a-fA-F]{6}|" + "|".join(COLOURS) + ")$")


def _number(value) -> float | None:
    return None if value is None else float(value)
