"""Stage 4, resolve: Storyboard -> Resolved (shots with inheritance applied, references checked).

Inheritance is storyboard `defaults` -> scene `defaults` -> shot: the nearest level that sets a
field wins; `size` and `aspect` are one setting (the nearer level's replaces the other);
`provider_options` mappings are merged deeply. Then every reference is checked: unique ids,
`@element` names, frame chains (`previous`, unknown shots, cycles), local files, outputs.

Cycle finding is a small depth-first search here rather than networkx: `validate` must start
fast, and networkx alone costs ~180 ms to import.
"""

from __future__ import annotations

import operator
import re
import stat
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from .errors import Diagnostic, Location, UserError, did_you_mean
from .files import real_path
from .paths import profiled
from .parse import extent
from .model import (
    NARRATOR,
    SHOT_FIELD_NAMES,
    Element,
    ElementRef,
    FrameSource,
    Output,
    Piece,
    Resolved,
    ResolvedShot,
    Shot,
    ShotFields,
    Storyboard,
)

DEFAULT_PROVIDER = "preview"
DEFAULT_MODEL = "kling-3-pro"
_SIMPLE_FIELDS = tuple(n for n in SHOT_FIELD_NAMES if n not in ("size", "aspect", "provider_options",
                                                                 "elements", "dialogue",
                                                                 "framing"))
_simple_values = operator.attrgetter(*_SIMPLE_FIELDS)  # a level's, as one tuple

MIN_CROSSFADE_S = 0.1  # 2.4 frames at 24 fps, 3 at 30: xfade needs whole frames


def resolve_storyboard(sb: Storyboard) -> Resolved:
    """Apply inheritance and check every reference; raises UserError with all problems."""
    r = _Resolver(sb)
    shots = r.shots()
    outputs = r.outputs(shots)
    r.check_cycles(shots)
    if not r.problems:
        shots, outputs = regenerated(shots, outputs)
    r.check_written_places(shots, outputs)
    if r.problems:
        raise UserError(*sorted(set(r.problems), key=Diagnostic.sort_key))
    return Resolved(sb, shots, outputs)


