"""Helpers for the simulator tests: request builders, polling loops, frame comparison."""

from __future__ import annotations

import base64
import io
import time
import uuid
from typing import Any

import av
import httpx
from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat

KEYS = {"runware": "rw-test-key", "fal": "fal-id:fal-secret", "kling-v3-task": "task-test-key"}
RUNWARE_AUTH = {"Authorization": f"Bearer {KEYS['runware']}"}
FAL_AUTH = {"Authorization": f"Key {KEYS['fal']}"}
TASK_AUTH = {"x-api-key": KEYS["kling-v3-task"]}
PRO = "klingai:kling-video@3-pro"
O3 = "klingai:kling-video@o3-pro"
T2V = "fal-ai/kling-video/v3/pro/text-to-video"
I2V = "fal-ai/kling-video/v3/pro/image-to-video"
OUTSIDE_JPG = "https://assets.runware.ai/assets/inputs/5e3433ef-b14e-4c65-8d25-54ecf737c589.jpg"


def make_image(size: tuple[int, int] = (320, 180), hue: int = 0) -> bytes:
    """A PNG with shapes and a gradient, so that frame comparisons mean something."""
    width, height = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for x in range(width):
        draw.line([(x, 0), (x, height)], fill=((x * 255 // width + hue) % 256, 80, 160))
    draw.rectangle([width // 8, height // 4, width // 3, height * 3 // 4], fill=(250, 240, 20))
    draw.ellipse([width // 2, height // 5, width * 7 // 8, height * 4 // 5], fill=(20, 30, 200))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """`data` as a base64 data URI."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def new_uuid() -> str:
    """A fresh UUID v4 string."""
    return str(uuid.uuid4())


def video_task(model: str = PRO, **fields: Any) -> dict[str, Any]:
    """A valid text-to-video videoInference task (fields override or, set to None, drop)."""
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": new_uuid(),
        "model": model,
        "positivePrompt": "A violinist plays on a dock at dawn",
        "width": 1920,
        "height": 1080,
        "duration": 3,
    }
    task.update(fields)
    return {k: v for k, v in task.items() if v is not None}


def runware(client: httpx.Client, sim, tasks: list | Any, headers=RUNWARE_AUTH) -> httpx.Response:
    """POST a task array to the simulated Runware endpoint."""
    return client.post(sim.url("runware"), json=tasks, headers=headers)


def poll_runware(client: httpx.Client, sim, task_uuid: str, timeout_s: float = 10) -> dict:
    """getResponse until no item is processing; the final body."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = runware(client, sim, [{"taskType": "getResponse", "taskUUID": task_uuid}]).json()
        if all(item["status"] != "processing" for item in body.get("data", [])):
            return body
        time.sleep(0.02)
    raise AssertionError(f"task {task_uuid} still processing after {timeout_s} s")


def fal_wait(client: httpx.Client, status_url: str, timeout_s: float = 10) -> list[httpx.Response]:
    """Every status answer until COMPLETED (the last one)."""
    answers = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = client.get(status_url, headers=FAL_AUTH)
        answers.append(answer)
        if answer.json()["status"] == "COMPLETED":
            return answers
        time.sleep(0.02)
    raise AssertionError("fal request not COMPLETED in time")


def task_create(client: httpx.Client, sim, input_: dict, **top: Any) -> httpx.Response:
    """POST createTask with model kling/v3."""
    body = {"model": "kling/v3", "input": input_, **top}
    return client.post(
        sim.url("kling-v3-task") + "/api/v1/jobs/createTask", json=body, headers=TASK_AUTH
    )


def task_info(client: httpx.Client, sim, task_id: str) -> httpx.Response:
    """GET recordInfo for `task_id`."""
    return client.get(
        sim.url("kling-v3-task") + "/api/v1/jobs/recordInfo",
        params={"taskId": task_id},
        headers=TASK_AUTH,
    )


def task_wait(client: httpx.Client, sim, task_id: str, timeout_s: float = 10) -> list[dict]:
    """Every recordInfo `data` until success or fail (the last one)."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = task_info(client, sim, task_id).json()["data"]
        seen.append(data)
        if data["state"] in ("success", "fail"):
            return seen
        time.sleep(0.01)
    raise AssertionError("task not finished in time")


def frames(mp4: bytes) -> list[Image.Image]:
    """Every decoded video frame of an mp4, as RGB images."""
    with av.open(io.BytesIO(mp4)) as container:
        return [f.to_image().convert("RGB") for f in container.decode(video=0)]


def matches(frame: Image.Image, image_bytes: bytes, tolerance: float = 8.0) -> bool:
    """True when `frame` shows the image (scaled to cover, centre-cropped): mean abs diff small."""
    with Image.open(io.BytesIO(image_bytes)) as img:
        expected = ImageOps.fit(img.convert("RGB"), frame.size)
    diff = ImageStat.Stat(ImageChops.difference(frame, expected)).mean
    return sum(diff) / len(diff) < tolerance


def duration_s(mp4: bytes) -> float:
    """The container duration of an mp4, in seconds."""
    with av.open(io.BytesIO(mp4)) as container:
        return container.duration / 1_000_000
