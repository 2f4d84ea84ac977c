"""The local, free `preview` provider: compile-time spec of the animatic renderer.

It accepts every model alias of the other providers (so `--provider preview` rehearses any
storyboard) plus `preview`, has no size limits and costs nothing. Its payload is a plain dict
that `media/animatic.py` reads; local inputs stay placeholders the engine replaces with paths.
"""

from __future__ import annotations

import zlib
from decimal import Decimal
from fractions import Fraction
from typing import Any, Mapping

from . import rules
from ..errors import Diagnostic
from ..model import Prompt, ResolvedShot
from . import fal, kie, kling, kling_v3_task, runware
from .base import Capabilities, Declared, ModelSpec, ProviderSpec, Ref

DEFAULT_SIZE = (1920, 1080)
DEFAULT_DURATION_S = 5  # the Kling providers' default (seeds 000, 001, 003, 004)
SHORT_SIDE = 1080  # an aspect without a size renders with this short side

_ALIASES = sorted(
    {*runware.MODELS, *fal.MODELS, *kling_v3_task.MODELS, *kie.MODELS, *kling.MODELS,
     "preview"}
)


_HOSTED = (runware.MODELS, fal.MODELS, kling_v3_task.MODELS, kie.MODELS, kling.MODELS)

# the short side in pixels of each output resolution (a 4K rehearsal renders at 1080p: a 4K
# animatic would take minutes and show nothing more)
SHORT_SIDES: Mapping[str, int] = {"720p": 720, "1080p": 1080, "4k": 1080}


def _spec(alias: str) -> ModelSpec:
    """Every hosted provider's limits of the alias put together (the widest duration range,
    every resolution offered), so a rehearsal fails where any real run would and a draft tier
    rehearses at its own resolution; sizes, aspects and inputs are free."""
    hosted = [models[alias] for models in _HOSTED if alias in models]
    resolutions = tuple(dict.fromkeys(r for spec in hosted for r in rules.resolutions(spec)))
    durations = (min((s.durations_s[0] for s in hosted), default=3),
                 max((s.durations_s[1] for s in hosted), default=15))
    return ModelSpec(
        alias=alias,
        model_id="preview",
        source="kling-compose preview provider (local animatic)",
        durations_s=durations,
        sizes=None,
        aspects=None,
        resolutions=resolutions,
        max_keyframes=max((s.max_keyframes for s in hosted), default=0),
        supports=frozenset(rules.CHECKED_FIELDS),
        prices={"silent": Decimal(0), "audio": Decimal(0), "video_input": Decimal(0)},
    )


MODELS: Mapping[str, ModelSpec] = {alias: _spec(alias) for alias in _ALIASES}

SPEC = ProviderSpec(
    name="preview",
    capabilities=Capabilities(
        local=True,  # rendered in-process (media/animatic.py): no key, no host, no upload
        inline_media=frozenset({"image", "video", "audio"}),  # it reads local files directly
    ),
    models=MODELS,
)


class PreviewProvider(Declared):
    """Describes an animatic clip per shot; free, local, no key."""

    spec = SPEC

    def check(self, shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
        return []

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as shown on the card: element references as `@name`."""
        return prompt.render(lambda name: "@" + name)

    def payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        width, height = preview_size(shot, tier_short_side(shot, spec))
        return {
            "duration": rules.effective_duration(shot) or DEFAULT_DURATION_S,
            "width": width,
            "height": height,
            "first_image": ref(shot.first_frame, "image") if shot.first_frame else None,
            "last_image": ref(shot.last_frame, "image") if shot.last_frame else None,
            "title": shot.id,
            "prompt": self._caption(shot),
            "audio": shot.audio is True,
            # the source clip of an edit, so a rehearsal chains like a real run
            "video": ref(shot.video, "video") if shot.video else None,
            # more takes are another result (issue 21, item 15: a cached one-take clip was
            # reused for `takes: 2`, and `pick: 2` found no second take); one take leaves the
            # key of every existing single-take rehearsal as it was
            **({"takes": shot.takes} if shot.takes > 1 else {}),
            # dialogue: captions and a tone per speaker while each line is spoken; a shot
            # without lines keeps its key
            **({"lines": speaker_lines(shot)} if shot.lines else {}),
            # Kling 4.0's middle keyframes: inputs like any frame, so a chain through them
            # re-renders the rehearsal when its source changes (a shot without keeps its key)
            **({"keyframes": [ref(k, "image") for k in shot.keyframes]}
               if shot.keyframes else {}),
        }

    def route(self, spec: ModelSpec, request: Mapping[str, Any]) -> str:
        return "local animatic (free)"

    def cost(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> Decimal | None:
        return Decimal(0)

    def cost_note(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> str | None:
        return None

    def _caption(self, shot: ResolvedShot) -> str:
        if shot.prompt is not None:
            return self.prompt_text(shot, shot.prompt)
        return "\n".join(self.prompt_text(shot, seg.prompt) for seg in shot.multi_prompt or ())


SPEAKER_TONES = 8  # the animatic's speaker pitches (media/animatic.py)


def speaker_lines(shot: ResolvedShot) -> list[list[Any]]:
    """[speaker tone, words, start s, end s] per line: a speaker's tone follows from its name,
    so it sounds the same in every shot, and two speakers of one shot never share one."""
    tones: dict[str, int] = {}
    for speaker in shot.speakers:
        tone = zlib.crc32(speaker.encode()) % SPEAKER_TONES
        while tone in tones.values() and len(tones) < SPEAKER_TONES:
            tone = (tone + 1) % SPEAKER_TONES
        tones[speaker] = tone
    return [[tones[line.speaker], f"{line.speaker.upper()}: {line.text}", start, end]
            for line, start, end in shot.lines]


def tier_short_side(shot: ResolvedShot, spec: ModelSpec) -> int | None:
    """The short side of the resolution the shot's tier renders (its `resolution`, else the
    model's default), None when the alias names none."""
    resolution = shot.resolution or (spec.resolutions[0] if spec.resolutions else None)
    return SHORT_SIDES.get(resolution) if resolution else None


def preview_size(shot: ResolvedShot, short_side: int | None = None) -> tuple[int, int]:
    """The shot's size; else its aspect with a 1080 px short side; else 1920x1080; scaled
    down to `short_side` (the tier's resolution: a 720p draft is 1280x720)."""
    width, height = _nominal(shot)
    if short_side is None or min(width, height) <= short_side:
        return width, height
    scale = Fraction(short_side, min(width, height))
    return _even(width * scale), _even(height * scale)


def _nominal(shot: ResolvedShot) -> tuple[int, int]:
    if shot.size is not None:
        return shot.size
    if shot.aspect is None:
        return DEFAULT_SIZE
    w, _, h = shot.aspect.partition(":")
    ratio = Fraction(int(w), int(h))
    if ratio >= 1:
        return _even(SHORT_SIDE * ratio), SHORT_SIDE
    return SHORT_SIDE, _even(SHORT_SIDE / ratio)


def _even(value: Fraction) -> int:
    return 2 * round(value / 2)  # video encoders want even dimensions