class _Resolver:
    def __init__(self, sb: Storyboard) -> None:
        self._options_checked: dict[int, tuple[int, int]] = {}
        self.sb = sb
        self.problems: list[Diagnostic] = []
        self.ids: dict[str, Shot] = {}
        self.order: list[str] = []  # unique shot ids in storyboard order
        self.in_order = sb.shots  # every shot, duplicates included (`previous` counts them)
        self._exists: dict = {}
        self._root_real = real_path(sb.root)  # resolved once: every input path is checked
        self._inside: dict[str, bool | None] = {}  # a path as written -> inside()
        # ids of defaults levels (alive in self.sb all along) -> their merged fields
        self._inherited: dict[tuple[int, ...], dict[str, tuple[Any, Location | None]]] = {}

    def fail(self, message: str, location: Location | None, hint: str | None = None) -> None:
        self.problems.append(Diagnostic(message, location, hint))

    # -- shots -------------------------------------------------------------------------------

    def shots(self) -> tuple[ResolvedShot, ...]:
        self.check_ids()
        for element in self.sb.elements.values():
            self.check_element(element)
        out: list[ResolvedShot] = []
        for scene in self.sb.scenes:
            for shot in scene.shots:
                out.append(self.shot(len(out), scene.id, (self.sb.defaults, scene.defaults, shot.fields), shot))
        return tuple(out)

    def check_ids(self) -> None:
        scenes: dict[str, Location | None] = {}
        for scene in self.sb.scenes:
            if scene.id in scenes:
                self.fail(f"duplicate scene id '{scene.id}' (first on line {_line(scenes[scene.id])})",
                          scene.location, "scene ids must be unique")
            scenes.setdefault(scene.id, scene.location)
            for shot in scene.shots:
                first = self.ids.get(shot.id)
                if first is not None:
                    self.fail(f"duplicate shot id '{shot.id}' (first on line {_line(first.location)})",
                              shot.location, "shot ids must be unique across the storyboard")
                    continue
                self.ids[shot.id] = shot
                self.order.append(shot.id)

    def shot(self, index: int, scene: str, levels: tuple[ShotFields, ...], shot: Shot) -> ResolvedShot:
        values: dict[str, Any] = {}
        locations: dict[str, Location | None] = {}
        if len(levels) == 3:  # storyboard and scene defaults (shared: merged once), the shot
            inherited = self.inherited(levels[0], levels[1])
            own, own_locations = levels[2], levels[2].locations
            for name, value in zip(_SIMPLE_FIELDS, _simple_values(own)):
                if value is not None:
                    values[name] = value
                    locations[name] = own_locations.get(name)
                elif name in inherited:
                    values[name], locations[name] = inherited[name]
        else:
            for name in _SIMPLE_FIELDS:
                for level in reversed(levels):
                    value = getattr(level, name)
                    if value is not None:
                        values[name] = value
                        locations[name] = level.locations.get(name)
                        break
        self.inherit_frame(levels, values, locations)
        if any(level.provider_options for level in levels):
            options = _deep_merge(level.provider_options for level in levels
                                  if self.check_options(level, shot))
        else:  # what _deep_merge makes of nothing (and check_options of an empty level)
            options = {}
        where = lambda name: locations.get(name, shot.location)
        self.check_prompt(shot, values, where)
        self.check_takes(values, where)
        chains: dict[str, FrameSource] = {
            name: self.source(shot, index, values[name]) for name in
            ("first_frame", "last_frame", "video") if name in values}
        lists: dict[str, tuple[FrameSource, ...]] = {
            name: tuple(self.source(shot, index, s) for s in values[name]) for name in
            ("reference_images", "reference_videos", "keyframes") if name in values}
        self.check_dialogue(shot, values, locations)
        elements = self.elements(shot, values, levels)
        values.update(chains)
        values.update(lists)
        values["elements"] = elements
        values.setdefault("provider", DEFAULT_PROVIDER)
        values.setdefault("model", DEFAULT_MODEL)
        values.setdefault("takes", 1)
        values.setdefault("pick", 1)
        if shot.fields.dialogue:
            values["dialogue"] = shot.fields.dialogue
        if shot.fields.framing is not None:
            values["focus"] = shot.fields.framing.focus
        return ResolvedShot(
            id=shot.id, scene=scene, index=index, provider_options=MappingProxyType(options),
            location=shot.location, locations=MappingProxyType(
                {k: v for k, v in locations.items() if v is not None}), **values,
        )

    def inherited(self, top: ShotFields, scene: ShotFields
                  ) -> dict[str, tuple[Any, Location | None]]:
        """Each simple field the scene's defaults, else the storyboard's, set: (value,
        where), as shot() takes them; made once per scene (each of its shots asks)."""
        key = (id(top), id(scene))
        found = self._inherited.get(key)
        if found is None:
            merged: dict[str, tuple[Any, Location | None]] = {}
            for name in _SIMPLE_FIELDS:
                for level in (scene, top):
                    value = getattr(level, name)
                    if value is not None:
                        merged[name] = (value, level.locations.get(name))
                        break
            found = self._inherited[key] = merged
        return found

    def inherit_frame(self, levels, values, locations) -> None:
        """size and aspect are one setting: the nearest level that sets either decides."""
        for level in reversed(levels):
            if level.size is not None and level.aspect is not None:
                self.fail("'size' and 'aspect' both set; use one of them",
                          level.locations.get("aspect"), "size is WIDTHxHEIGHT, aspect is W:H")
            if level.size is not None or level.aspect is not None:
                for name in ("size", "aspect"):
                    if getattr(level, name) is not None:
                        values[name] = getattr(level, name)
                        locations[name] = level.locations.get(name)
                return

    def check_options(self, level, shot: Shot) -> bool:
        """provider_options of one level is bounded: YAML aliases can make a small file expand
        exponentially, and deep nesting overflows the stack of every later stage."""
        options = level.provider_options
        if not options:
            return True
        verdict = self._options_checked.get(id(options))
        if verdict is None:
            size, depth = extent(options, {})
            verdict = self._options_checked[id(options)] = (size, depth)
        size, depth = verdict
        where = level.locations.get("provider_options", shot.location)
        if size > MAX_OPTION_VALUES:
            self.fail(f"provider_options expands to {size} values, more than the "
                      f"{MAX_OPTION_VALUES} allowed", where,
                      "YAML aliases (*name) repeat what they point at: a few of them nested "
                      "multiply; write the fields the API needs once")
            return False
        if depth > MAX_OPTION_DEPTH:
            self.fail(f"provider_options is nested {depth} levels deep, more than the "
                      f"{MAX_OPTION_DEPTH} allowed", where,
                      "no provider API nests its fields that deep")
            return False
        return True

    def check_prompt(self, shot: Shot, values, where) -> None:
        has_prompt, has_multi = "prompt" in values, "multi_prompt" in values
        if has_prompt and has_multi:
            self.fail(f"shot '{shot.id}' has both 'prompt' and 'multi_prompt'",
                      where("multi_prompt"), "use prompt for one shot, multi_prompt for several "
                      "shots in one generation")
        elif not has_prompt and not has_multi:
            self.fail(f"shot '{shot.id}' has no 'prompt'", shot.location,
                      "add `prompt:` (or `multi_prompt:` for several shots in one generation)")

    def check_dialogue(self, shot: Shot, values, locations) -> None:
        """Each speaker an element or the narrator; lines on a shot or on its segments, not
        both; dialogue is spoken, so the shot has audio (on unless set off, which is refused)."""
        own = shot.fields.dialogue or ()
        segments = values.get("multi_prompt") or ()
        if own and segments:
            self.fail(f"shot '{shot.id}' has dialogue and a multi_prompt", own[0].location,
                      "give each multi_prompt segment its own `dialogue:`")
        lines = [*own, *(line for seg in segments for line in seg.dialogue)]
        for line in lines:
            if line.speaker != NARRATOR and line.speaker not in self.sb.elements:
                names = [*self.sb.elements, NARRATOR]
                self.fail(f"speaker '{line.speaker}' is not an element", line.speaker_location,
                          did_you_mean(line.speaker, names) or
                          f"speakers are elements ({', '.join(self.sb.elements) or 'none yet'}) "
                          f"or `{NARRATOR}` for an off-screen voice")
        if not lines:
            return
        if values.get("audio") is False:
            where = locations.get("audio")
            at = f" (set on line {where.line})" if where is not None else ""
            self.fail(f"shot '{shot.id}' has dialogue but `audio: false`{at}", lines[0].location,
                      "dialogue is spoken: remove `audio: false` for this shot, or the lines")
        elif "audio" not in values:
            values["audio"] = True
            locations["audio"] = lines[0].location

    def check_takes(self, values, where) -> None:
        takes, pick = values.get("takes", 1), values.get("pick", 1)
        if pick > takes:
            self.fail(f"'pick' is {pick} but the shot has only {takes} take(s)", where("pick"),
                      f"pick a take between 1 and {takes}, or raise 'takes'")

    # -- references --------------------------------------------------------------------------

    def source(self, shot: Shot, index: int, src: FrameSource) -> FrameSource:
        """Check a frame source; `previous` becomes the id of the shot before this one."""
        if src.kind == "path":
            self.check_file(src)
            return src
        if src.kind == "data":
            self.check_data_uri(src)
        if not src.is_chain:
            return src
        if src.value == "previous":
            if index == 0:
                self.fail(f"shot '{shot.id}' is the first shot: it has no previous shot to "
                          "chain from", src.location, "give a file or a shot id instead")
                return src
            # replace(src, value=...), built directly (every chained shot: 10 us less)
            return FrameSource(src.kind, self.in_order[index - 1].id, src.location, src.frame,
                               src.path)
        if src.value not in self.ids:
            self.fail(f"unknown shot '{src.value}' in frame chain", src.location,
                      did_you_mean(src.value, self.ids) or "chain from a shot id of this storyboard")
        return src

    def check_file(self, src: FrameSource) -> None:
        from .files import shown

        path = src.path
        assert path is not None, "a local file's source carries its path (validate.py)"

        value = shown(src.value)
        if "\x00" in src.value:
            self.fail("a file path contains a NUL byte", src.location,
                      "remove the invisible character from the path")
            return
        inside = self.inside(src.value)
        if inside is None:
            self.fail(f"'{value}' leads through a loop of symbolic links", src.location,
                      "make the link point at the file itself")
            return
        if not inside:
            self.fail(f"'{value}' is outside the project folder", src.location,
                      "copy it into the project (e.g. assets/): the project lives in git and "
                      "must stand alone")
            return
        ok = self._exists.get(path)
        if ok is None:
            mode, problem = _stat(path)
            ok = self._exists[path] = problem is None and stat.S_ISREG(mode)
            if ok and path.suffix.lower() in IMAGE_SUFFIXES:
                problem = image_size_problem(path)
                if problem:
                    self.fail(problem, src.location, "scale the image down (Kling takes "
                              "frames of a few thousand pixels a side)" if "larger" in problem
                              or "too large" in problem else "export the image again: the "
                              "file is damaged or not an image")
        if not ok:
            mode, problem = _stat(path)
            if problem is not None:  # a path too long, a loop of links: not merely missing
                self.fail(f"'{value}' cannot be used: {problem}", src.location,
                          "name an image, video or audio file by a short path inside the "
                          "project")
                return
            if mode or _is_link(path):
                kind = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if \
                    stat.S_ISFIFO(mode) else "not a regular file"
                self.fail(f"'{value}' is {kind}", src.location,
                          "name an image, video or audio file")
                return
            self.fail(f"file '{value}' not found", src.location,
                      _near_file_hint(src, path)
                      or "paths are relative to the storyboard's folder")

    def check_data_uri(self, src: FrameSource) -> None:
        """A data URI's payload must decode: sent as is, a broken one is refused after the
        shots before it were paid for."""
        import base64
        import binascii

        head, comma, payload = src.value.partition(",")
        if not comma:
            self.fail("data URI without a ',' before its data", src.location,
                      "write data:<mime>;base64,<data>")
        elif head.lower().endswith(";base64"):
            try:
                data = base64.b64decode("".join(payload.split()), validate=True)
            except (binascii.Error, ValueError):
                self.fail("data URI holds invalid base64", src.location,
                          "encode the file again (base64 of the whole file), or use its path")
                return
            if head.lower().startswith("data:image/"):
                import io

                from PIL import Image

                problem = _image_problem(lambda: Image.open(io.BytesIO(data)),
                                         "the data URI's image")
                if problem:
                    self.fail(problem, src.location, "encode a whole image (PNG, JPEG or WebP)")

    def inside(self, value: str) -> bool | None:
        """A relative path that stays inside the project folder (symlinks resolved); None
        when its links cannot be followed (a loop)."""
        import posixpath

        from .files import resolves_inside

        if value in self._inside:  # hundreds of shots name one image: its links walked once
            return self._inside[value]
        normal = posixpath.normpath(value.replace("\\", "/"))
        if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
            found: bool | None = False
        else:
            found = resolves_inside(self.sb.root / normal, self.sb.root, self._root_real)
        self._inside[value] = found
        return found

    def check_element(self, element: Element) -> None:
        if element.voice is not None and element.voice_id is not None:
            self.fail(f"element '{element.name}' has both `voice` and `voice_id`",
                      element.voice.location, "a sample to make a voice of, or a voice the "
                      "provider account has: one of them")
        for src in (element.frontal_image, *element.images, *element.videos, *element.voices,
                    element.voice):
            if src is not None and src.kind == "path":
                self.check_file(src)

    def elements(self, shot: Shot, values, levels) -> tuple[Element, ...]:
        """Elements the shot uses: prompt references by first appearance, then the explicit list."""
        refs = []
        if "prompt" in values:
            refs += values["prompt"].refs
        for seg in values.get("multi_prompt") or ():
            refs += seg.prompt.refs
        explicit: tuple = ()
        for level in reversed(levels):
            if level.elements is not None:
                explicit = level.elements
                refs += level.elements
                break
        used: dict[str, Element] = {}
        for ref in refs:
            element = self.sb.elements.get(ref.name)
            if element is None:
                in_prompt = ref not in explicit
                self.fail(f"unknown element '{'@' if in_prompt else ''}{ref.name}'", ref.location,
                          _element_hint(ref.name, self.sb.elements, "@" if in_prompt else ""))
            else:
                used.setdefault(ref.name, element)
        return tuple(used.values())

    def check_cycles(self, shots: tuple[ResolvedShot, ...]) -> None:
        deps: dict[str, list[str]] = {}
        for s in shots:
            if s.location is not self.ids[s.id].location:
                continue  # a duplicate id, already an error: its chains are ambiguous
            deps.setdefault(s.id, []).extend(c.value for c in s.chains if c.value in self.ids)
        for cycle in _cycles(deps):
            link = next(c for s in shots if s.id == cycle[0] for c in s.chains
                        if c.value == cycle[1 % len(cycle)])
            self.fail("frame chain cycle: " + " -> ".join(cycle + [cycle[0]]), link.location,
                      "a shot cannot depend on a frame of a shot that depends on it")

    # -- outputs -----------------------------------------------------------------------------

    def outputs(self, shots: tuple[ResolvedShot, ...]) -> tuple[Output, ...]:
        all_ids = tuple(self.order)
        if not self.sb.outputs_given:
            slug = _slug(self.sb.name)
            if len(slug.encode()) > MAX_NAME_BYTES:
                self.fail(f"the name makes a file name of {len(slug.encode())} bytes, more "
                          f"than the {MAX_NAME_BYTES} a film's file name may have",
                          None, "shorten the name, or give outputs: with a path")
            return (Output(profiled(f"renders/{slug}.mp4", self.sb.profile), all_ids),)
        seen: dict[str, Output] = {}
        result = []
        durations = {s.id: s.duration for s in shots}
        for out in self.sb.outputs:
            if "\x00" in out.path or any(len(p.encode()) > 255 for p in out.path.split("/")):
                self.fail(f"output path '{out.path[:60]}' cannot be a file name (a NUL byte, "
                          "or a part longer than 255 bytes)", out.location,
                          "use a short plain path such as renders/film.mp4")
                continue
            inside = self.inside(out.path)
            if inside is None:
                self.fail(f"output path '{out.path}' leads through a loop of symbolic links",
                          out.location, "remove the link, or write the film elsewhere")
            elif not inside:
                self.fail(f"output path '{out.path}' is outside the project folder",
                          out.location, "write films inside the project, e.g. renders/film.mp4")
            if out.path in seen:
                self.fail(f"output path '{out.path}' is used twice", out.location,
                          "give each output its own path")
            seen.setdefault(out.path, out)
            for shot_id, location in zip(out.sequence, out.sequence_locations):
                if shot_id not in self.ids:
                    self.fail(f"output '{out.path}' names unknown shot '{shot_id}'", location,
                              did_you_mean(shot_id, self.ids))
            sequence = out.sequence or all_ids
            self.check_crossfade(out, sequence, durations)
            pieces = out.pieces or tuple(Piece(shot=s, location=where) for s, where in
                                         zip(sequence, out.sequence_locations or
                                             [out.location] * len(sequence)))
            self.check_edit(out, pieces, durations)
            self.check_deliverable(out)
            result.append(replace(out, sequence=sequence, pieces=pieces))
        self.check_sidecars(result)
        return tuple(result)

    def check_sidecars(self, outputs) -> None:
        """Subtitle files are written beside their film: two films of one name (film.mp4,
        film.mov) would write one film.srt, and a sidecar over a film overwrites it."""
        films = {out.path.casefold(): out for out in outputs}
        written: dict[str, Output] = {}
        for out in outputs:
            for form in out.subtitles:
                sidecar = str(Path(out.path).with_suffix("." + form)).casefold()
                other = written.get(sidecar) or films.get(sidecar)
                if other is not None and other is not out:
                    self.fail(f"the {form} subtitles of '{out.path}' and '{other.path}' would be "
                              f"one file, {Path(out.path).with_suffix('.' + form)}",
                              out.location, "give the films different names")
                written.setdefault(sidecar, out)

    def check_edit(self, out: Output, pieces: tuple[Piece, ...], durations) -> None:
        """Trims inside their clips, transitions shorter than the pieces they join, title
        cards' images present."""
        lengths: list[float | None] = []
        for piece in pieces:
            if piece.is_title:
                if isinstance(piece.background, FrameSource) and piece.background.kind == "path":
                    self.check_file(piece.background)
                    self.check_media(piece.background, "image")
                lengths.append(piece.duration_s)
                continue
            clip = durations.get(piece.shot)
            start, end = piece.start_s or 0.0, piece.end_s if piece.end_s is not None else clip
            if end is not None and start >= end:
                self.fail(f"shot '{piece.shot}' is trimmed to nothing (in {start:g} s, out "
                          f"{end:g} s)", piece.location, "`in` must come before `out`")
                end = None  # its length is unknown: its transitions are not judged by it
            elif clip is not None and end is not None and end > clip + 1e-9:
                self.fail(f"`out: {end:g}` is past the end of shot '{piece.shot}' ({clip} s)",
                          piece.location, f"trim within the clip: out at most {clip}")
            lengths.append(None if end is None else end - start)
        for i, piece in enumerate(pieces):
            into = piece.transition or out.transition
            if into.kind == "cut":
                continue
            if i == 0:
                if piece.transition is not None:
                    self.fail(f"the first piece of a film has nothing to {into.kind} from",
                              into.location or piece.location,
                              f"remove its transition; `fade_in: {into.seconds:g}` on the "
                              "output fades the film up from black")
                continue  # the output's own transition joins the pieces after it
            if into.kind == "crossfade" and (piece.transition is None or
                                             into.seconds < MIN_CROSSFADE_S):
                continue  # the output's own crossfade: check_crossfade
            joined = [n for n in (lengths[i], lengths[i - 1] if i else None) if n is not None]
            limit = min(joined) if joined else None
            if limit is not None and into.seconds >= limit and (i or into.kind == "dip"):
                self.fail(f"a {into.kind} of {into.seconds:g} s is not shorter than the "
                          f"pieces it joins ({limit:g} s)", into.location or piece.location,
                          f"use a {into.kind} shorter than {limit:g} s")

    def check_media(self, source: FrameSource, what: str) -> None:
        """A music file that plays (found only when the film is assembled, after the shots
        were paid for, and an empty one looped for ever), an image that decodes."""
        if source.path is None or not self._exists.get(source.path):
            return  # missing, outside, a folder: check_file said so
        if what == "music":
            from .media.ffmpeg import MIN_LOOP_S, audio_seconds  # lazy: PyAV

            seconds = audio_seconds(source.path)
            if seconds is None or seconds < MIN_LOOP_S:
                self.fail(f"music '{source.value}' has no sound to play (no audio stream, or "
                          "it is empty)", source.location,
                          "give an audio file (mp3, wav, m4a, flac...) of at least a second")
            return
        if source.path.suffix.lower() in IMAGE_SUFFIXES:
            return  # check_file decoded it
        problem = image_size_problem(source.path)
        if problem is not None:
            self.fail(problem, source.location, "give a PNG or JPEG image")

    def check_deliverable(self, out: Output) -> None:
        """The files an output reads exist; size and aspect agree; each preset's container."""
        for source, what in ((out.audio.music if out.audio else None, "music"),
                             (out.watermark.image if out.watermark else None, "image")):
            if source is None:
                continue
            if source.kind != "path":
                self.fail(f"'{source.value[:60]}' is not a local file", source.location,
                          "an output's music and watermark are files in the project")
            else:
                self.check_file(source)
                self.check_media(source, what)
        if out.size and out.aspect:
            w, h = out.size
            aw, ah = (int(n) for n in out.aspect.split(":"))
            if w * ah != h * aw:
                self.fail(f"size {w}x{h} is not {out.aspect}", out.location,
                          "give `size` or `aspect` (the size follows from the aspect)")
        if out.preset == "master" and not out.path.lower().endswith(".mov"):
            self.fail(f"preset master writes a .mov (ProRes 422 HQ + PCM), not "
                      f"'{out.path}'", out.location, "name the output .mov, or use preset web")
        if out.reframe == "generate" and out.aspect is None:
            self.fail("`reframe: generate` needs the output's `aspect`", out.location,
                      "add `aspect: \"9:16\"` (or the ratio wanted) to the output")

    def check_written_places(self, shots, outputs) -> None:
        """A folder, a named pipe or a device where `run` writes a film or a shot's clip
        (renders/shots/<shot>.<ext>) would stop the run after it paid, with a message naming
        a temp file: refused here, at the output or the shot."""
        import os

        root = self.sb.root
        for out in outputs:
            mode, _ = _stat(root / out.path)
            if mode and not stat.S_ISREG(mode):
                self.fail(f"output path '{out.path}' is {_kind(mode)}: run writes the film "
                          "there", out.location or Location(self.sb.display_path),
                          "remove it, or give the film another path")
            for form in out.subtitles:
                sidecar = Path(out.path).with_suffix("." + form).as_posix()
                mode, _ = _stat(root / sidecar)
                if mode and not stat.S_ISREG(mode):
                    self.fail(f"{sidecar} is {_kind(mode)}: run writes the film's {form} "
                              "subtitles there", out.location or Location(self.sb.display_path),
                              f"remove it, or give the film another path")
        wanted = {s.id: s for s in shots}
        folder = self.sb.paths.shots
        shown = folder.relative_to(root).as_posix()
        try:
            with os.scandir(folder) as entries:
                found = [(e.name, e.stat(follow_symlinks=False).st_mode) for e in entries
                         if e.name.rpartition(".")[0] in wanted]
        except (OSError, ValueError):
            return
        for name, mode in sorted(found):
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                shot = wanted[name.rpartition(".")[0]]
                self.fail(f"{shown}/{name} is {_kind(mode)}: run copies the clip of "
                          f"shot '{shot.id}' there", shot.location,
                          f"remove {shown}/{name}")

    def check_crossfade(self, out: Output, sequence, durations) -> None:
        if out.crossfade_s and out.crossfade_s < MIN_CROSSFADE_S:
            # under a frame or two, ffmpeg's xfade starts past the first clip's end and drops
            # the next clip's video (the film's audio would outlast its picture)
            self.fail(f"a crossfade of {out.crossfade_s:g} s is shorter than a few frames",
                      out.crossfade_location or out.location,
                      f"use `transition: cut`, or a crossfade of {MIN_CROSSFADE_S:g} s or more")
            return
        known = [(durations[s], s) for s in sequence if durations.get(s)]
        if out.crossfade_s and known and out.crossfade_s >= min(known)[0]:
            shortest, shot = min(known)
            self.fail(f"crossfade of {out.crossfade_s:g} s is not shorter than the shortest clip "
                      f"in the sequence, '{shot}' ({shortest} s)",
                      out.crossfade_location or out.location, "use a shorter crossfade")


