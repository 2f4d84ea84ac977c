"""Saved plans: `plan --out plan.json` writes the reviewed plan; `run --plan plan.json` runs
exactly that plan, or refuses (as `terraform apply` does with a saved plan).

A saved plan holds what was reviewed (every task with its status, reason and estimate, the
total to pay) and a fingerprint of everything the plan was computed from: the storyboard file's
bytes, the template variables, the provider and preview resolution, the content of every input
file, storyboard.lock's bytes, and every task's cache key (which covers included templates and
anything else that shapes a request). `run --plan` computes the plan again from the same
variables and options and refuses, naming each difference, when anything changed, or when a
task the saved plan did not pay for would now be paid for (a clip gone from the store).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..files import read_bytes, write_atomic
from ..project.decide import Review
from ..project.lockfile import rehearsal_path

FORMAT = "kling-compose plan"
VERSION = 1


def fingerprint(plan, variables: dict) -> dict:
    """Everything the plan was computed from, as digests (see the module's docstring)."""
    storyboard = plan.resolved.storyboard
    files: dict[str, str] = {}
    for task in plan.tasks.values():
        for key, identity in (task.made_from.get("inputs") or {}).items():
            if key.startswith("file:"):
                files[key[5:]] = identity
    lock = storyboard.paths.lock
    rehearsal = rehearsal_path(storyboard.root, storyboard.profile, storyboard.path.stem)
    return {
        "storyboard_sha256": _sha256(storyboard.path),
        "variables": {k: variables[k] for k in sorted(variables)},
        "provider": plan.provider,
        "preview_resolution": plan.preview_short_side,
        **({"profile": storyboard.profile} if storyboard.profile is not None else {}),
        "files": dict(sorted(files.items())),
        "lock_sha256": _sha256(lock) if lock.is_file() else None,
        # a preview run's records (beside the ledger: issue 26) decide what is cached too
        **({"rehearsal_sha256": _sha256(rehearsal)} if rehearsal.is_file() else {}),
        "tasks": {task_id: plan.tasks[task_id].cache_key for task_id in plan.order},
    }


def save_plan(out: Path, plan, variables: dict, reviewed: dict, statuses: dict) -> None:
    """Write the reviewed plan (`plan_json`'s content) and its fingerprint, atomically."""
    to_pay = [t.id for t in Review(plan, statuses).to_pay]
    data = {"format": FORMAT, "version": VERSION,
            "storyboard": plan.resolved.storyboard.display_path,
            "fingerprint": fingerprint(plan, variables), "to_pay": to_pay, **reviewed}
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    # only over nothing or a regular file, checked again just before the rename (the CLI has
    # refused the storyboard, the lock and the inputs already)
    write_atomic(Path(out), text, what="the saved plan")


def read_saved(path: Path) -> dict:
    """The saved plan at `path`, or a UserError saying why it is not one."""
    hint = "save a plan with `kling-compose plan --out plan.json`, review it, then run it"
    try:
        data = json.loads(read_bytes(path, str(path), what="the saved plan",
                                     hint=hint).decode("utf-8"))
    except ValueError as exc:
        raise UserError.single(f"{path} is not a saved plan (not UTF-8 JSON: {exc})",
                               hint=hint) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT \
            or not isinstance(data.get("fingerprint"), dict):
        raise UserError.single(f"{path} is not a saved kling-compose plan", hint=hint)
    if data.get("version") != VERSION:
        raise UserError.single(f"{path} was saved by another version of kling-compose "
                               f"(plan format {data.get('version')})", hint=hint)
    return data


def check_saved(path: Path, saved: dict, plan, variables: dict, statuses: dict) -> None:
    """Refuse, naming every difference, unless `plan` is the plan that was saved."""
    then, now = saved["fingerprint"], fingerprint(plan, variables)
    problems = []
    if then.get("storyboard_sha256") != now["storyboard_sha256"]:
        problems.append(f"{plan.resolved.storyboard.display_path} changed")
    old_vars, new_vars = then.get("variables") or {}, now["variables"]
    for name in sorted(set(old_vars) | set(new_vars)):
        if old_vars.get(name) != new_vars.get(name):
            problems.append(f"variable '{name}' is {_show(new_vars.get(name))}, the plan was "
                            f"saved with {_show(old_vars.get(name))}")
    old_files, new_files = then.get("files") or {}, now["files"]
    for name in sorted(set(old_files) | set(new_files)):
        if name not in new_files:
            problems.append(f"{name} is no longer used")
        elif name not in old_files:
            problems.append(f"{name} is a new input")
        elif old_files[name] != new_files[name]:
            problems.append(f"{name} changed")
    if then.get("lock_sha256") != now["lock_sha256"]:
        board = plan.resolved.storyboard
        problems.append(f"{board.paths.lock.name} changed (a run or a "
                        "teammate's commit since)")
    elif then.get("rehearsal_sha256") != now.get("rehearsal_sha256"):
        problems.append("the rehearsal records changed (a preview run since)")
    if not problems and then.get("tasks") != now["tasks"]:
        old_tasks = then.get("tasks") or {}
        differ = [t for t in now["tasks"] if old_tasks.get(t) != now["tasks"][t]]
        differ += [t for t in old_tasks if t not in now["tasks"]]
        problems.append("the tasks differ (an included template or a setting changed): "
                        + ", ".join(differ[:5]) + (" ..." if len(differ) > 5 else ""))
    to_pay = set(saved.get("to_pay") or ())
    extra = [t.id for t in Review(plan, statuses).to_pay if t.id not in to_pay]
    if extra and not problems:
        problems.append("since it was saved, these would be paid for too (their results are "
                        "gone from the store): " + ", ".join(extra))
    if problems:
        raise UserError.single(
            f"the saved plan {path} is not what would run now: " + "; ".join(problems),
            hint=f"review the plan again: kling-compose plan --out {path}")


def _show(value) -> str:
    return "unset" if value is None else repr(value)


def _sha256(path: Path) -> str:
    from ..plan import file_digest

    return file_digest(path)
