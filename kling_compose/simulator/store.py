"""What the simulated providers share: served files, decoded image inputs, generations, billing.

A `Backend` belongs to one simulator. Generations take `faults.task_seconds` of clock time. The
clip is rendered (with `media.animatic`) in the background while the generation "runs", as a
provider's is ready when it says done (a poll that finds it due before then renders it at
once), and served under `{base}/files/<name>` from the first poll that finds it due. Rendered
clips are cached by what they show: identical requests (same size, duration, audio, frame
images, and the title card's text when there is no first image) reuse one file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit

from PIL import Image

from ..media.animatic import AnimaticSpec, preview_size, render_animatic
from .faults import Faults, GenerationFailure

# Runware image-upload page: jpeg, jpg, png, webp, bmp, gif (PIL format names).
IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF"})
_DATA_URI = re.compile(r"data:(?P<mime>[^;,]*)(?P<b64>;base64)?,(?P<data>.*)", re.DOTALL)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}


class InputError(ValueError):
    """A media input the simulator cannot use; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file the simulator serves at `{base}/files/<name>`."""

    name: str
    path: Path
    content_type: str
    provider: str
    size: int


@dataclass(frozen=True, slots=True)
class ImageInput:
    """A resolved image input: `path` is None for an outside URL the simulator cannot fetch."""

    source: str
    path: Path | None
    size: tuple[int, int] | None = None
    byte_count: int = 0


@dataclass(frozen=True, slots=True)
class ClipPlan:
    """What the generated clip shows; sizes are the nominal output, rendered small."""

    duration_s: float
    width: int | None
    height: int | None
    audio: bool
    first_image: ImageInput | None = None
    last_image: ImageInput | None = None
    title: str = ""
    caption: str = ""


@dataclass
class Generation:
    """One submitted generation with `results` outputs; the clip is rendered once, when due."""

    provider: str
    id: str
    plan: ClipPlan
    results: int
    started_s: float
    task_s: float
    failure: GenerationFailure | None
    seeds: tuple[int, ...]
    output_ids: tuple[str, ...]
    cost_usd: Decimal | None = None  # per result
    request: object = None
    outputs: list[StoredFile] = field(default_factory=list)  # served once it is done
    clips: list[Path] = field(default_factory=list)  # rendered (ahead of time), one per result
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    finished_ms: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self, now_s: float) -> float:
        """Fraction of the generation time passed, 0..1."""
        if self.task_s <= 0:
            return 1.0
        return min(1.0, max(0.0, (now_s - self.started_s) / self.task_s))

    def due(self, now_s: float) -> bool:
        """True once the generation time has passed."""
        return self.progress(now_s) >= 1.0


class Backend:
    """Files, uploaded images, generations and the billing ledger of one simulator."""

    def __init__(
        self,
        root: Path,
        faults: Faults,
        *,
        clock: Callable[[], float] = time.monotonic,
        short_side: int = 180,
        fps: int = 24,
    ) -> None:
        self.root = root
        self.faults = faults
        self.clock = clock
        self.short_side = short_side
        self.fps = fps
        self.base_url = ""  # set by the server once it is bound
        self._files: dict[str, StoredFile] = {}
        self._generations: dict[tuple[str, str], Generation] = {}
        self._billed: dict[str, Decimal] = {}
        self._lock = threading.Lock()
        # rendered clips by what they show (AnimaticSpec), one lock per spec being rendered
        self._clips: dict[AnimaticSpec, Path] = {}
        self._clip_locks: dict[AnimaticSpec, threading.Lock] = {}
        self.renders = 0  # clips rendered (cache misses)
        self.render_s = 0.0  # seconds spent rendering them
        # one background renderer: the clip is ready by the time the generation is due,
        # without taking more than a core from the client it stands next to
        self._renderer: ThreadPoolExecutor | None = None
        self._closed = False

    # files -------------------------------------------------------------------------------

    def put_file(
        self, data: bytes, *, provider: str, suffix: str, content_type: str, name: str | None = None
    ) -> StoredFile:
        """Store `data` and serve it; the name is a fresh UUID plus `suffix` unless given."""
        name = name or f"{uuid.uuid4()}{suffix}"
        path = self.root / name
        path.write_bytes(data)
        return self._register(name, path, content_type, provider)

    def _register(self, name: str, path: Path, content_type: str, provider: str) -> StoredFile:
        stored = StoredFile(name, path, content_type, provider, path.stat().st_size)
        with self._lock:
            self._files[name] = stored
        return stored

    def file(self, name: str) -> StoredFile | None:
        """The served file called `name`, or None."""
        with self._lock:
            return self._files.get(name)

    def file_url(self, name: str) -> str:
        """The URL the simulator serves `name` at."""
        return f"{self.base_url}/files/{name}"

    def local_file(self, url: str) -> StoredFile | None:
        """The served file a URL of this simulator points at; InputError for a missing one.

        None when the URL is not this simulator's (an outside URL it cannot fetch offline).
        """
        parts, ours = urlsplit(url), urlsplit(self.base_url)
        if parts.port != ours.port or parts.hostname not in (
            "127.0.0.1",
            "localhost",
            ours.hostname,
        ):
            return None
        if not parts.path.startswith("/files/"):
            raise InputError(f"{url} is not a file URL of this simulator")
        stored = self.file(parts.path[len("/files/") :])
        if stored is None:
            raise InputError(f"{url}: no such file")
        return stored

    # images ------------------------------------------------------------------------------

    def image_input(
        self,
        value: object,
        uploads: Callable[[str], StoredFile | None] | None = None,
        *,
        allow_inline: bool = True,
    ) -> ImageInput:
        """Resolve an image input (URL, data URI, base64 or an uploaded UUID) to a local file.

        Raises InputError with the reason when the value is not a usable image.
        """
        if not isinstance(value, str) or not value:
            raise InputError("must be a non-empty string")
        if value.startswith(("http://", "https://")):
            stored = self.local_file(value)
            if stored is None:
                return ImageInput(value, None)
            return self._checked_image(value, stored.path.read_bytes())
        if uploads is not None and _UUID.fullmatch(value):
            stored = uploads(value)
            if stored is None:
                raise InputError(f"unknown image UUID {value}")
            return self._checked_image(value, stored.path.read_bytes())
        if not allow_inline:
            raise InputError("must be an http(s) URL")
        return self._checked_image(value[:40], inline_bytes(value))

    def _checked_image(self, source: str, data: bytes) -> ImageInput:
        fmt, size = image_format(data)
        digest = hashlib.sha256(data).hexdigest()[:24]
        path = self.root / f"in-{digest}{_SUFFIXES[fmt]}"
        if not path.exists():
            path.write_bytes(data)
        return ImageInput(source, path, size, len(data))

    # generations -------------------------------------------------------------------------

    def start(
        self,
        provider: str,
        gen_id: str,
        plan: ClipPlan,
        *,
        results: int = 1,
        prompt: str = "",
        cost_usd: Decimal | None = None,
        request: object = None,
        seed: int | None = None,
    ) -> Generation | None:
        """Queue a generation; None when `gen_id` is already taken (nothing new starts)."""
        base_seed = (
            seed if seed is not None else int(hashlib.sha256(gen_id.encode()).hexdigest()[:8], 16)
        )
        if self.faults.drifts(provider, prompt):
            plan = replace(plan, first_image=None, last_image=None)
        generation = Generation(
            provider,
            gen_id,
            plan,
            results,
            self.clock(),
            self.faults.task_seconds,
            self.faults.failure_for(provider, prompt),
            tuple((base_seed + i) % 2**31 for i in range(results)),
            tuple(str(uuid.uuid4()) for _ in range(results)),
            cost_usd,
            request,
        )
        with self._lock:
            if (provider, gen_id) in self._generations:
                return None
            self._generations[(provider, gen_id)] = generation
            if generation.failure is None and not self._closed:
                if self._renderer is None:
                    self._renderer = ThreadPoolExecutor(1, thread_name_prefix="sim-render")
                self._renderer.submit(self._prepare, generation)
        return generation

    def close(self) -> None:
        """Stop rendering ahead (a clip being rendered is finished first)."""
        with self._lock:
            self._closed = True
            renderer, self._renderer = self._renderer, None
        if renderer is not None:
            renderer.shutdown(wait=True, cancel_futures=True)

    def generation(self, provider: str, gen_id: str) -> Generation | None:
        """The generation `gen_id` of `provider`, or None."""
        with self._lock:
            return self._generations.get((provider, gen_id))

    def generations(self, provider: str | None = None) -> list[Generation]:
        """Every generation started, of one provider or all, in submit order."""
        with self._lock:
            return [g for (p, _), g in self._generations.items() if provider in (None, p)]

    def finish(self, generation: Generation) -> bool:
        """If due, publish the outputs once (rendering them now if the background renderer
        has not) and bill them; True when the generation is over."""
        if not generation.due(self.clock()):
            return False
        if generation.failure is None:
            self._prepare(generation)
        with generation.lock:
            if generation.finished_ms is None:
                if generation.failure is None:
                    generation.outputs = [
                        self._register(f"{output_id}.mp4", path, "video/mp4", generation.provider)
                        for output_id, path in zip(generation.output_ids, generation.clips)
                    ]
                    self._bill(generation)
                generation.finished_ms = int(time.time() * 1000)
        return True

    def _prepare(self, generation: Generation) -> None:
        """Render the generation's clips, once (the background renderer or a due poll)."""
        with generation.lock:
            if not generation.clips:
                generation.clips = [self._render(generation, i) for i in range(generation.results)]

    def _render(self, generation: Generation, index: int) -> Path:
        """The clip of output `index`: from the cache when one showing the same was rendered."""
        plan = generation.plan
        width, height = self.render_size(plan)
        spec = AnimaticSpec(
            duration_s=plan.duration_s,
            width=width,
            height=height,
            fps=self.fps,
            first_image=plan.first_image.path if plan.first_image else None,
            last_image=plan.last_image.path if plan.last_image else None,
            title=plan.title,
            caption=plan.caption,
            audio=plan.audio,
            tone_hz=330.0 + 110.0 * index,
        )
        # what the clip does not show is not part of the key: the text is on the title card
        # only (no first image), the tone only with audio; image files are named by content
        if spec.first_image is not None:
            spec = replace(spec, title="", caption="")
        if not spec.audio:
            spec = replace(spec, tone_hz=0.0)
        with self._lock:
            lock = self._clip_locks.setdefault(spec, threading.Lock())
        with lock:
            with self._lock:
                cached = self._clips.get(spec)
            if cached is not None:
                return cached
            path = self._render_clip(spec, self.root / f"clip-{uuid.uuid4()}.mp4")
            with self._lock:
                self._clips[spec] = path
            return path

    def _render_clip(self, spec: AnimaticSpec, path: Path) -> Path:
        started = time.perf_counter()
        render_animatic(spec, path)
        with self._lock:
            self.renders += 1
            self.render_s += time.perf_counter() - started
        return path

    def render_size(self, plan: ClipPlan) -> tuple[int, int]:
        """The small size a clip renders at: the first image's aspect, else the nominal size's."""
        if plan.first_image is not None and plan.first_image.size is not None:
            width, height = plan.first_image.size
        else:
            width, height = plan.width or 1920, plan.height or 1080
        return preview_size(width, height, self.short_side)

    def _bill(self, generation: Generation) -> None:
        if generation.cost_usd is None:
            return
        with self._lock:
            total = self._billed.get(generation.provider, Decimal(0))
            self._billed[generation.provider] = total + generation.cost_usd * generation.results

    def charge(self, provider: str, amount: Decimal) -> None:
        """Bill work that makes no clip (a voice) at once."""
        with self._lock:
            self._billed[provider] = self._billed.get(provider, Decimal(0)) + amount

    def billed(self, provider: str) -> Decimal:
        """The USD billed so far for `provider`'s successful generations."""
        with self._lock:
            return self._billed.get(provider, Decimal(0))


