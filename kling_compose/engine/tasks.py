"""One handler per task kind; the life cycle every kind shares is in the base.

`TaskHandler.perform` records the start in the ledger, makes the result (`make`, the kind's
own work), records it finished (or failed: a budget reached, a provider's or ffmpeg's refusal,
a full disk, each for this task only), and hands it on (`finished`: a chained shot's continuity
score, a film's copy where the storyboard asked for it). dbt's runner map, with asyncio.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
import urllib.parse
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

from ..media.ffmpeg import MediaError
from ..plan import PREVIEW_SHORT_SIDE, Task, substitute
from ..project.reuse import input_digests
from ..project.state import Record
from ..providers import LOCAL_PROVIDERS
from .outcomes import Ending, Outcome
from .preflight import write_failure
from .remote import BudgetExceeded, RemoteError

if TYPE_CHECKING:
    from .run import Runner

CUES_SUFFIX = ".json"  # an edited film's artifact listing its dialogue cues in film time
Artifacts = Sequence[tuple[str, str]]  # (sha256, suffix) per take
# what a kind's work made: its artifacts, the reference it hands on (an upload's URL, an
# element's id), its result (URLs, seeds, extras) and what it cost
Made = tuple[Artifacts, "str | None", "dict | None", "Decimal | None"]


class TaskHandler:
    kind: ClassVar[str]

    def __init__(self, run: Runner) -> None:
        self.run = run

    async def make(self, task: Task) -> Made:
        raise NotImplementedError

    async def finished(self, task: Task, made: Made) -> Record:
        """The recorded result once it is safe in the ledger, as handed on."""
        return self.run.state.get(task.cache_key)  # type: ignore[return-value]

    async def perform(self, task: Task, record: Record | None, report: bool = True) -> Outcome:
        """Make the task's result now, record it, and say how it went. report=False: the
        progress display already counted the task (as unneeded), and its outcome shows in
        the summary only."""
        run = self.run
        run.previous[task.id] = record
        if report:
            run.reporter.started(task)
        started = time.monotonic()
        run.state.start(task.cache_key, task.id, task.kind, shot=task.shot,
                        provider=task.provider, model=task.model, made_from=task.made_from)
        try:
            made = await self.make(task)
        except BudgetExceeded as exc:
            return await self._failed(task, Ending.SKIPPED, str(exc), started)
        except (MediaError, RemoteError) as exc:
            return await self._failed(task, Ending.FAILED, str(exc), started)
        except OSError as exc:  # a full disk, a read-only folder: this task, not the whole run
            message = write_failure(exc, run.plan.resolved.storyboard.root) + \
                "; fix it and run again (the run resumes)"
            return await self._failed(task, Ending.FAILED, message, started)
        artifacts, reference, result, cost = made
        run.state.finish(task.cache_key, artifacts=artifacts, reference=reference,
                         inputs=input_digests(task, run.records), result=result, cost_usd=cost)
        done = run.records[task.id] = await self.finished(task, made)
        if run.team is not None and task.id in run.team.held:
            await run.team.publish(task, done)
        return Outcome(task, Ending.DONE, done, cost or Decimal(0),
                       elapsed_s=time.monotonic() - started)

    async def _failed(self, task: Task, status: Ending, message: str, started: float) -> Outcome:
        self.run.state.fail(task.cache_key, message)
        if self.run.team is not None:
            await self.run.team.release(task)
        return Outcome(task, status, error=message, elapsed_s=time.monotonic() - started)

    def earlier(self, task: Task) -> Record | None:
        """What an earlier run left of this task (a submission to resume), unless `run
        --force` names it: then it is made anew."""
        return None if task.id in self.run.options.force else self.run.previous.get(task.id)

    def references(self, task: Task) -> dict[str, str]:
        """Each run-time input's provider reference (URL, UUID, element id)."""
        refs = {}
        for placeholder, dep in task.inputs.items():
            handed_on = self.run.records[dep].reference
            if handed_on is None:  # a bug: an upload or element recorded without its result
                raise RemoteError(f"{dep} recorded no reference for {task.id} to send")
            refs[placeholder] = self.run.remote.reference(task, handed_on)
        return refs


