"""Resolved shots -> Jobs: the exact provider request, its run-time inputs, cost and warnings.

Every shot is checked against its model's capability data (providers/rules.py) and its provider's own
rules before any request is built; all errors of all shots are raised together. This module
must stay light: `validate` runs it, so no httpx, networkx or rich here.
"""

from __future__ import annotations

import functools
import posixpath
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from .errors import Diagnostic, UserError, did_you_mean
from .model import Element, FrameSource, Resolved, ResolvedShot
from .providers import PROVIDERS, InputRef, Job, ModelSpec, Provider, rules
from .providers.base import PLACEHOLDER_PREFIX


def compile_shots(resolved: Resolved, provider_override: str | None = None) -> tuple[Job, ...]:
    """One Job per shot, in storyboard order; raises UserError with every error found."""
    if provider_override is not None and provider_override not in PROVIDERS:
        raise UserError(_unknown_provider(provider_override, None))
    root = resolved.storyboard.root
    jobs: list[Job] = []
    errors: list[Diagnostic] = []
    for shot in resolved.shots:
        if provider_override is not None:
            shot = replace(shot, provider=provider_override)
        job, diags = compile_shot(shot, root, resolved.storyboard.elements)
        errors += [d for d in diags if d.severity == "error"]
        if job is not None:
            jobs.append(job)
    if errors:  # a default's mistake is found once per shot; report it once
        raise UserError(*sorted(dict.fromkeys(errors), key=Diagnostic.sort_key))
    return tuple(jobs)


def compile_shot(shot: ResolvedShot, root: Path, elements: Mapping[str, Element] | None = None
                 ) -> tuple[Job | None, list[Diagnostic]]:
    """The Job of one shot and its diagnostics; no Job when any diagnostic is an error."""
    found = lookup(shot)
    if isinstance(found, Diagnostic):
        return None, [found]
    provider, spec = found
    diags = rules.check_shot(shot, spec, provider.name, lambda p: provider.prompt_text(shot, p))
    diags += provider.check(shot, spec)
    diags += rules.check_frame_aspect(shot)
    diags += speech_rate_warnings(shot)
    diags += unseen_speaker_warnings(shot, elements or {})
    if any(d.severity == "error" for d in diags):
        return None, diags
    refs = _InputRefs(root)
    request = deep_merge(provider.payload(shot, spec, refs.ref), shot.provider_options)
    cost = provider.cost(shot, spec, request)
    job = Job(
        shot=shot,
        provider=provider.name,
        model=spec,
        request=request,
        inputs=tuple(refs.inputs.values()),
        cost_usd=cost,
        cost_note=provider.cost_note(shot, spec, request),
        warnings=tuple(d for d in diags if d.severity == "warning"),
    )
    return job, diags


# Words a second that still sound natural: conversational English runs at about 2.5 (150 words
# a minute), brisk speech at 3; past that a model rushes the line or cuts it off.
NATURAL_WORDS_PER_S = 3.0


def unseen_speaker_warnings(shot: ResolvedShot, elements: Mapping[str, Element]
                            ) -> list[Diagnostic]:
    """A speaker with a voice who is not one of the shot's elements: the voice binds through
    the element (and lip sync needs the character in the picture), so it is not used here;
    the line is sent with the speaker's name. Elements are not added for the speakers: on fal
    and Kling 3.0 an element needs a first frame, and a text-to-video shot may speak."""
    lines = shot.lines
    if not lines:
        return []  # most shots: nobody speaks
    present = {e.name for e in shot.elements}
    found = []
    for line, _, _ in lines:
        element = None if line.speaker in present else elements.get(line.speaker)
        if element is not None and element.has_voice:
            present.add(line.speaker)  # once per speaker and shot
            found.append(Diagnostic(
                f"'{line.speaker}' speaks in shot '{shot.id}' but is not one of its elements, "
                "so the voice is not bound: the line is spoken in a voice the model picks",
                line.speaker_location or line.location,
                f"name @{line.speaker} in the prompt, or add it to the shot's `elements:`",
                severity="warning"))
    return found


