"""Stage 6, plan: Jobs -> Plan, a networkx DAG of tasks with cache keys and costs.

Task kinds: `upload` (a local file or a chained frame sent to a remote provider, or inlined as
a data URI where the provider accepts one), `generate` (one clip), `extract_frame` (the first or
last frame of a clip), `assemble` (one output film), `element` (an element created at a provider
that keeps them, Kling's element library, before the generations that name it by id), `voice`
(a voice made of an element's sample by a provider's create-voice API, once per sample content,
before what names it by id). An edge u -> v means "v needs the artifact of u".

Cache keys are Merkle hashes: a task's key hashes its canonical request (no taskUUID) with the
content hash of each local file it reads and the key of each task it needs. So an unchanged
task keeps its key across runs and machines, and editing shot k changes the keys of exactly
shot k and of what chains from it. (Generation is not deterministic, so at run time the engine
also checks that a cached result was made from the same input *contents*: see engine/run.py.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Mapping, TypeVar, Union

import networkx as nx

from .model import EMPTY, Output, Resolved
from .providers import LOCAL_PROVIDERS
from .providers.base import PLACEHOLDER_PREFIX, InputRef, Job

KEY_SALT = "kling-compose/1"


# Each task kind's parameters: what its handler needs to make the result. None of them enters
# a cache key or `made_from` (those hash the request and the inputs' identities), so their
# shape may change without changing a key.
@dataclass(frozen=True, slots=True)
class GenerateParams:
    """A generation's run-time inputs."""

    inputs: Mapping[str, str]  # placeholder -> the task whose artifact fills it
    files: Mapping[str, str]  # placeholder -> a local file the request names
    short_side: int | None = None  # px, the preview's clip size (local providers only)


@dataclass(frozen=True, slots=True)
class FrameParams:
    """Which frame of its clip an extract_frame task takes (the take: Task.picks)."""

    frame: Literal["first", "last"]


@dataclass(frozen=True, slots=True)
class UploadParams:
    """What an upload sends: a local file, or (file None) the artifact of its one dependency."""

    media: str  # image | video | audio
    file: str | None = None


@dataclass(frozen=True, slots=True)
class ElementParams:
    """An element (or a voice: the `voice` kind) created at its provider before the
    generations that name it."""

    name: str  # the element's name; a voice's: its sample as written
    request: Mapping[str, Any]  # with input placeholders, substituted at run time
    inputs: Mapping[str, str]  # placeholder -> the task whose artifact fills it


Said = tuple[str, str, float, float]  # speaker, words, start and end of its span in the clip