class Generate(TaskHandler):
    kind = "generate"

    async def make(self, task: Task) -> Made:
        if task.provider in LOCAL_PROVIDERS:
            return await self.preview(task)
        run = self.run
        await run.inputs_made(task)
        request = substitute(task.generation.request, self.references(task))
        forced = task.shot in run.options.force  # a new generation, whatever came before
        previous = None if forced else run.previous.get(task.id)
        try:
            return await run.remote.generate(task, request, previous)
        except BudgetExceeded:
            raise
        except RemoteError as exc:
            hinted = _with_voice_hint(task, str(exc))
            if hinted == str(exc):
                raise
            raise RemoteError(hinted) from None

    async def finished(self, task: Task, made: Made) -> Record:
        artifacts, _, result, _ = made
        scored = await self.with_continuity(task, artifacts, result)  # after the result is
        if scored is not result:  # safe: scoring takes a while
            self.run.state.set_result(task.cache_key, scored)
        return await super().finished(task, made)

    async def preview(self, task: Task) -> Made:
        """The free local provider: an animatic of the shot, rendered here."""
        from ..media.animatic import AnimaticSpec, preview_size, render_animatic

        run = self.run
        params = task.generate_params
        refs = dict(params.files)
        refs.update({p: str(run.artifact(dep, task.pick(dep))) for p, dep in params.inputs.items()})
        request = substitute(task.generation.request, refs)
        notes = []
        for key in ("first_image", "last_image"):
            value = request.get(key)
            if value and value not in refs.values():
                # a URL or asset UUID: the preview renders offline and cannot fetch it
                local = run.store.temp_path(".img") if value[:5].lower() == "data:" else None
                if local is not None:
                    local.write_bytes(_data_uri_bytes(value))
                else:
                    notes.append(f"{key} {value[:60]} not fetched (offline preview)")
                request[key] = str(local) if local else None
            if request.get(key):
                await asyncio.to_thread(_check_image, Path(request[key]))
        width, height = preview_size(request["width"], request["height"],
                                     params.short_side or PREVIEW_SHORT_SIDE)
        artifacts = []
        takes = request.get("takes", 1)
        for take in range(takes):
            spec = AnimaticSpec(
                duration_s=request["duration"], width=width, height=height,
                first_image=_path(request.get("first_image")),
                last_image=_path(request.get("last_image")), title=request["title"],
                caption=request["prompt"], audio=request["audio"], tone_hz=_tone(task, take),
                band=True, take=take + 1, takes=takes,
                lines=tuple((int(tone), str(words), float(start), float(end))
                            for tone, words, start, end in request.get("lines") or ()))
            out = run.store.temp_path(".mp4")
            await asyncio.to_thread(render_animatic, spec, out)
            artifacts.append((run.store.adopt(out), ".mp4"))
        result = {"preview": {"width": width, "height": height},
                  **({"notes": notes} if notes else {})}
        return artifacts, None, result, Decimal(0)

    async def rescored(self, task: Task, record: Record) -> Record:
        """A finished shot whose continuity was never scored (a run stopped between its finish
        and its score, or a lock written before scores existed) is scored now, once."""
        if "continuity" in (record.result or {}):
            return record
        scored = await self.with_continuity(task, record.artifacts, record.result)
        if scored is record.result:
            return record  # not chained, or nothing to score against
        self.run.state.set_result(task.cache_key, scored)
        return self.run.state.get(task.cache_key) or record

    async def with_continuity(self, task: Task, artifacts: Artifacts,
                              result: dict | None) -> dict | None:
        """A chained shot's result with its continuity: how closely each take's first frame
        (last, for a `last_frame` chain) matches the frame it was seeded from
        (media/continuity.py). A frame that cannot be scored leaves the result as it is."""
        from ..media.continuity import THRESHOLD, score_takes

        run = self.run
        shot = task.generation.shot
        end, source = next(((e, s) for e, s in (("first", shot.first_frame),
                                                 ("last", shot.last_frame))
                            if s is not None and s.is_chain), (None, None))
        seed = run.records.get(f"frame:{source.value}:{source.frame}") if source else None
        if source is None or end is None or seed is None or not seed.artifacts or not artifacts:
            return result
        clips = [run.store.path(d, s) for d, s in artifacts]
        try:
            scores = await asyncio.to_thread(score_takes, run.store.path(*seed.artifacts[0]),
                                             clips, end)
        except (MediaError, OSError, ValueError):
            return result
        return {**(result or {}), "continuity": {
            "from": source.value, "seed": source.frame, "frame": end, "scores": scores,
            "threshold": THRESHOLD}}


