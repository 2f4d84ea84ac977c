"""`kling-compose config`: the storyboard as the compiler sees it (Docker Compose's `config`).

After templating, with storyboard and scene defaults inherited into every shot, the default
output filled in and every reference resolved; in the storyboard's own vocabulary, so a user
can read what each shot will be made from. Fields that are not set are left out.
"""

from __future__ import annotations

from typing import Any

from ..model import Element, FrameSource, Prompt, Resolved, ResolvedShot

_SHOT_FIELDS = ("provider", "model", "prompt", "multi_prompt", "negative_prompt", "duration",
                "size", "aspect", "audio", "first_frame", "last_frame", "reference_images",
                "video", "reference_videos", "elements", "cfg_scale", "takes", "pick",
                "output_format", "quality", "provider_options")


def resolved_config(resolved: Resolved) -> dict[str, Any]:
    sb = resolved.storyboard
    root = sb.root
    shots = {s.id: s for s in resolved.shots}
    config: dict[str, Any] = {"version": sb.version, "name": sb.name}
    if sb.elements:
        config["elements"] = {name: _element(e, root) for name, e in sb.elements.items()}
    config["scenes"] = [{"id": scene.id,
                         "shots": [_shot(shots[s.id], root) for s in scene.shots
                                   if s.id in shots]}
                        for scene in sb.scenes]
    config["outputs"] = [{"path": o.path, "sequence": list(o.sequence),
                          **({"crossfade": o.crossfade_s} if o.crossfade_s else {})}
                         for o in resolved.outputs]
    return config


def _shot(shot: ResolvedShot, root) -> dict[str, Any]:
    out: dict[str, Any] = {"id": shot.id}
    for name in _SHOT_FIELDS:
        value = _value(getattr(shot, name), root)
        if value not in (None, [], {}):
            out[name] = value
    return out


def _element(element: Element, root) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("description", "frontal_image", "images", "videos", "voices", "tags", "id"):
        value = _value(getattr(element, name), root)
        if value not in (None, [], {}):
            out[name] = value
    return out


def _value(value, root):
    if isinstance(value, Prompt):
        return value.text
    if isinstance(value, FrameSource):
        if value.kind == "chain":
            return {"from": value.value, "frame": value.frame}
        if value.kind == "path" and value.path is not None:
            return value.path.relative_to(root).as_posix() \
                if value.path.is_relative_to(root) else str(value.path)
        return value.value
    if isinstance(value, Element):
        return value.name
    if hasattr(value, "prompt") and hasattr(value, "duration_s"):  # a multi_prompt segment
        return {"prompt": value.prompt.text, "duration": value.duration_s}
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"  # size
    if isinstance(value, (tuple, list)):
        return [_value(v, root) for v in value]
    if hasattr(value, "items"):
        return {k: _value(v, root) for k, v in value.items()}
    return value
