"""`kling-compose config`: the storyboard as the compiler sees it (Docker Compose's `config`).

After templating, with storyboard and scene defaults inherited into every shot, the default
output filled in and every reference resolved; in the storyboard's own vocabulary, so a user
can read what each shot will be made from. Fields that are not set are left out.
"""

from __future__ import annotations

from typing import Any

from ..model import Element, FrameSource, Line, Output, Piece, Prompt, Resolved, ResolvedShot
from ..resolve import VARIANT_MARK

_SHOT_FIELDS = ("provider", "model", "prompt", "multi_prompt", "negative_prompt", "duration",
                "size", "aspect", "resolution", "audio", "first_frame", "keyframes",
                "last_frame", "reference_images", "video", "reference_videos", "elements", "cfg_scale", "takes", "pick",
                "output_format", "quality", "provider_options", "dialogue")


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
    config["outputs"] = [_output(o, root) for o in resolved.outputs]
    return config


def _output(out: Output, root) -> dict[str, Any]:
    """An output in the storyboard's vocabulary: its sequence as written (a variant made for
    `reframe: generate` under its shot's id), each field that is not its default."""
    def transition(t) -> Any:
        return "cut" if t.kind == "cut" else {t.kind: t.seconds}

    def piece(p: Piece) -> Any:
        if p.is_title:
            card = {"title": p.title, "subtitle": p.subtitle, "duration": p.duration_s,
                    "background": _value(p.background, root)}
            item = {k: v for k, v in card.items() if v is not None}
        else:
            shot = (p.shot or "").split(VARIANT_MARK)[0]
            item = {"shot": shot, "in": p.start_s, "out": p.end_s}
            item = {k: v for k, v in item.items() if v is not None}
        if p.transition is not None:
            item["transition"] = transition(p.transition)
        return item["shot"] if list(item) == ["shot"] else item

    config: dict[str, Any] = {"path": out.path,
                              "sequence": [piece(p) for p in out.pieces] if out.pieces else
                              [s.split(VARIANT_MARK)[0] for s in out.sequence]}
    if out.transition.kind != "cut":
        config["transition"] = transition(out.transition)
    audio = out.audio
    fields = {
        "fade_in": out.fade_in_s or None, "fade_out": out.fade_out_s or None,
        "subtitles": list(out.subtitles) or None, "burn_in": out.burn_in or None,
        "audio": None if audio is None else {k: v for k, v in {
            "music": _value(audio.music, root), "music_gain": audio.music_gain_db,
            "duck": audio.duck_db, "loudness": audio.loudness_lufs}.items() if v is not None},
        "aspect": out.aspect, "size": _value(out.size, root) if out.size else None,
        "reframe": out.reframe if out.reframe != "crop" else None,
        "preset": out.preset if out.preset != "web" else None,
        "watermark": None if out.watermark is None else {
            "image": _value(out.watermark.image, root), "corner": out.watermark.corner,
            "opacity": out.watermark.opacity, "width": out.watermark.scale},
    }
    config.update({k: v for k, v in fields.items() if v is not None})
    return config


def _shot(shot: ResolvedShot, root) -> dict[str, Any]:
    out: dict[str, Any] = {"id": shot.id}
    for name in _SHOT_FIELDS:
        value = _value(getattr(shot, name), root)
        if value not in (None, [], {}):
            out[name] = value
    if shot.focus != (0.5, 0.5):
        out["framing"] = {"focus": list(shot.focus)}
    return out


def _element(element: Element, root) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("description", "frontal_image", "images", "videos", "voices", "tags", "id",
                 "voice", "voice_id"):
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
    if isinstance(value, Line):
        line = {"speaker": value.speaker, "line": value.text, "tone": value.tone}
        return {k: v for k, v in line.items() if v is not None}
    if hasattr(value, "prompt") and hasattr(value, "duration_s"):  # a multi_prompt segment
        segment = {"prompt": value.prompt.text, "duration": value.duration_s}
        return {**segment, "dialogue": _value(value.dialogue, root)} if value.dialogue \
            else segment
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"  # size
    if isinstance(value, (tuple, list)):
        return [_value(v, root) for v in value]
    if hasattr(value, "items"):
        return {k: _value(v, root) for k, v in value.items()}
    return value