class ExtractFrame(TaskHandler):
    kind = "extract_frame"

    async def make(self, task: Task) -> Made:
        from ..media.frames import extract_frame

        run = self.run
        (dep,) = task.depends_on
        out = run.store.temp_path(".png")
        clip = run.artifact(dep, task.pick(dep))
        await asyncio.to_thread(extract_frame, clip, task.frame_params.frame, out)
        return [(run.store.adopt(out), ".png")], None, None, Decimal(0)


class Assemble(TaskHandler):
    kind = "assemble"

    async def make(self, task: Task) -> Made:
        run = self.run
        params = task.assemble_params
        clips = [run.artifact(f"generate:{s}", task.pick(f"generate:{s}"))
                 for s in params.sequence]
        out = run.store.temp_path(Path(params.path).suffix or ".mp4")
        if params.edited:
            return await self.cut(task, clips, out)
        from ..media.assemble import assemble
        from ..media.cut import DECLICK_S

        # a short fade at each cut, so no join clicks (a crossfade needs none)
        declick = 0.0 if params.crossfade_s else DECLICK_S
        info = await asyncio.to_thread(assemble, clips, out, crossfade_s=params.crossfade_s,
                                       workdir=run.store.tmp, declick_s=declick)
        result = {"duration_s": round(info.video_duration_s, 3)}
        return [(run.store.adopt(out), out.suffix)], None, result, Decimal(0)

    async def cut(self, task: Task, clips: list[Path], out: Path) -> Made:
        """An edited, mixed or reframed film (media/cut.py), with its subtitle files."""
        from dataclasses import asdict

        from ..media.cut import Delivery, Part, Said, Watermark, render

        run = self.run
        params = task.assemble_params
        clip_of = dict(zip(params.sequence, clips))
        parts = [Part(
            clip=clip_of[p.shot] if p.shot is not None else None,
            start_s=p.start_s, end_s=p.end_s, transition=p.transition,
            transition_s=p.transition_s, title=p.title, subtitle=p.subtitle,
            duration_s=p.duration_s,
            background=Path(p.background) if "/" in p.background else p.background,
            focus=p.focus, lines=tuple(Said(*line) for line in p.lines))
            for p in params.pieces]
        fields = asdict(params.delivery)
        fields["music"] = Path(fields["music"]) if fields["music"] else None
        mark = fields.pop("watermark")
        delivery = Delivery(**fields, watermark=Watermark(Path(mark[0]), *mark[1:])
                            if mark else None)
        made = await asyncio.to_thread(render, parts, delivery, out, workdir=run.store.tmp)
        artifacts = [(run.store.adopt(out), out.suffix)]
        for form, text in made.subtitles.items():
            sidecar = run.store.temp_path("." + form)
            sidecar.write_text(text, encoding="utf-8")
            artifacts.append((run.store.adopt(sidecar), sidecar.suffix))
        if made.cues:  # the dialogue in film time, for `export` and the report (not exported)
            cues = run.store.temp_path(CUES_SUFFIX)
            cues.write_text(json.dumps([asdict(c) for c in made.cues], indent=1) + "\n",
                            encoding="utf-8")
            artifacts.append((run.store.adopt(cues), CUES_SUFFIX))
        result: dict = {"duration_s": round(made.duration_s, 3),
                        "size": [made.width, made.height], "cues": len(made.cues)}
        peak = made.true_peak_db
        if peak is not None and not math.isfinite(peak):  # digital silence: no peak at all
            result["silent"] = True  # (ebur128 says -70 LUFS, -inf dBTP; JSON has no -inf)
        else:
            if made.loudness_lufs is not None:
                result["loudness_lufs"] = round(made.loudness_lufs, 1)
            if peak is not None:
                result["true_peak_db"] = round(peak, 1)
        if made.normalised:
            result["normalised"] = made.normalised
        return artifacts, None, result, Decimal(0)

    async def finished(self, task: Task, made: Made) -> Record:
        record = await super().finished(task, made)
        self.run.export(task, record)  # where the storyboard asked for the film
        return record


