"""plan asks result URLs before calling a take restorable; a host that does not answer is
asked once per plan, not once per take."""

from __future__ import annotations

import socket

import httpx

from kling_compose.project.restore import Fetch, unavailable


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


def test_an_object_is_hashed_again_once_its_bytes_change(tmp_path, monkeypatch):
    """Store.intact remembers a verified object only while its file stays the same: bytes
    written over it (even of the same length) are hashed again and refused."""
    import hashlib

    from kling_compose.project import store as store_module
    from kling_compose.project.store import Store

    store = Store(tmp_path / ".kling-compose")
    data = b"clip bytes" * 100
    digest = hashlib.sha256(data).hexdigest()
    path = store.path(digest, ".mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    hashed = []
    real = store_module.file_sha256
    monkeypatch.setattr(store_module, "file_sha256", lambda p: hashed.append(p) or real(p))
    assert store.intact(digest, ".mp4") and store.intact(digest, ".mp4")
    assert len(hashed) == 1  # the second check trusts the unchanged file
    path.write_bytes(b"X" + data[1:])  # same size, other bytes
    assert not store.intact(digest, ".mp4")
    assert len(hashed) == 2
