"""plan asks result URLs before calling a take restorable; a host that does not answer is
asked once per plan, not once per take."""

from __future__ import annotations

import socket

import httpx

from kling_compose.engine.restore import Fetch, unavailable


def test_a_host_that_does_not_answer_is_asked_once(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead: dict[str, str] = {}
    first = unavailable([Fetch(f"http://127.0.0.1:{port}/a.mp4", "0" * 64, ".mp4")], dead=dead)
    assert first and first.startswith("result URL does not answer") and "127.0.0.1" in dead

    def never(*args, **kwargs):
        raise AssertionError("asked again")

    monkeypatch.setattr(httpx.Client, "head", never)
    again = unavailable([Fetch(f"http://127.0.0.1:{port}/b.mp4", "1" * 64, ".mp4")], dead=dead)
    assert again == first