class Upload(TaskHandler):
    kind = "upload"

    async def make(self, task: Task) -> Made:
        run = self.run
        file = task.upload_params.file
        if file is not None:
            source = Path(file)
        else:
            (dep,) = task.depends_on
            source = run.artifact(dep, task.pick(dep))
        artifacts, reference = await run.remote.upload(task, source)
        return artifacts, reference, None, Decimal(0)


class Element(TaskHandler):
    kind = "element"

    async def make(self, task: Task) -> Made:
        """Create an element at its provider; its id is handed on to the generations."""
        run = self.run
        await run.inputs_made(task)
        request = substitute(task.element_params.request, self.references(task))
        element_id, cost = await run.remote.create_element(task, request, self.earlier(task))
        return [], element_id, {"element_id": element_id}, cost


class Voice(TaskHandler):
    kind = "voice"

    async def make(self, task: Task) -> Made:
        """Make a voice of a sample at its provider; its id is handed on to what names it."""
        run = self.run
        await run.inputs_made(task)
        request = substitute(task.element_params.request, self.references(task))
        voice_id, cost = await run.remote.create_voice(task, request, self.earlier(task))
        return [], voice_id, {"voice_id": voice_id}, cost


HANDLERS: Mapping[str, type[TaskHandler]] = {
    handler.kind: handler
    for handler in (Generate, ExtractFrame, Assemble, Upload, Element, Voice)}


def missing_pick(task: Task, record: Record | None) -> str | None:
    """A shot whose result has fewer takes than its `pick` (a provider that returned fewer
    clips than asked, a result recorded before its `takes` counted): the located error, with
    the way on; None when the picked take exists."""
    shot = task.generation.shot
    have = len(record.artifacts) if record is not None else 0
    if 1 <= shot.pick <= have:
        return None
    where = shot.where("pick")
    last = max(have, 1)
    choose = "use take 1" if last == 1 else f"pick a take between 1 and {last}"
    return (f"{str(where) + ': error: ' if where else ''}pick is {shot.pick} but the result of "
            f"shot '{shot.id}' has {have} take(s)\n  hint: {choose} (`kling-compose pick "
            f"{shot.id} {last}`), or make its {shot.takes} takes again with `kling-compose run "
            f"--force {shot.id}`")


def _with_voice_hint(task: Task, message: str) -> str:
    """A refusal that speaks of a voice, for a shot that binds one the run made: the account
    may not know that voice (another account's key, a deleted or expired voice), and the
    cached voice would be sent again on every run."""
    voices = [dep for dep in task.depends_on if dep.startswith("voice:")]
    if not voices or "voice" not in message.lower():
        return message
    return (f"{message}\n  hint: if {task.provider} no longer knows the voice (a key of "
            f"another account, a deleted voice), `kling-compose run --force {voices[0]}` "
            "makes it again (that pays for the voice again)")


def _check_image(path: Path) -> None:
    """A clear error for an image ffmpeg would fail on with an obscure one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise MediaError(f"cannot read image '{path}': {exc}") from None


def _data_uri_bytes(value: str) -> bytes:
    head, _, payload = value.partition(",")
    if head.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _tone(task: Task, take: int) -> float:
    """A distinct soft tone per shot (and take), so cuts are audible in the animatic."""
    notes = (220.0, 246.94, 277.18, 293.66, 329.63, 369.99, 415.30)
    return notes[(task.generation.shot.index + take) % len(notes)]