VARIANT_MARK = "@"  # a shot generated again for a deliverable: `tea@9x16` (no user id has @)


def regenerated(shots: tuple[ResolvedShot, ...], outputs: tuple[Output, ...]
                ) -> tuple[tuple[ResolvedShot, ...], tuple[Output, ...]]:
    """`reframe: generate`: each shot of such an output whose request the aspect changes gets
    a variant generated at the output's aspect, `SHOT@WxH`, whose chains lead to the variants
    of their sources; the output is cut from the variants. Variants are shots like the others
    (their own tasks, keys, costs and lock entries), after the storyboard's own.

    A shot the aspect would not change keeps its own clip in that output (cropped there like
    any other): one already at the aspect, and one that starts or ends on a frame no variant
    makes (an image, or a chain from a shot with no variant): every provider frames an
    image-to-video clip by its image, so its variant would be the very same request, paid
    twice in the plan's estimate."""
    by_id = {s.id: s for s in shots}
    made: dict[str, ResolvedShot] = {}
    result = []
    for out in outputs:
        if out.reframe != "generate" or out.aspect is None:
            result.append(out)
            continue
        tag = out.aspect.replace(":", "x")
        wanted: list[str] = []
        todo = list(dict.fromkeys(out.sequence))
        while todo:
            shot_id = todo.pop()
            if shot_id in wanted or shot_id not in by_id:
                continue
            wanted.append(shot_id)
            todo += [c.value for c in by_id[shot_id].chains]
        varied = _varied(by_id, wanted, out.aspect)
        variant = {shot_id: f"{shot_id}{VARIANT_MARK}{tag}" for shot_id in varied}
        for shot in shots:  # storyboard order: sources before what chains from them
            vid = variant.get(shot.id)
            if vid is None or vid in made:
                continue
            made[vid] = _variant(shot, vid, out.aspect, variant, len(shots) + len(made))
        pieces = tuple(replace(p, shot=variant.get(p.shot, p.shot)) if p.shot is not None
                       else p for p in out.pieces)
        result.append(replace(out, sequence=tuple(variant.get(s, s) for s in out.sequence),
                              pieces=pieces, aspect=out.aspect))
    return shots + tuple(made.values()), tuple(result)


