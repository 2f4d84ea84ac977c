"""The baseline `kling-compose run --concurrency 1` is held against: a plain script that sends
one generation to Runware, polls it every 5 s, downloads the clip, and only then sends the
next; a chained shot starts from the last frame of the clip before it, sent inline as a data
URI (as the engine sends it to Runware); at the end the clips are joined into the film.

    .venv/bin/python bench/sequential.py PROJECT --url RUNWARE_URL --key KEY [--out DIR]

The requests are the compiler's (`build_plan(..., "runware")`), so both send the same shots.
bench/run.py --scheduling runs it against the simulator next to the run it compares.
"""

from __future__ import annotations

import argparse
import base64
import time
import uuid
from pathlib import Path

import httpx

from kling_compose import build_plan, load_storyboard
from kling_compose.media.assemble import assemble
from kling_compose.media.frames import extract_frame
from kling_compose.plan import substitute

POLL_S = 5.0


def data_uri(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()


def generate(client: httpx.Client, url: str, request: dict) -> bytes:
    """Submit one task, poll every 5 s until it is done, return the clip's bytes."""
    task_id = str(uuid.uuid4())
    body = {"taskType": request["taskType"], "taskUUID": task_id, **request,
            "deliveryMethod": "async"}
    client.post(url, json=[body]).raise_for_status()
    while True:
        time.sleep(POLL_S)
        answer = client.post(url, json=[{"taskType": "getResponse", "taskUUID": task_id}])
        items = answer.raise_for_status().json().get("data", [])
        done = [item for item in items if item.get("status") == "success"]
        if done:
            return client.get(done[0]["videoURL"]).raise_for_status().content
        if any(item.get("status") == "error" for item in items):
            raise SystemExit(f"generation failed: {items}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--url", required=True, help="Runware's endpoint (the simulator's)")
    parser.add_argument("--key", required=True)
    parser.add_argument("--out", type=Path, help="where clips go (default PROJECT/sequential)")
    args = parser.parse_args()
    out = args.out or args.project / "sequential"
    out.mkdir(parents=True, exist_ok=True)
    plan = build_plan(load_storyboard(args.project / "storyboard.yaml"), "runware")
    clips: dict[str, Path] = {}
    headers = {"Authorization": f"Bearer {args.key}"}
    with httpx.Client(headers=headers, timeout=60) as client:
        for task in (plan.tasks[t] for t in plan.order if t.startswith("generate:")):
            refs = {}
            for ref in task.job.inputs:
                kind, _, rest = ref.key.partition(":")
                if kind == "frame":
                    shot, _, which = rest.partition(":")
                    frame = extract_frame(clips[shot], which or "last", out / f"{shot}.png")
                    refs[ref.placeholder] = data_uri(frame)
                else:
                    refs[ref.placeholder] = data_uri(ref.source.path)
            clip = out / f"{task.shot}.mp4"
            clip.write_bytes(generate(client, args.url, substitute(task.job.request, refs)))
            clips[task.shot] = clip
    shots = [plan.tasks[t].shot for t in plan.order if t.startswith("generate:")]
    assemble([clips[s] for s in shots], out / "film.mp4", workdir=out)


if __name__ == "__main__":
    main()
