"""`kling-compose init`: a new project that validates (and previews) at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Location, UserError
from ..project.defaults import PROJECT_FILE
from ..project.lockfile import GITATTRIBUTES
from ..validate import schema_text

if TYPE_CHECKING:
    from ..providers.base import Capabilities

# The storyboard `init` writes: it validates on every provider (issue 21, item 18: on kie and
# kling its one-image element was refused, on kling-v3-task its local files and chains). The
# element has two images (kie needs 2-4, kling a frontal image and 1-3 more); kling-v3-task
# takes only http(s) URLs, so its storyboard (`init --provider kling-v3-task`) has no element
# images and no chains (tests/e2e/test_first_day_init.py runs each).
HEADER = """\
# yaml-language-server: $schema=storyboard.schema.json
# A kling-compose storyboard. {about}
version: 1
name: {name}

defaults:
  provider: {provider}
  model: kling-3-pro
  aspect: "16:9"
  duration: 5
  audio: true
{negative}
# profiles:   # `kling-compose run --profile draft`: a cheap 720p draft beside the final,
#   draft: {{ model: kling-3-std, audio: false }}   # kept apart, nothing paid twice
"""

NEGATIVE = "  negative_prompt: text, watermark, flicker\n"

ABOUT_PREVIEW = """\
`kling-compose run` renders it with the free local
# preview provider. For the real thing set `provider:` under defaults to runware, fal, kie or
# kling (this storyboard is valid on each; `kling-compose doctor --provider fal` checks the
# key), or run `kling-compose run --provider fal`. kling-v3-task takes http(s) URLs only (no
# local files, no chained frames): `kling-compose init DIR --provider kling-v3-task` writes a
# storyboard it accepts."""

ABOUT_PAID = """\
`kling-compose run` generates it at {provider} (paid:
# `kling-compose doctor` checks the key first, `kling-compose run --provider preview` rehearses
# it for free, `kling-compose plan` shows the estimate)."""

ABOUT_URLS = ABOUT_PAID + """
# kling-v3-task takes images only as http(s) URLs (no local files, no chained frames): give
# an element `frontal_image: https://...` and a shot `first_frame: https://...` to use them."""

BODY = """
elements:
  lantern:
    description: A paper lantern glowing amber
    frontal_image: assets/lantern.png
    images: [assets/lantern-side.png]   # more angles (kie needs 2 images, kling 1-3 more)
    tags: [Item]

scenes:
  - id: opening
    shots:
      - id: establishing
        prompt: Wide shot of a quiet harbour at dusk, boats rocking gently
      - id: lantern-rises
        prompt: "@lantern drifts up from the water and glows brighter"
        first_frame: {{ from: previous }}   # continue from the last frame of the shot before
        # takes: 2   # several to choose from, then `kling-compose pick lantern-rises 2`
        #            # (preview and runware make several per request; fal, kie, kling one)
      - id: sky
        prompt: The lantern joins hundreds of others in the night sky
        first_frame: {{ from: lantern-rises }}
        duration: 4
        # dialogue:   # spoken lines: sent to the model, subtitled, the music ducked under them
        #   - {{ speaker: narrator, line: "And then there were hundreds." }}

outputs:
  - path: renders/{name}.mp4
    # subtitles: [srt, vtt]             # renders/{name}.srt and .vtt, from the dialogue
    # audio: {{ loudness: -14 }}          # measured and normalised (EBU R128) for the web
  # - path: renders/{name}-vertical.mp4  # the social cut from the same shots
  #   aspect: "9:16"
  #   burn_in: true
"""

BODY_URLS = """
scenes:
  - id: opening
    shots:
      - id: establishing
        prompt: Wide shot of a quiet harbour at dusk, boats rocking gently
      - id: lantern-rises
        prompt: A paper lantern glowing amber drifts up from the water and glows brighter
      - id: sky
        prompt: The lantern joins hundreds of others in the night sky
        duration: 4
        # dialogue:   # spoken lines: sent to the model, subtitled, the music ducked under them
        #   - {{ speaker: narrator, line: "And then there were hundreds." }}

outputs:
  - path: renders/{name}.mp4
    # subtitles: [srt, vtt]             # renders/{name}.srt and .vtt, from the dialogue
"""

def _capabilities(provider: str) -> Capabilities:
    from ..providers import PROVIDERS

    return PROVIDERS[provider].spec.capabilities


def storyboard_text(name: str, provider: str = "preview") -> str:
    """The storyboard `init` writes for `provider`."""
    capabilities = _capabilities(provider)
    if capabilities.local:
        about = ABOUT_PREVIEW
    else:
        about = (ABOUT_PAID if capabilities.local_inputs else ABOUT_URLS).format(provider=provider)
    body = BODY if capabilities.local_inputs else BODY_URLS
    negative = NEGATIVE if _has_negative_prompt(provider) else ""
    return HEADER.format(about=about, name=name, provider=provider, negative=negative) + \
        body.format(name=name)


def _has_negative_prompt(provider: str) -> bool:
    """The template's model sends a negative prompt at `provider` (kie and kling-v3-task
    would warn that it is not sent); the local preview takes every field."""
    from ..providers import PROVIDERS

    spec = PROVIDERS[provider].models.get("kling-3-pro")
    return _capabilities(provider).local or (
        spec is not None and "negative_prompt" in spec.supports)