def _varied(by_id: Mapping[str, ResolvedShot], wanted: list[str], aspect: str) -> set[str]:
    """The shots among `wanted` that a generation at `aspect` would change: not already at
    it, and framed by the aspect (text-to-video) or by a frame a variant makes."""
    aw, ah = (int(n) for n in aspect.split(":"))

    def at_aspect(shot: ResolvedShot) -> bool:
        if shot.size is not None:
            w, h = shot.size
        elif shot.aspect is not None:
            w, h = (int(n) for n in shot.aspect.split(":"))
        else:
            return False
        return w * ah == h * aw

    varied: set[str] = set()
    changed = True
    while changed:  # a chain may lead to a later shot: until nothing more is varied
        changed = False
        for shot_id in wanted:
            shot = by_id[shot_id]
            if shot_id in varied or at_aspect(shot):
                continue
            framing = [s for s in (shot.first_frame, shot.last_frame, shot.video,
                                   *shot.keyframes) if s is not None]
            if not framing or any(s.is_chain and s.value in varied for s in framing):
                varied.add(shot_id)
                changed = True
    return varied


def _variant(shot: ResolvedShot, vid: str, aspect: str, variant: Mapping[str, str],
             index: int) -> ResolvedShot:
    """`shot` generated at `aspect`, its chains led to the variants of their sources."""
    def moved(src: FrameSource | None) -> FrameSource | None:
        if src is None or not src.is_chain:
            return src
        return replace(src, value=variant.get(src.value, src.value))

    return replace(
        shot, id=vid, index=index, aspect=aspect, size=None,
        first_frame=moved(shot.first_frame), last_frame=moved(shot.last_frame),
        video=moved(shot.video),
        reference_images=tuple(moved(s) for s in shot.reference_images),  # type: ignore[misc]
        keyframes=tuple(moved(s) for s in shot.keyframes),  # type: ignore[misc]
        reference_videos=tuple(moved(s) for s in shot.reference_videos))  # type: ignore[misc]