def inline_bytes(value: str) -> bytes:
    """The bytes of a data URI or raw base64 string; InputError when it is neither."""
    found = _DATA_URI.fullmatch(value)
    try:
        if found is None:
            return base64.b64decode(value, validate=True)
        if found["b64"]:
            return base64.b64decode(found["data"], validate=True)
        return unquote_to_bytes(found["data"])
    except (binascii.Error, ValueError) as exc:
        raise InputError("is neither a URL, a UUID, a data URI nor base64") from exc


def image_format(data: bytes) -> tuple[str, tuple[int, int]]:
    """(PIL format, (width, height)) of image bytes; InputError when Pillow cannot read them."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
            fmt, size = img.format, img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"is not a readable image ({exc.__class__.__name__})") from exc
    if fmt not in IMAGE_FORMATS:
        raise InputError(f"image format {fmt} is not one of {sorted(IMAGE_FORMATS)}")
    return fmt, size


def video_facts(path: Path) -> tuple[float, tuple[int, int], Image.Image | None]:
    """(duration in s, (width, height), first frame) of a video file, read with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = float(container.duration / 1_000_000) if container.duration else 5.0
        first = next(container.decode(stream), None)
        image = first.to_image() if first is not None else None
        return duration, (stream.codec_context.width, stream.codec_context.height), image