def speech_rate_warnings(shot: ResolvedShot) -> list[Diagnostic]:
    """A warning for each shot (or segment) whose lines cannot be spoken in its seconds at a
    natural rate."""
    spans: dict[tuple[float, float], list] = {}
    for line, start, end in shot.lines:
        spans.setdefault((start, end), []).append(line)
    found = []
    for (start, end), lines in spans.items():
        words = sum(line.words for line in lines)
        seconds = end - start
        if words > NATURAL_WORDS_PER_S * seconds:
            where = "segment" if shot.multi_prompt else "shot"
            need = -(-words // int(NATURAL_WORDS_PER_S))
            found.append(Diagnostic(
                f"{words} words of dialogue in a {seconds:g} s {where} of '{shot.id}' is "
                f"faster than natural speech ({NATURAL_WORDS_PER_S:g} words a second)",
                lines[0].location, f"shorten the lines, or make the {where} about {need} s",
                severity="warning"))
    return found


def lookup(shot: ResolvedShot) -> tuple[Provider, ModelSpec] | Diagnostic:
    """The shot's provider and model spec, or a located error listing what exists."""
    provider = PROVIDERS.get(shot.provider)
    if provider is None:
        return _unknown_provider(shot.provider, shot)
    spec = provider.models.get(shot.model)
    if spec is None:
        return _missing_model(provider, shot)
    return provider, spec


def _missing_model(provider: Provider, shot: ResolvedShot) -> Diagnostic:
    """A model the provider lacks: a tier another provider has names those providers (the
    storyboard moves there with `--provider`), anything else gets a did-you-mean."""
    listing = f"{provider.name} models: {', '.join(provider.models)}"
    hosts = [p.name for p in PROVIDERS.values()
             if shot.model in p.models and not p.spec.capabilities.local]
    if hosts:
        return Diagnostic(
            f"{provider.name} has no {shot.model}: it is offered by {', '.join(hosts)}",
            shot.where("model"),
            f"run this shot on {_either(hosts)} (`provider: {hosts[0]}`, or `--provider "
            f"{hosts[0]}`), or choose a model {provider.name} has ({listing})")
    hint = did_you_mean(shot.model, provider.models)
    return Diagnostic(
        f"unknown model '{shot.model}' for provider {provider.name}",
        shot.where("model"),
        f"{hint} ({listing})" if hint else listing,
    )


def _either(names: list[str]) -> str:
    """`fal`, `fal or kie`, `runware, fal or kie`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _unknown_provider(name: str, shot: ResolvedShot | None) -> Diagnostic:
    hint = did_you_mean(name, PROVIDERS)
    listing = f"providers: {', '.join(sorted(PROVIDERS))}"
    return Diagnostic(
        f"unknown provider '{name}'",
        shot.where("provider") if shot is not None else None,
        f"{hint} ({listing})" if hint else listing,
    )


def deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in: nested mappings merge, other values replace."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def input_key(source: FrameSource, media: str, root: Path) -> str | None:
    """The InputRef key of a run-time input, or None for one sent as written."""
    if source.kind == "chain":
        if media == "video":
            return f"clip:{source.value}"
        return f"frame:{source.value}:{source.frame}"
    if source.kind == "path":
        return f"file:{_relative(source, root)}"
    return None


def _relative(source: FrameSource, root: Path) -> str:
    """The path as written, normalised (`./a/../assets/x.png` -> `assets/x.png`); paths are
    relative to the storyboard's folder, so this is the path inside the project."""
    return _normalised(source.value)


@functools.lru_cache(maxsize=4096)  # a few files, named by thousands of shots
def _normalised(value: str) -> str:
    return posixpath.normpath(value.replace("\\", "/"))


class _InputRefs:
    """The `ref` callback for Provider.payload; collects each run-time input once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inputs: dict[str, InputRef] = {}

    def ref(self, source: FrameSource, media: str) -> str:
        key = input_key(source, media, self.root)
        if key is None:
            return source.value
        if key not in self.inputs:  # the first source of a key is its input
            self.inputs[key] = InputRef(key, source, media)
        return PLACEHOLDER_PREFIX + key  # InputRef.placeholder