@dataclass(frozen=True, slots=True)
class CutPiece:
    """One piece of an edited film (media/cut.py's Part, files as absolute paths)."""

    shot: str | None = None  # None: a title card
    start_s: float = 0.0
    end_s: float | None = None
    transition: str = "cut"
    transition_s: float = 0.0
    title: str = ""
    subtitle: str = ""
    duration_s: float = 0.0
    background: str = "black"  # a colour, or an image's absolute path
    focus: tuple[float, float] = (0.5, 0.5)
    lines: tuple[Said, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryParams:
    """How an edited film is finished (media/cut.py's Delivery, files as absolute paths)."""

    aspect: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    reframe: str = "crop"
    preset: str = "web"
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    music: str | None = None
    music_gain_db: float = -18.0
    duck_db: float = 10.0
    loudness_lufs: float | None = None
    true_peak_db: float = -1.0
    subtitles: tuple[str, ...] = ()
    burn_in: bool = False
    watermark: tuple[str, str, float, float] | None = None  # image, corner, opacity, scale


PLAIN = DeliveryParams()


@dataclass(frozen=True, slots=True)
class AssembleParams:
    """One output film."""

    path: str  # relative to the storyboard's folder
    sequence: tuple[str, ...]  # shot ids, in order
    crossfade_s: float
    # () and PLAIN: the shots joined as they are (the fast stream-copy join, issue 7)
    pieces: tuple[CutPiece, ...] = ()
    delivery: DeliveryParams = PLAIN

    @property
    def edited(self) -> bool:
        return bool(self.pieces) or self.delivery != PLAIN


TaskParams = Union[GenerateParams, FrameParams, UploadParams, ElementParams, AssembleParams]
_P = TypeVar("_P", GenerateParams, FrameParams, UploadParams, ElementParams, AssembleParams)
NO_PICKS: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Task:
    """One node of the plan."""

    id: str
    kind: str  # upload | generate | extract_frame | assemble | element | voice
    cache_key: str
    depends_on: tuple[str, ...] = ()
    shot: str | None = None
    provider: str | None = None
    model: str | None = None
    job: Job | None = None  # for generate
    cost_usd: Decimal | None = Decimal(0)
    weight_s: float = 1.0  # rough wall-clock estimate, for the critical path
    # the kind's parameters (one of the *Params above; None only in tests' hand-made tasks)
    params: TaskParams | None = None
    # the take of each generation this task reads: dependency task id -> take (the shot's pick)
    picks: Mapping[str, int] = field(default_factory=lambda: NO_PICKS)
    # what the result is made from, in words a plan can compare with the last run's: the
    # request, the provider and model, each input's identity (commands/why.py)
    made_from: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    @property
    def duration_s(self) -> int | None:
        return self.job.shot.duration if self.job is not None else None

    @property
    def generation(self) -> Job:
        """The compiled shot of a generate task (a TypeError for another kind: a bug)."""
        if self.job is None:
            raise TypeError(f"{self.id} is not a generation")
        return self.job

    def _params(self, kind: type[_P]) -> _P:
        if not isinstance(self.params, kind):  # a bug: a handler was given another kind
            raise TypeError(f"{self.id} is a {self.kind} task, without {kind.__name__}")
        return self.params

    @property
    def generate_params(self) -> GenerateParams:
        return self._params(GenerateParams)

    @property
    def frame_params(self) -> FrameParams:
        return self._params(FrameParams)

    @property
    def upload_params(self) -> UploadParams:
        return self._params(UploadParams)

    @property
    def element_params(self) -> ElementParams:
        return self._params(ElementParams)

    @property
    def assemble_params(self) -> AssembleParams:
        return self._params(AssembleParams)

    @property
    def inputs(self) -> Mapping[str, str]:
        """A generation's or an element's run-time inputs (placeholder -> task id), else none."""
        if isinstance(self.params, (GenerateParams, ElementParams)):
            return self.params.inputs
        return EMPTY

    def pick(self, dep: str) -> int:
        """The take of dependency `dep` this task reads (1 for anything but a generation)."""
        return self.picks.get(dep, 1)


@dataclass(frozen=True, slots=True)
class Plan:
    """Tasks in topological order and the graph they form."""

    resolved: Resolved
    tasks: Mapping[str, Task]
    graph: nx.DiGraph
    order: tuple[str, ...]
    provider: str | None = None  # --provider: every shot's provider, if one was given
    preview_short_side: int = 360  # px, the preview's clip size (in its tasks' keys)

    @property
    def total_cost_usd(self) -> Decimal:
        return sum((t.cost_usd for t in self.tasks.values() if t.cost_usd is not None), Decimal(0))

    @property
    def unknown_costs(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.tasks.values() if t.cost_usd is None)

    def critical_path(self) -> list[str]:
        """The longest chain of dependent tasks by estimated wall-clock time."""
        return nx.dag_longest_path(self.graph, weight="weight", default_weight=0)

    def generations(self) -> list[list[str]]:
        """Groups of tasks that can run in parallel, in order."""
        return [sorted(g) for g in nx.topological_generations(self.graph)]


PREVIEW_SHORT_SIDE = 360  # px: the preview provider's default clip size (short side)


def build_plan(resolved: Resolved, jobs: Iterable[Job],
               preview_short_side: int = PREVIEW_SHORT_SIDE, provider: str | None = None) -> Plan:
    """The task DAG of a compiled storyboard, with cache keys, in topological order."""
    builder = _Builder(resolved)
    builder.preview_short_side = preview_short_side
    builder.jobs = {job.shot.id: job for job in jobs}
    for job in builder.jobs.values():
        builder.add_job(job)
    for output in resolved.outputs:
        builder.add_output(output)
    graph = builder.graph
    for u, v in graph.edges:
        graph.edges[u, v]["weight"] = builder.tasks[v].weight_s
    order = tuple(nx.lexicographical_topological_sort(graph, key=builder.position.__getitem__))
    return Plan(resolved, dict((i, builder.tasks[i]) for i in order), graph, order, provider,
                preview_short_side)


def canonical_json(value: Any) -> str:
    """The one serialisation that keys are computed from."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def hash_key(*parts: Any) -> str:
    return hashlib.sha256(canonical_json([KEY_SALT, *parts]).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Builder:
    def __init__(self, resolved: Resolved) -> None:
        self.resolved = resolved
        self.root = resolved.storyboard.root
        self.graph = nx.DiGraph()
        self.tasks: dict[str, Task] = {}
        self.position: dict[str, int] = {}
        self.jobs: dict[str, Job] = {}
        self.digests: dict[Path, str] = {}
        self.preview_short_side = PREVIEW_SHORT_SIDE

    def add(self, task: Task) -> Task:
        if task.id not in self.tasks:
            self.tasks[task.id] = task
            self.position[task.id] = len(self.position)
            self.graph.add_node(task.id)
            for dep in task.depends_on:
                self.graph.add_edge(dep, task.id)
        return self.tasks[task.id]

    def picks(self, depends_on: Iterable[str]) -> Mapping[str, int]:
        """The take each generation among `depends_on` hands on: its shot's pick."""
        picks = {d: self.jobs[d.partition(":")[2]].shot.pick for d in depends_on
                 if d.startswith("generate:")}
        return picks or NO_PICKS

    def add_job(self, job: Job) -> Task:
        """The generate task of a job, adding the shots it chains from first (a shot may
        chain from a later one; resolve refused cycles)."""
        shot = job.shot
        if f"generate:{shot.id}" in self.tasks:
            return self.tasks[f"generate:{shot.id}"]
        inputs = {ref.placeholder: self.input_task(job, ref) for ref in job.inputs}
        elements = self.elements(job)
        inputs.update(elements)
        voices = self.voices(job, job.request)
        inputs.update(voices)
        files = {ref.placeholder: self.digest(ref.file) for ref in job.inputs
                 if ref.key.startswith("file:") and job.provider in LOCAL_PROVIDERS}
        deps = tuple(dict.fromkeys(t.id for t in inputs.values() if t is not None))
        # the preview's clip size changes its output: it is part of the key (a film never mixes
        # 360p and 1080p rehearsal clips)
        size = {"short_side": self._short_side(job)} if job.provider in LOCAL_PROVIDERS else {}
        key = hash_key("generate", job.provider, job.model.model_id, job.request,
                       {p: t.cache_key for p, t in inputs.items() if t is not None}, files,
                       *([size] if size else []))
        made_from: dict[str, Any] = {"provider": job.provider, "model": job.model.model_id,
                     "request": job.request, **size,
                     "inputs": {ref.key: self.identity(ref) for ref in job.inputs}}
        for made in (*elements.values(), *voices.values()):  # an element's images and a
            made_from["inputs"].update(made.made_from["inputs"])  # voice's sample too
        return self.add(Task(
            id=f"generate:{shot.id}", kind="generate", cache_key=key, depends_on=deps,
            shot=shot.id, provider=job.provider, model=job.model.alias, job=job,
            cost_usd=job.cost_usd, weight_s=_generate_weight(job),
            params=GenerateParams(
                inputs={p: t.id for p, t in inputs.items() if t is not None},
                files={ref.placeholder: str(ref.file) for ref in job.inputs
                       if ref.key.startswith("file:")},
                short_side=size.get("short_side")),
            picks=self.picks(deps), made_from=made_from,
        ))

    def _short_side(self, job: Job) -> int:
        """The preview's clip size: --preview-resolution, never above the tier's own (a
        720p draft rehearses at 720p at most; the request's size is the tier's)."""
        width, height = job.request.get("width"), job.request.get("height")
        if isinstance(width, int) and isinstance(height, int):
            return min(self.preview_short_side, width, height)
        return self.preview_short_side

    def input_task(self, job: Job, ref: InputRef) -> Task | None:
        """The task whose artifact fills `ref` (None: the preview provider reads the file)."""
        local = job.provider in LOCAL_PROVIDERS
        kind, _, rest = ref.key.partition(":")
        if kind == "file":
            return None if local else self.upload(job, ref, None)
        shot_id, _, which = rest.partition(":")
        source = self.generate_of(shot_id)
        if kind == "frame":
            source = self.extract(shot_id, "first" if which == "first" else "last")
        return source if local else self.upload(job, ref, source)

    def generate_of(self, shot_id: str) -> Task:
        return self.add_job(self.jobs[shot_id])

    def extract(self, shot_id: str, which: Literal["first", "last"]) -> Task:
        source = self.generate_of(shot_id)
        pick = self.jobs[shot_id].shot.pick
        key = hash_key("extract_frame", which, pick, source.cache_key)
        return self.add(Task(id=f"frame:{shot_id}:{which}", kind="extract_frame", cache_key=key,
                             depends_on=(source.id,), shot=shot_id, weight_s=0.5,
                             params=FrameParams(which), picks=self.picks((source.id,)),
                             made_from={"pick": pick, "inputs": {f"clip:{shot_id}":
                                                                 source.cache_key}}))

    def upload(self, job: Job, ref: InputRef, source: Task | None) -> Task:
        if source is None:
            rel = ref.key.partition(":")[2]
            content = self.digest(ref.file)
            task_id = f"upload:{job.provider}:{rel}"
            params = UploadParams(ref.media, str(ref.file))
        else:
            content = source.cache_key
            task_id = f"upload:{job.provider}:{source.id}"
            params = UploadParams(ref.media)
        key = hash_key("upload", job.provider, ref.media, content)
        return self.add(Task(id=task_id, kind="upload", cache_key=key, provider=job.provider,
                             depends_on=(source.id,) if source else (), weight_s=2.0,
                             params=params, picks=self.picks((source.id,) if source else ()),
                             made_from={"inputs": {ref.key: content}}))

    def elements(self, job: Job) -> dict[str, Task]:
        """The element tasks of a job whose provider creates elements before generating
        (`element_request`: Kling's element library), for each element the request names by
        its placeholder (an element with a provider `id:` is sent as it is): placeholder ->
        task."""
        from .providers import PROVIDERS

        provider = PROVIDERS.get(job.provider)
        if provider is None or not provider.creates_elements:
            return {}
        build = provider.element_request
        sent = canonical_json(job.request)
        found = {}
        for element in job.shot.elements:
            placeholder = f"{PLACEHOLDER_PREFIX}element:{element.name}"
            if json.dumps(placeholder) in sent:
                found[placeholder] = self.element(job, element, build)
        return found

    def element(self, job: Job, element, build) -> Task:
        """One element, created once whatever the number of shots that use it; its key hashes
        its request and its images' contents, so a changed image makes a new element."""
        refs, ref = self.referencer()
        request = build(element, ref)
        needed = {r.placeholder: self.input_task(job, r) for r in refs.values()}
        inputs = {p: t for p, t in needed.items() if t is not None}
        voices = self.voices(job, request)  # Kling: the voice bound to the element
        inputs.update(voices)
        key = hash_key("element", job.provider, request,
                       {p: t.cache_key for p, t in inputs.items()})
        sources = {r.key: self.identity(r) for r in refs.values()}
        for voice in voices.values():
            sources.update(voice.made_from["inputs"])
        return self.add(Task(
            id=f"element:{job.provider}:{element.name}", kind="element", cache_key=key,
            depends_on=tuple(dict.fromkeys(t.id for t in inputs.values())),
            provider=job.provider, cost_usd=None, weight_s=30.0,  # no price is published
            params=ElementParams(element.name, request, {p: t.id for p, t in inputs.items()}),
            picks=self.picks(t.id for t in inputs.values()),
            made_from={"request": request, "inputs": sources}))

    def referencer(self) -> tuple[dict[str, InputRef], Callable[[Any, str], str]]:
        """The inputs a request built by a provider names (an element's, a voice's), and the
        `ref` it builds with: a local file or chain becomes a placeholder, anything else is
        sent as written."""
        from .compiler import input_key

        refs: dict[str, InputRef] = {}

        def ref(source, media: str) -> str:
            key = input_key(source, media, self.root)
            if key is None:
                return source.value
            return refs.setdefault(key, InputRef(key, source, media)).placeholder

        return refs, ref

    def voices(self, job: Job, request: Mapping[str, Any]) -> dict[str, Task]:
        """The voice tasks a request names (a generation's on fal, an element's on Kling) by
        their placeholders, for a provider that `creates_voices`: placeholder -> task. An
        element's `voice_id:` is sent as it is and nothing is made."""
        from .providers import PROVIDERS

        provider = PROVIDERS.get(job.provider)
        if provider is None or not provider.creates_voices:
            return {}
        sent = canonical_json(request)
        found = {}
        for element in job.shot.elements:
            placeholder = f"{PLACEHOLDER_PREFIX}voice:{element.name}"
            if element.voice is not None and json.dumps(placeholder) in sent:
                found[placeholder] = self.voice(job, element)
        return found

    def voice(self, job: Job, element) -> Task:
        """One voice per sample content, whichever elements and shots speak in it: its key
        hashes the provider, the create-voice request and the sample's content (through its
        upload's key), so an edited sample is a new voice and a renamed one is not."""
        from .providers import PROVIDERS

        provider = PROVIDERS[job.provider]
        refs, ref = self.referencer()
        request = provider.voice_request(element, ref)
        needed = {r.placeholder: self.input_task(job, r) for r in refs.values()}
        inputs = {p: t for p, t in needed.items() if t is not None}
        content = substitute(request, {p: t.cache_key for p, t in inputs.items()})
        key = hash_key("voice", job.provider, content)
        sample = next(iter(refs)).partition(":")[2] if refs else element.voice.value
        return self.add(Task(
            id=f"voice:{job.provider}:{sample}", kind="voice", cache_key=key,
            depends_on=tuple(dict.fromkeys(t.id for t in inputs.values())),
            provider=job.provider, cost_usd=provider.voice_cost(request), weight_s=10.0,
            params=ElementParams(sample, request, {p: t.id for p, t in inputs.items()}),
            made_from={"request": request,
                       "inputs": {r.key: self.identity(r) for r in refs.values()}}))

    def add_output(self, output: Output) -> None:
        gens = [self.generate_of(s) for s in output.sequence]
        picks = [self.jobs[s].shot.pick for s in output.sequence]
        pieces, delivery, files = self.cut(output)
        params = AssembleParams(output.path, tuple(output.sequence), output.crossfade_s,
                                pieces, delivery)
        clips = [(g.cache_key, p) for g, p in zip(gens, picks)]
        made_from: dict[str, Any] = {
            "crossfade_s": output.crossfade_s,
            "sequence": [[s, p] for s, p in zip(output.sequence, picks)],
            "inputs": {f"clip:{g.shot}": g.cache_key for g in gens}}
        if params.edited:  # an unedited film keeps the key it always had
            # files as the storyboard names them: a clone in another folder has the same key
            shown = {f: _shown(f, self.root) for f in files}
            edit = {"pieces": [_plain(p, shown) for p in pieces],
                    "delivery": _plain(delivery, shown),
                    "files": {shown[f]: self.digest(Path(f)) for f in files}}
            key = hash_key("assemble", output.crossfade_s, clips, edit)
            made_from["edit"] = edit
        else:
            key = hash_key("assemble", output.crossfade_s, clips)
        deps = tuple(dict.fromkeys(g.id for g in gens))
        self.add(Task(id=f"assemble:{output.path}", kind="assemble", cache_key=key,
                      depends_on=deps, weight_s=1.0, picks=self.picks(deps), params=params,
                      made_from=made_from))

    def cut(self, output: Output) -> tuple[tuple[CutPiece, ...], DeliveryParams, list[str]]:
        """The output's pieces and delivery as the renderer takes them, and the local files
        they read (their contents enter the key); () and PLAIN for a film joined as it is."""
        files: list[str] = []

        def file(source) -> str:
            path = str(source.path if source.path is not None else self.root / source.value)
            files.append(path)
            return path

        lines = any(self.jobs[s].shot.lines for s in output.sequence)
        pieces = []
        for piece in output.pieces:
            into = piece.transition or output.transition
            if piece.is_title:
                background = piece.background
                pieces.append(CutPiece(
                    None, transition=into.kind, transition_s=into.seconds,
                    title=piece.title or "", subtitle=piece.subtitle or "",
                    duration_s=piece.duration_s or 3.0,
                    background=background if isinstance(background, str) else
                    file(background) if background is not None else "black"))
                continue
            assert piece.shot is not None  # a piece is a title card or a shot
            shot = self.jobs[piece.shot].shot
            pieces.append(CutPiece(
                piece.shot, piece.start_s or 0.0, piece.end_s, into.kind, into.seconds,
                focus=shot.focus,
                lines=tuple((line.speaker, line.text, start, end)
                            for line, start, end in shot.lines)))
        audio = output.audio
        mark = output.watermark
        delivery = DeliveryParams(
            aspect=tuple(int(n) for n in output.aspect.split(":"))  # type: ignore[arg-type]
            if output.aspect else None,
            # generated again at the aspect (resolve.regenerated): nothing left to reframe
            size=output.size, reframe="crop" if output.reframe == "generate" else output.reframe,
            preset=output.preset,
            fade_in_s=output.fade_in_s, fade_out_s=output.fade_out_s,
            music=file(audio.music) if audio and audio.music else None,
            music_gain_db=audio.music_gain_db if audio else -18.0,
            duck_db=audio.duck_db if audio else 10.0,
            loudness_lufs=audio.loudness_lufs if audio else None,
            subtitles=output.subtitles, burn_in=output.burn_in,
            watermark=(file(mark.image), mark.corner, mark.opacity, mark.scale) if mark else None)
        plain = not lines and delivery == PLAIN and all(
            p.shot is not None and p.start_s == 0.0 and p.end_s is None and
            p.transition == ("crossfade" if output.crossfade_s else "cut") for p in pieces)
        if plain:
            return (), PLAIN, []
        return tuple(pieces), delivery, files

    def identity(self, ref: InputRef) -> str:
        """What an input is, whichever way it reaches the provider: a file's content digest,
        or the cache key of the task that makes the frame or clip."""
        kind, _, rest = ref.key.partition(":")
        if kind == "file":
            return self.digest(ref.file)
        shot_id, _, which = rest.partition(":")
        return self.tasks[f"frame:{shot_id}:{which or 'last'}" if kind == "frame"
                          else f"generate:{shot_id}"].cache_key

    def digest(self, path: Path) -> str:
        if path not in self.digests:
            self.digests[path] = file_digest(path)
        return self.digests[path]


# Seconds a hosted generation is assumed to take before this project has timed one of its
# provider and model: (base, per second of clip), as base + per_second x clip seconds. These
# are ASSUMPTIONS, not measurements: no provider page or seed publishes generation times
# (the provider reference's fal notes speak of "1-5 minute video jobs", itself inferred),
# and no real run has been timed from here. The plan weighs the critical path with them
# (_generate_weight) and the run's first poll of a generation comes at half of them
# (engine/remote.py). Add a row per (provider, model) once measured; after
# one generation the project's own history decides.
GENERATION_PRIOR_S: dict[tuple[str, str | None] | None, tuple[float, float]] = {
    None: (60.0, 12.0),  # every hosted provider and model: 5 s -> 120 s, 10 s -> 180 s
}


def prior_s(provider: str, model: str | None, clip_s: float | None) -> float:
    """GENERATION_PRIOR_S's assumed seconds for a `clip_s`-second clip (5 s when unknown)."""
    base, per_second = GENERATION_PRIOR_S.get((provider, model), GENERATION_PRIOR_S[None])
    return base + per_second * (clip_s if clip_s is not None else 5.0)


def _generate_weight(job: Job) -> float:
    """Rough wall-clock seconds: remote Kling jobs take minutes (the prior), previews a fraction
    of the clip."""
    seconds = job.shot.duration or 5
    if job.provider in LOCAL_PROVIDERS:
        return seconds / 10
    return prior_s(job.provider, job.model.alias, seconds)


def _plain(params: Any, shown: Mapping[str, str]) -> Any:
    """A params dataclass as JSON-ready data, for a key and `made_from`, each file named as
    `shown` says."""
    from dataclasses import asdict

    def named(value: Any) -> Any:
        if isinstance(value, str):
            return shown.get(value, value)
        if isinstance(value, dict):
            return {k: named(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [named(v) for v in value]
        return value

    return named(asdict(params))


def _shown(path: str, root: Path) -> str:
    """A file as the storyboard names it: relative to the project where it is inside it."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def substitute(request: Any, refs: Mapping[str, str]) -> Any:
    """The request with every input placeholder replaced by its provider-ready reference."""
    if isinstance(request, str):
        return refs.get(request, request) if request.startswith(PLACEHOLDER_PREFIX) else request
    if isinstance(request, Mapping):
        return {k: substitute(v, refs) for k, v in request.items()}
    if isinstance(request, (list, tuple)):
        return [substitute(v, refs) for v in request]
    return request
