"""Optional extras (`[s3]`: boto3, `[export]`: OpenTimelineIO and its EDL adapter): a command
that needs one that is missing says which extra installs it (exit 1, no traceback). And the
S3 store's boundary: every boto3/botocore error becomes a StoreError there, so callers catch
artifacts.STORE_FAILURES; a bug (a TypeError) is never reported as "the store failed"."""

from __future__ import annotations

import sys

import pytest

from kling_compose.share.artifacts import STORE_FAILURES, StoreError
from kling_compose.errors import UserError


@pytest.fixture
def project(tmp_path, run_cli):
    code, _, err = run_cli(["init", tmp_path / "film"])
    assert code == 0, err
    return tmp_path / "film"


def _missing(monkeypatch, *modules):
    """Make `import module` fail as it does when the package is not installed."""
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


# -- [s3] ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["pull", "push"])
def test_an_s3_store_without_boto3_names_the_extra(project, run_cli, monkeypatch, command):
    _missing(monkeypatch, "boto3")
    monkeypatch.setenv("KLING_COMPOSE_STORE", "s3://studio-renders/harbour")
    code, out, err = run_cli([command, project])
    assert code == 1 and "Traceback" not in err
    assert "s3:// store needs boto3, which is not installed" in err
    assert "pip install 'kling-compose[s3]'" in err


def test_doctor_names_the_s3_extra(project, run_cli, monkeypatch):
    _missing(monkeypatch, "boto3")
    monkeypatch.setenv("KLING_COMPOSE_STORE", "s3://studio-renders/harbour")
    code, out, err = run_cli(["doctor", project])
    assert code == 1 and "Traceback" not in out + err
    assert "pip install 'kling-compose[s3]'" in out + err


def test_botocore_missing_at_first_use_names_the_extra(monkeypatch):
    from kling_compose.share.s3store import S3Store

    store = S3Store("s3://studio-renders/harbour")  # boto3 is installed here
    _missing(monkeypatch, "botocore", "botocore.exceptions")
    with pytest.raises(UserError, match=r"needs boto3") as caught:
        store.listing()
    assert "kling-compose[s3]" in caught.value.diagnostics[0].hint


# -- [export] --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, missing, named", [
    ("otio", "opentimelineio", "OpenTimelineIO"),
    ("edl", "opentimelineio", "OpenTimelineIO"),
    ("edl", "otio_cmx3600_adapter", "CMX 3600 adapter"),
])
def test_export_without_opentimelineio_names_the_extra(project, run_cli, monkeypatch, fmt,
                                                       missing, named):
    _missing(monkeypatch, missing)
    code, out, err = run_cli(["export", project, "--format", fmt])
    assert code == 1 and "Traceback" not in err
    assert named in err and "pip install 'kling-compose[export]'" in err
    assert not list(project.glob("renders/*.otio")) + list(project.glob("renders/*.edl"))


# -- the store's boundary --------------------------------------------------------------------

class _Body:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def iter_chunks(self, size):
        from botocore.exceptions import ResponseStreamingError

        yield b"half"
        raise ResponseStreamingError(error="connection reset")


class _Client:
    """A boto3 client whose every call fails with `error` (get: while streaming the body)."""

    def __init__(self, error):
        self.error = error

    def get_paginator(self, name):
        error = self.error

        class Pages:
            def paginate(self, **kwargs):
                raise error
        return Pages()

    def put_object(self, **kwargs):
        raise self.error

    def get_object(self, **kwargs):
        if self.error is None:
            return {"Body": _Body()}
        raise self.error

    def delete_object(self, **kwargs):
        raise self.error


def _s3_with(error):
    from kling_compose.share.s3store import S3Store

    store = S3Store("s3://studio-renders/harbour", sleep=lambda s: None)
    store.__dict__["_client"] = _Client(error)  # the cached client
    return store


def _boto_errors():
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    return [denied, NoCredentialsError(), EndpointConnectionError(endpoint_url="http://s3"),
            S3UploadFailedError("failed")]


@pytest.mark.parametrize("index", range(4))
def test_every_call_translates_boto_errors_into_store_errors(tmp_path, index):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"clip")
    error = _boto_errors()[index]
    calls = [lambda s: s.listing(), lambda s: s.put(source, "x.mp4"),
             lambda s: s.get("x.mp4", tmp_path / "got"), lambda s: s.delete("x.mp4")]
    for call in calls:
        with pytest.raises(StoreError, match="bucket 'studio-renders'"):
            call(_s3_with(error))


def test_a_stream_cut_while_getting_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="key 'harbour/x.mp4'"):
        _s3_with(None).get("x.mp4", tmp_path / "got")


def test_store_errors_are_what_callers_catch():
    assert issubclass(StoreError, STORE_FAILURES) and issubclass(OSError, STORE_FAILURES)
    assert not issubclass(TypeError, STORE_FAILURES)
    from kling_compose.share import s3store

    assert s3store.StoreError is StoreError  # the name callers imported it by still works


def test_a_bug_inside_the_s3_store_is_not_translated(tmp_path):
    with pytest.raises(TypeError):
        _s3_with(TypeError("a bug")).listing()


class _BuggyStore:
    """A shared store with a bug: its listing raises TypeError."""

    url = "file:///buggy"

    def listing(self):
        raise TypeError("unhashable type: 'list'")

    def put(self, source, name):
        raise TypeError("a bug")

    def get(self, name, dest):
        raise TypeError("a bug")

    def delete(self, name):
        raise TypeError("a bug")


class _DownStore(_BuggyStore):
    def listing(self):
        raise StoreError("bucket 'b': no credentials found")


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_bug_in_a_store_propagates_from_push_and_pull(project, run_cli, monkeypatch, command):
    import json

    from kling_compose.share import artifacts

    # a clip the lock names and the local store lacks: pull asks the store for it
    (project / "storyboard.lock").write_text(json.dumps({
        "version": 1, "shots": {"opening": {"sha256": ["0" * 64]}}, "outputs": {}}))
    monkeypatch.setattr(artifacts, "project_store", lambda storyboard, settings: _BuggyStore())
    with pytest.raises(TypeError):
        run_cli([command, project])
    monkeypatch.setattr(artifacts, "project_store", lambda storyboard, settings: _DownStore())
    code, out, err = run_cli([command, project])
    assert code == 1 and "artifact store file:///buggy: bucket 'b': no credentials" in err


def test_a_bug_in_a_store_propagates_from_doctor(project, monkeypatch):
    from kling_compose.commands import doctor
    from kling_compose.share import artifacts

    class Plan:
        class resolved:
            storyboard = None

    monkeypatch.setattr(artifacts, "project_store", lambda storyboard, settings: _BuggyStore())
    with pytest.raises(TypeError):
        list(doctor.store_check(Plan, {}, project))
    monkeypatch.setattr(artifacts, "project_store", lambda storyboard, settings: _DownStore())
    (check,) = doctor.store_check(Plan, {}, project)
    assert not check.ok and "cannot be read: bucket 'b': no credentials" in check.message
