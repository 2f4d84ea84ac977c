"""Why a task will run again: what changed since its result was made, in a user's words.

Every task carries `made_from` (plan.py): its request, provider and model, and the identity of
each input (a file's content digest, or the cache key of the task that makes a frame or clip).
The ledger keeps it with each result, and storyboard.lock with each shot and output, so `plan`
compares the last result's `made_from` with the current one:

- a request field: `prompt changed`, `duration: 5 -> 8`, `negative_prompt added`;
- a provider, a model, the preview's resolution;
- an input file's content: `assets/harbour.png changed`;
- an upstream task that will make a new result: `last frame of s1 will be new (s1: prompt
  changed)`, transitively: `first frame ... (s2 <- s1: prompt changed)` names the chain back to
  the shot whose own change starts it;
- a pick (frames, films) and an output's shots or crossfade.

This is Snakemake's rerun triggers and Terraform's attribute diff: re-running paid work without
saying why loses trust. `--diff` prints the request bodies themselves as a unified diff.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from ..project.lockfile import Lock, read_lockfile
from ..project.state import State, state_path
from ..providers.base import PLACEHOLDER_PREFIX

SHORT = 40  # a value up to this long is shown as `before -> after`; a longer one is named


@dataclass(frozen=True, slots=True)
class Change:
    """One reason a task runs again. `upstream` names the task whose new result it follows."""

    what: str  # "prompt", "duration", "provider", "file:assets/a.png", "frame:s1:last", ...
    text: str  # in words: "duration: 5 -> 8"
    before: Any = None
    after: Any = None
    upstream: str | None = None

    def as_json(self) -> dict:
        data = {"what": self.what, "text": self.text}
        if self.before is not None or self.after is not None:
            data |= {"before": self.before, "after": self.after}
        if self.upstream:
            data["upstream"] = self.upstream
        return data


@dataclass(frozen=True, slots=True)
class _Cause:
    chain: tuple[str, ...]  # shots from this one back to the one whose own change starts it
    text: str  # that shot's own change(s)


class _Explainer:
    def __init__(self, plan, statuses: dict[str, str]) -> None:
        self.plan, self.statuses = plan, statuses
        self.changes: dict[str, list[Change]] = {}
        self.causes: dict[str, _Cause] = {}
        self.previous: dict[str, dict | None] = {}

    def explain(self, task, before: dict | None) -> list[Change]:
        now = task.made_from
        if before is None:
            return [Change("history", "made before from other inputs (which, this project's "
                                      "ledger does not record)")]
        changes: list[Change] = []
        for field in ("provider", "model", "short_side", "pick", "crossfade_s"):
            if before.get(field) != now.get(field) and (field in now or field in before):
                name = "preview resolution" if field == "short_side" else field
                changes.append(_scalar(name, before.get(field), now.get(field)))
        if task.kind == "generate":
            changes += _request_changes(before.get("request") or {}, now.get("request") or {})
        if task.kind == "assemble":
            changes += _sequence_changes(before.get("sequence") or [], now.get("sequence") or [])
        changes += self._input_changes(task, before.get("inputs") or {}, now.get("inputs") or {})
        return changes or [Change("history", "made before from other inputs")]

    def _input_changes(self, task, before: dict, now: dict) -> list[Change]:
        changes = []
        for key, identity in now.items():
            if key not in before or before[key] == identity:
                continue  # a new input shows as a request change
            kind, _, rest = key.partition(":")
            if kind == "file":
                changes.append(Change(key, f"{rest} changed"))
                continue
            upstream = _producer(key)
            label = _label(key)
            cause = self.causes.get(upstream)
            if cause is None and kind == "frame":  # the frame is new here: why its clip is
                cause = self.causes.get(f"generate:{rest.partition(':')[0]}")
            if self.statuses.get(upstream) in ("cached", "restorable") or cause is None:
                changes.append(Change(key, f"{label} is another result than last time",
                                      upstream=upstream))
            else:
                changes.append(Change(key, f"{label} will be new ({' <- '.join(cause.chain)}: "
                                           f"{cause.text})", upstream=upstream))
        return changes

    def cause(self, task, changes: list[Change]) -> _Cause:
        """The root of a task's changes: its own, or (when all come from upstream) those of
        the first upstream task, with the chain of shots in between."""
        shot = task.shot or task.id
        own = [c for c in changes if c.upstream is None]
        if own or not changes:
            return _Cause((shot,), "; ".join(c.text for c in own))
        upstream = self.causes.get(changes[0].upstream or "")
        if upstream is None:
            return _Cause((shot,), changes[0].text)
        chain = upstream.chain if upstream.chain[0] == shot else (shot, *upstream.chain)
        return _Cause(chain, upstream.text)


def explain_plan(plan, statuses: dict[str, str]) -> dict[str, list[Change]]:
    """Per task the plan marks `changed`: why, compared with what its last result was made
    from (the ledger's record, else storyboard.lock's entry)."""
    return _explained(plan, statuses).changes


def _explained(plan, statuses: dict[str, str]) -> _Explainer:
    root = plan.resolved.storyboard.root
    lock = read_lockfile(root, plan.resolved.storyboard.profile, plan.resolved.storyboard.path.stem)
    path = state_path(root)
    state = State(path, readonly=True) if path.is_file() else None
    explainer = _Explainer(plan, statuses)
    try:
        for task_id in plan.order:
            task = plan.tasks[task_id]
            if statuses.get(task_id) != "changed":
                continue
            before = _previous(task, state, lock)
            explainer.previous[task_id] = before
            changes = explainer.explain(task, before)
            explainer.changes[task_id] = changes
            explainer.causes[task_id] = explainer.cause(task, changes)
    finally:
        if state is not None:
            state.close()
    return explainer


def request_diffs(plan, statuses: dict[str, str]) -> str:
    """A unified diff of each changed generation's request body against the one its last
    result was made from (inputs shown as the placeholders the plan fills at run time)."""
    explainer = _explained(plan, statuses)
    parts = []
    for task_id, before in explainer.previous.items():
        task = plan.tasks[task_id]
        if task.kind != "generate" or before is None:
            continue
        old = _pretty(before.get("request") or {})
        new = _pretty(task.made_from.get("request") or {})
        diff = list(difflib.unified_diff(old, new, f"{task_id} (last result)",
                                         f"{task_id} (this plan)", lineterm=""))
        if not diff:
            reasons = "; ".join(c.text for c in explainer.changes[task_id])
            diff = [f"--- {task_id} (last result)", f"+++ {task_id} (this plan)",
                    f"  (the same request body; {reasons})"]
        parts.append("\n".join(diff))
    return "\n".join(parts) + ("\n" if parts else "")


def orphaned(plan) -> list[dict]:
    """Shots and outputs storyboard.lock names that the storyboard no longer has."""
    board = plan.resolved.storyboard
    lock = read_lockfile(board.root, board.profile, board.path.stem)
    shots = {t.shot for t in plan.tasks.values() if t.kind == "generate"}
    outputs = {t.assemble_params.path for t in plan.tasks.values() if t.kind == "assemble"}
    found = [{"id": f"generate:{shot}", "kind": "generate", "shot": shot,
              "provider": entry.get("provider"), "cache_key": entry.get("cache_key")}
             for shot, entry in sorted(lock.shots.items()) if shot not in shots]
    found += [{"id": f"assemble:{path}", "kind": "assemble", "shot": None, "provider": None,
               "cache_key": entry.get("cache_key")}
              for path, entry in sorted(lock.outputs.items()) if path not in outputs]
    return found


def _previous(task, state: State | None, lock: Lock) -> dict | None:
    """What the task's last result was made from: the ledger's record of this task a run last
    made or reused, of the same provider when it has one (a shot back on fal after a run on
    runware is compared with its fal result, not runware's: issue 21, item 16), else
    storyboard.lock's entry (a clone); None when neither says."""
    if state is not None:
        record = (task.provider and state.latest_for(task.id, task.provider)) or \
            state.latest_for(task.id)
        if record is not None and record.cache_key != task.cache_key and record.made_from:
            return record.made_from
    entry = None
    if task.kind == "generate":
        entry = lock.shot(task.shot)  # its newest (Lock.shots builds every shot's: per task,
    elif task.kind == "assemble":  # that was quadratic on a large plan)
        entry = lock.output(task.assemble_params.path)
    if isinstance(entry, dict) and entry.get("cache_key") != task.cache_key:
        made_from = entry.get("made_from")
        return made_from if isinstance(made_from, dict) else None
    return None


def _request_changes(before: dict, now: dict, prefix: str = "") -> list[Change]:
    changes = []
    for key in sorted(set(before) | set(now), key=str):
        path = f"{prefix}{key}"
        if key not in before:
            changes.append(Change(path, f"{path} added: {_show(now[key])}"
                                  if _short(now[key]) else f"{path} added", None, now[key]))
        elif key not in now:
            changes.append(Change(path, f"{path} removed", before[key], None))
        elif isinstance(before[key], dict) and isinstance(now[key], dict):
            changes += _request_changes(before[key], now[key], path + ".")
        elif before[key] != now[key]:
            changes.append(_scalar(path, before[key], now[key]))
    return changes


def _sequence_changes(before: list, now: list) -> list[Change]:
    shots_before, shots_now = [s for s, _ in before], [s for s, _ in now]
    if shots_before != shots_now:
        return [Change("sequence", f"shots: {', '.join(shots_before)} -> {', '.join(shots_now)}",
                       shots_before, shots_now)]
    return [Change(f"pick:{s}", f"pick of {s}: {p0} -> {p1}", p0, p1)
            for (s, p0), (_, p1) in zip(before, now) if p0 != p1]


def _scalar(path: str, before: Any, after: Any) -> Change:
    if _short(before) and _short(after):
        shown = _show(before), _show(after)
        if shown[0] == shown[1]:  # 6 and "6" (another provider's type): show the types
            shown = json.dumps(before), json.dumps(after)
        return Change(path, f"{path}: {shown[0]} -> {shown[1]}", before, after)
    return Change(path, f"{path} changed", before, after)


def _short(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float)) or \
        (isinstance(value, str) and len(value) <= SHORT and "\n" not in value)


def _show(value: Any) -> str:
    if isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX):
        return _label(value[len(PLACEHOLDER_PREFIX):])
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def _label(key: str) -> str:
    """An input key in words: `file:a.png` -> a.png, `frame:s1:last` -> last frame of s1."""
    kind, _, rest = key.partition(":")
    if kind == "file":
        return rest
    shot, _, which = rest.partition(":")
    return f"{which or 'last'} frame of {shot}" if kind == "frame" else f"clip of {shot}"


def _producer(key: str) -> str:
    kind, _, rest = key.partition(":")
    shot, _, which = rest.partition(":")
    return f"frame:{shot}:{which or 'last'}" if kind == "frame" else f"generate:{shot}"


def _pretty(request: dict) -> list[str]:
    return json.dumps(request, indent=2, sort_keys=True, ensure_ascii=False,
                      default=str).splitlines()