GITIGNORE = """\
# kling-compose: local state and downloaded artifacts, and the assembled renders
.kling-compose/
renders/
# a lock file being written (an interrupted run leaves it; the next run removes it); free
# rehearsals are recorded in .kling-compose/, never in the lock
.storyboard.lock.*
.storyboard.*.lock.*
# storyboard.lock (and storyboard.<profile>.lock for each --profile) records what was
# generated and paid for: keep them in git
!storyboard.lock
!storyboard.*.lock
# API keys (RUNWARE_API_KEY=..., FAL_KEY=...): never in git
.env
"""


PROJECT_DEFAULTS = """\
# kling-compose.yaml: defaults for every kling-compose command run on a storyboard in this
# folder, committed so that every teammate runs with the same ones; the command line wins.
# Uncomment what you need (docs/format.md, "The project file").
#
# vars: [vars.yaml]          # --vars files, read before those on the command line
# provider: preview          # --provider when none is given
# concurrency: 4             # run --concurrency
# max_cost: 20               # run --max-cost, in US dollars
# preview_resolution: 360    # --preview-resolution
# store: s3://bucket/prefix  # the shared artifact store, when the storyboard names none
"""


def create_project(directory: Path, provider: str = "preview") -> list[str]:
    """Write storyboard.yaml (for `provider`), its schema, assets/ and .gitignore; returns
    what was created. Nothing is ever written over, nor through a symbolic link (a link
    where a new file goes is refused); a folder that cannot be made is a UserError."""
    import os

    from ..files import create_exclusive, is_dir, kind_of, os_problem, shown

    where = Location(shown(str(directory)))
    target = directory / "storyboard.yaml"
    if os.path.lexists(target):
        raise UserError.single(f"'{shown(str(target))}' already exists",
                               hint="init only creates new projects")
    for folder in (directory, directory / "assets"):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            problem = os_problem(exc)
            if os.path.lexists(folder) and not is_dir(folder):
                kind = f"{_kind(folder, kind_of)}, not a folder"
                problem = f"it is {kind}" if folder == directory else f"'assets' is {kind}"
            raise UserError.single(f"cannot create the project here: {problem}", where,
                                   hint="give the path of a new or empty folder you may "
                                        "write to") from None
    try:
        name = "".join(c if c.isalnum() or c in "-_" else "-"
                       for c in directory.resolve().name.lower())
    except (OSError, RuntimeError):
        name = "film"
    files: dict[str, str | bytes] = {
        "storyboard.yaml": storyboard_text(name.strip("-") or "film", provider),
        "storyboard.schema.json": schema_text(),
        ".gitignore": GITIGNORE,
        ".gitattributes": GITATTRIBUTES,  # locks merge without conflicts (issue 26)
        PROJECT_FILE: PROJECT_DEFAULTS,
    }
    if _capabilities(provider).local_inputs:  # URLs only: no asset images
        files["assets/lantern.png"] = _lantern_image(side=False)
        files["assets/lantern-side.png"] = _lantern_image(side=True)
    created = []
    for relative, content in files.items():  # never overwrite what the user already has
        path = directory / relative
        if not os.path.lexists(path):
            create_exclusive(path, content, shown(str(path)))
            created.append(relative)
    return created


def git_files(folder: Path, stem: str = "storyboard") -> list[str]:
    """The .gitignore and .gitattributes `init` writes, created in `folder` for the storyboard
    `stem` where it has none (an existing one is left as it is: `kling-compose lock setup`
    adds the merge lines to it); returns the names created. Never through a link."""
    import os

    from ..files import create_exclusive, shown
    from ..project.lockfile import _attribute_pattern

    ignore = GITIGNORE if stem == "storyboard" else GITIGNORE.replace(
        ".storyboard.lock.*", f".{stem}.lock.*").replace(
        ".storyboard.*.lock.*", f".{stem}.*.lock.*").replace(
        "!storyboard.lock", f"!{stem}.lock").replace("!storyboard.*.lock", f"!{stem}.*.lock")
    attributes = GITATTRIBUTES.replace("storyboard.lock", _attribute_pattern(f"{stem}.lock")) \
        .replace("storyboard.*.lock", _attribute_pattern(stem, ".*.lock"))
    created = []
    for name, text in ((".gitignore", ignore), (".gitattributes", attributes)):
        path = folder / name
        if not os.path.lexists(path):
            create_exclusive(path, text, shown(str(path)))
            created.append(name)
    return created


def _kind(path: Path, kind_of) -> str:
    import os

    try:
        return kind_of(os.stat(path).st_mode)
    except OSError:
        return "not a folder"


def _lantern_image(side: bool = False) -> bytes:
    """A small placeholder picture (front, or a narrower side view), so the example element
    has real images: 512 px, above every provider's minimum (kling: 300 px a side)."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (512, 512), (18, 24, 48))
    draw = ImageDraw.Draw(image)
    body = (206, 140, 306, 360) if side else (176, 140, 336, 360)
    draw.ellipse(body, fill=(240, 160, 60), outline=(255, 220, 150), width=6)
    draw.rectangle((226, 360, 286, 392), fill=(90, 60, 30))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
