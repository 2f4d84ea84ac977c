"""The field names the storyboard's JSON Schema allows at a key path, with their descriptions.

The schema (`schemas/storyboard.schema.json`, the one description of the format) is walked
along the path the cursor is in (text.Context.path): `properties`, `additionalProperties`
(an element, a profile), `items`, `$ref`, and the object alternatives of an `anyOf`
(`{ from: ... }` beside a path, `{ crossfade: ... }` beside `cut`).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Iterator

from .text import ITEM


@functools.cache
def _schema() -> dict[str, Any]:
    from ..validate import schema_text

    return json.loads(schema_text())


def _deref(node: Any) -> Iterator[dict[str, Any]]:
    """`node` and, through `$ref` and `anyOf`/`oneOf`, every schema it may be."""
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = _schema()
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        yield from _deref(target)
        return
    yield node
    for key in ("anyOf", "oneOf", "allOf"):
        for alternative in node.get(key) or ():
            yield from _deref(alternative)


def schemas_at(path: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every schema the value at `path` may follow (several where an `anyOf` allows)."""
    nodes = list(_deref(_schema()))
    for part in path:
        following: list[dict[str, Any]] = []
        for node in nodes:
            if part == ITEM:
                following += _deref(node.get("items"))
                continue
            properties = node.get("properties")
            if isinstance(properties, dict) and part in properties:
                following += _deref(properties[part])
            elif isinstance(node.get("additionalProperties"), dict):
                following += _deref(node["additionalProperties"])
        nodes = following
    return nodes


def fields_at(path: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Field name -> its schema, for the mapping at `path` (empty: not a mapping the schema
    knows, or one of free keys: elements, profiles)."""
    found: dict[str, dict[str, Any]] = {}
    for node in schemas_at(path):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, schema in properties.items():
                found.setdefault(name, next(_deref(schema), schema))
    return found


def required_at(path: tuple[str, ...]) -> set[str]:
    required: set[str] = set()
    for node in schemas_at(path):
        required.update(node.get("required") or ())
    return required


def describe(schema: dict[str, Any]) -> str:
    """A field's title and description, as the schema writes them."""
    parts = [schema.get("description") or ""]
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        parts.append("Example: " + ", ".join(json.dumps(e, ensure_ascii=False)
                                              for e in examples[:2]))
    return "\n\n".join(p for p in parts if p)