def _line(location: Location | None) -> int | str | None:
    """The line a duplicate was first written on, for its message."""
    return "?" if location is None else location.line


def _near_file_hint(src: FrameSource, path: Path) -> str | None:
    """Files of the missing file's folder named like it (`path`, the source's file). Names
    are compared with names: the folder all of them share would make any two paths in it
    look alike."""
    name, folder = path.name, path.parent
    if not src.value.endswith(name) or not folder.is_dir():
        return None
    try:
        names = [p.name for p in folder.iterdir() if p.is_file()]
    except OSError:  # a folder we may not list: no hint, the message stands
        return None
    return did_you_mean(name, names, prefix=src.value[:len(src.value) - len(name)])


def _element_hint(name: str, elements: Mapping[str, Element], at: str = "") -> str:
    hint = did_you_mean(name, elements, prefix=at)
    return hint or (
        ("defined elements: " + ", ".join(elements)) if elements else
        "define it under `elements:`, or write @@ for a literal '@'")


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
MAX_IMAGE_SIDE = 16_384  # px; no provider takes more, and decoding more costs gigabytes
MAX_IMAGE_PIXELS = 80_000_000


# images decoded in this process: (path, inode, size, mtime, ctime) -> the problem found (None:
# none). `kling-compose lsp` checks the storyboard on every edit, and decoding each of a
# project's 4K stills again each time was most of the check (as store._VERIFIED for hashes)
_IMAGES_CHECKED: dict[tuple, str | None] = {}


