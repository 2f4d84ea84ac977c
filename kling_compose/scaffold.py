"""`kling-compose init`: a new project that validates (and previews) at once."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError
from .validate import schema_text

STORYBOARD = """\
# yaml-language-server: $schema=storyboard.schema.json
# A kling-compose storyboard. `kling-compose run` renders it with the free local preview
# provider; set `provider: runware` (or fal, kling-v3-task) under defaults for the real thing.
version: 1
name: {name}

defaults:
  provider: preview
  model: kling-3-pro
  aspect: "16:9"
  duration: 5
  audio: true
  negative_prompt: text, watermark, flicker

elements:
  lantern:
    description: A paper lantern glowing amber
    frontal_image: assets/lantern.png
    tags: [Object]

scenes:
  - id: opening
    shots:
      - id: establishing
        prompt: Wide shot of a quiet harbour at dusk, boats rocking gently
      - id: lantern-rises
        prompt: "@lantern drifts up from the water and glows brighter"
        first_frame: {{ from: previous }}   # continue from the last frame of the shot before
      - id: sky
        prompt: The lantern joins hundreds of others in the night sky
        first_frame: {{ from: lantern-rises }}
        duration: 4

outputs:
  - path: renders/{name}.mp4
"""

GITIGNORE = """\
# kling-compose: local state and downloaded artifacts, and the assembled renders
.kling-compose/
renders/
# a lock file being written (an interrupted run leaves it; the next run removes it)
.storyboard.lock.*
# storyboard.lock records what was generated and paid for: keep it in git
!storyboard.lock
# API keys (RUNWARE_API_KEY=..., FAL_KEY=...): never in git
.env
"""


def create_project(directory: Path) -> list[str]:
    """Write storyboard.yaml, its schema, assets/ and .gitignore; returns what was created."""
    target = directory / "storyboard.yaml"
    if target.exists():
        raise UserError.single(f"'{target}' already exists", hint="init only creates new projects")
    name = "".join(c if c.isalnum() or c in "-_" else "-" for c in directory.resolve().name.lower())
    (directory / "assets").mkdir(parents=True, exist_ok=True)
    files = {
        "storyboard.yaml": STORYBOARD.format(name=name.strip("-") or "film"),
        "storyboard.schema.json": schema_text(),
        ".gitignore": GITIGNORE,
    }
    created = []
    for relative, text in files.items():  # never overwrite what the user already has
        if not (directory / relative).exists():
            (directory / relative).write_text(text, encoding="utf-8")
            created.append(relative)
    if not (directory / "assets" / "lantern.png").exists():
        _lantern_image(directory / "assets" / "lantern.png")
        created.append("assets/lantern.png")
    return created


def _lantern_image(path: Path) -> None:
    """A small placeholder picture, so the example element has a real image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (512, 512), (18, 24, 48))
    draw = ImageDraw.Draw(image)
    draw.ellipse((176, 140, 336, 360), fill=(240, 160, 60), outline=(255, 220, 150), width=6)
    draw.rectangle((226, 360, 286, 392), fill=(90, 60, 30))
    image.save(path, optimize=True)