def image_size_problem(path) -> str | None:
    """Why a local image cannot be used, or None: too large (from its header, before any
    pixel is decoded: a decompression bomb), or not a whole image (decoded: a truncated or
    damaged file would be uploaded and refused after earlier shots were paid). Decoded once
    per process while the file stays the same."""
    import os

    from PIL import Image  # lazy: validate must start fast

    try:
        info = os.stat(path)
        key: tuple | None = (str(path), info.st_ino, info.st_size, info.st_mtime_ns,
                             info.st_ctime_ns)
    except (OSError, ValueError):
        key = None
    if key is not None and key in _IMAGES_CHECKED:
        return _IMAGES_CHECKED[key]
    problem = _image_problem(lambda: Image.open(path), f"image '{path.name}'")
    if key is not None:
        _IMAGES_CHECKED[key] = problem
    return problem


def _image_problem(opener, what: str) -> str | None:
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        # Pillow warns (to stderr) of a damaged EXIF block or a truncated tag: the picture
        # itself is what is checked here, and what it cannot read is said below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with opener() as image:
                width, height = image.size
                if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
                    return (f"{what} is {width}x{height}: larger than {MAX_IMAGE_SIDE} px a "
                            f"side or {MAX_IMAGE_PIXELS // 1_000_000} megapixels")
                image.load()
    except Image.DecompressionBombError as exc:
        return f"{what} is too large to open safely ({exc})"
    except UnidentifiedImageError:
        return f"{what} is not a readable image"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{what} cannot be read: {exc}"
    return None


MAX_OPTION_VALUES = 10_000  # values in one level's provider_options, aliases expanded
MAX_OPTION_DEPTH = 32  # nesting of provider_options
MAX_NAME_BYTES = 200  # a file name made from the storyboard's name (255 with room to spare)


def _deep_merge(mappings: Iterable[Mapping | None]) -> dict:
    result: dict = {}
    for mapping in mappings:
        for key, value in (mapping or {}).items():
            if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
                value = _deep_merge([result[key], value])
            elif isinstance(value, Mapping):
                value = _deep_merge([value])
            result[key] = value
    return result


def _cycles(deps: Mapping[str, list[str]]) -> list[list[str]]:
    """Every cycle found by an iterative depth-first search, each once, as a list of ids."""
    color: dict[str, int] = {}
    found: list[list[str]] = []
    for start in deps:
        if color.get(start):
            continue
        stack = [(start, iter(deps[start]))]
        path = [start]
        color[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                color[node] = 2
                stack.pop()
                path.pop()
            elif color.get(child) == 1:
                found.append(path[path.index(child):])
            elif not color.get(child):
                color[child] = 1
                stack.append((child, iter(deps[child])))
                path.append(child)
    return found


def _slug(name: str) -> str:
    """The name as a file name: letters (any script) and digits, runs of others as '-'."""
    return re.sub(r"[\W_]+", "-", name.lower()).strip("-") or "film"


def _stat(path) -> tuple[int, str | None]:
    """The st_mode of `path` (0: nothing there), or why it cannot be looked at (a path too
    long for the file system, a loop of links, a part that is not a folder is just missing)."""
    import os

    from .files import os_problem

    try:
        return os.stat(path).st_mode, None
    except (FileNotFoundError, NotADirectoryError):
        return 0, None
    except OSError as exc:
        return 0, os_problem(exc)
    except ValueError:
        return 0, None


def _kind(mode: int) -> str:
    from .files import kind_of

    return kind_of(mode)


def _is_link(path) -> bool:
    try:
        return path.is_symlink()
    except (OSError, ValueError):
        return False
