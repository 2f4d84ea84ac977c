"""share/s3store.py against real S3-compatible servers (tests/e2e/_s3.py): SeaweedFS, a
production object store; moto's server only where a test needs what only moto does (seeding
1,100 objects at once, injecting 409 ConditionalRequestConflict, checking credentials)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import traceback
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kling_compose.share.s3store import S3Store, StoreError, parse_url
from kling_compose.errors import UserError

pytest_plugins = ["_s3"]  # the fixtures s3 (SeaweedFS) and moto_s3
MiB = 1 << 20


def clip(path: Path, size: int, seed: bytes = b"") -> tuple[Path, str]:
    """A file of `size` random bytes and its store name (<sha256>.mp4)."""
    data = seed + os.urandom(size - len(seed))
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest() + ".mp4"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_put_listing_get_round_trip(s3, tmp_path):
    source, name = clip(tmp_path / "take.mp4", 6 * MiB + 123)
    store = S3Store(f"s3://{s3.bucket}/team/harbour")
    assert store.listing() == set()
    assert store.put(source, name) is True
    assert store.listing() == {name}
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert keys == [f"team/harbour/{name}"]
    store.get(name, tmp_path / "pulled.mp4")
    assert sha256(tmp_path / "pulled.mp4") == sha256(source) == name.removesuffix(".mp4")


def test_put_is_create_only(s3, tmp_path):
    """A second put of a name writes nothing, even with other bytes: the object keeps the
    first; the server is sent If-None-Match: * and answers 412 PreconditionFailed."""
    first, name = clip(tmp_path / "first.mp4", 64 * 1024)
    other, _ = clip(tmp_path / "other.mp4", 64 * 1024)
    store = S3Store(f"s3://{s3.bucket}/p")
    assert store.put(first, name) is True
    assert store.put(other, name) is False
    assert store.put(first, name) is False
    stored = s3.client().get_object(Bucket=s3.bucket, Key=f"p/{name}")["Body"].read()
    assert stored == first.read_bytes()


def test_delete_removes_a_claim_and_is_quiet_when_it_is_gone(s3, tmp_path):
    claim = tmp_path / "claim.json"
    claim.write_text('{"owner": "a"}')
    store = S3Store(f"s3://{s3.bucket}/team")
    assert store.put(claim, "claim-k.json") is True
    store.delete("claim-k.json")
    assert store.listing() == set()
    store.delete("claim-k.json")  # already gone: nothing to do, no error
    assert store.put(claim, "claim-k.json") is True  # and it can be claimed anew


def test_two_machines_pushing_one_clip_at_once_write_it_once(s3, tmp_path):
    source, name = clip(tmp_path / "take.mp4", 2 * MiB)
    stores = [S3Store(f"s3://{s3.bucket}/p") for _ in range(2)]
    for store in stores:
        store.listing()  # each client made before the race, as push() lists first
    start = threading.Barrier(2)

    def push(store: S3Store) -> bool:
        start.wait()
        return store.put(source, name)

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(push, stores)) == [False, True]
    assert stores[0].listing() == {name}


def test_eight_writers_of_one_name_at_once_one_wins(s3, tmp_path):
    """Eight writers put one name at once (If-None-Match: *), racing on three names at the same
    time: on each name exactly one put writes, seven are told the name exists, and the object
    holds the winner's bytes (claims.py's create-only claim). SeaweedFS held this in 30 of 30
    trials (its filer serialises conditional writes of a key on a lock: a loser may wait a
    second or two); moto let two writers win about once in 300. The writers are two machines'
    stores, four threads each (four connections each): a store's client costs ~0.3 s to make."""
    machines, threads, names = 2, 4, [f"claim-race-{n}.json" for n in range(3)]
    writers = [(machine, thread) for machine in range(machines) for thread in range(threads)]
    for name in names:
        for machine, thread in writers:
            (tmp_path / f"{name}.{machine}.{thread}").write_text(
                f'{{"owner": "clone-{machine}", "thread": {thread}}}')
    stores = [S3Store(f"s3://{s3.bucket}/p") for _ in range(machines)]
    for store in stores:
        store.listing()  # each machine's client made before the race
    start = threading.Barrier(len(writers) * len(names))

    def put(name: str, writer: tuple[int, int]) -> tuple[str, str, bool]:
        source = tmp_path / f"{name}.{writer[0]}.{writer[1]}"
        start.wait()
        return name, source.name, stores[writer[0]].put(source, name)

    with ThreadPoolExecutor(len(writers) * len(names)) as pool:
        results = list(pool.map(put, names * len(writers),
                                [w for w in writers for _ in names]))
    for name in names:
        won = [source for n, source, written in results if n == name and written]
        assert len(won) == 1, results
        stored = s3.client().get_object(Bucket=s3.bucket, Key=f"p/{name}")["Body"].read()
        assert stored == (tmp_path / won[0]).read_bytes()


def test_a_folder_marker_is_not_an_object(s3, tmp_path):
    """A key ending in '/' under the prefix is a folder, not an object of the store: the S3
    console's "Create folder" makes one (an empty object 'team/'), and SeaweedFS lists a folder
    emptied by a delete as one. The listing names no object ''."""
    s3.client().put_object(Bucket=s3.bucket, Key="team/", Body=b"")
    s3.client().put_object(Bucket=s3.bucket, Key="team/a.mp4", Body=b"x")
    assert S3Store(f"s3://{s3.bucket}/team").listing() == {"a.mp4"}


def test_a_conflicting_conditional_write_is_retried(moto_s3, tmp_path):
    """S3 answers 409 ConditionalRequestConflict while another conditional write of the key is
    in progress and asks for a retry; after the last retry the store gives up, naming it.
    moto: the 409 is injected (SeaweedFS makes the later writer wait on a lock instead)."""
    s3 = moto_s3
    source, name = clip(tmp_path / "take.mp4", 1024)
    slept = []
    store = S3Store(f"s3://{s3.bucket}/p", sleep=slept.append)
    s3.server.conflict(s3.bucket, f"p/{name}", 2)
    assert store.put(source, name) is True
    assert slept == [0.2, 1.0]
    s3.server.conflict(s3.bucket, "p/again.mp4", 4)
    with pytest.raises(StoreError, match=(
            f"bucket '{s3.bucket}', key 'p/again.mp4': the service answered "
            "ConditionalRequestConflict \\(HTTP 409\\): A conflicting conditional operation")):
        store.put(source, "again.mp4")
    assert "again.mp4" not in store.listing()


def test_listing_reads_every_page(moto_s3):
    """More than 1,000 objects (one ListObjectsV2 page); nothing outside the prefix or in a
    folder below it. moto: 1,106 objects seeded in its backend at once (over HTTP they would
    take seconds)."""
    s3 = moto_s3
    names = s3.server.seed(s3.bucket, "team/film/", 1100)
    s3.server.seed(s3.bucket, "team/other/", 2)
    s3.server.seed(s3.bucket, "team/film/old/", 3)
    s3.server.seed(s3.bucket, "", 2)
    assert S3Store(f"s3://{s3.bucket}/team/film/").listing() == set(names)
    assert len(S3Store(f"s3://{s3.bucket}").listing()) == 2


def test_get_of_a_missing_name_raises_file_not_found(s3, tmp_path):
    store = S3Store(f"s3://{s3.bucket}/p")
    with pytest.raises(FileNotFoundError) as caught:
        store.get("nothing.mp4", tmp_path / "pulled.mp4")
    assert str(caught.value) == f"bucket '{s3.bucket}', key 'p/nothing.mp4': no such object"
    assert not (tmp_path / "pulled.mp4").exists()


def test_transfers_stream(s3, tmp_path):
    """A 32 MiB clip goes up and comes down with a few MiB of memory at most (the server runs
    in another process)."""
    source, name = clip(tmp_path / "big.mp4", 32 * MiB)
    store = S3Store(f"s3://{s3.bucket}/p")
    store.listing()  # the client and its service model, made before measuring
    tracemalloc.start()
    try:
        store.put(source, name)
        store.get(name, tmp_path / "pulled.mp4")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * MiB
    assert sha256(tmp_path / "pulled.mp4") == name.removesuffix(".mp4")


@pytest.mark.parametrize("known", [False, True], ids=["unknown-key", "wrong-secret"])
def test_refused_credentials_name_the_bucket_not_the_secret(moto_s3, monkeypatch, known):
    """moto: it checks signatures against its IAM users (SeaweedFS here has none)."""
    s3 = moto_s3
    key_id, problem = "AKIANOSUCHKEY0000000", "the access key is not known to the service"
    code = "InvalidAccessKeyId"
    if known:  # a user moto knows, signing with another secret
        import boto3

        iam = boto3.session.Session().client("iam")
        iam.create_user(UserName="editor")
        key_id = iam.create_access_key(UserName="editor")["AccessKey"]["AccessKeyId"]
        problem, code = "the secret key does not match the access key", "SignatureDoesNotMatch"
    wrong = "wrong-secret-kept-out-of-every-message"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with s3.server.checking_credentials(), pytest.raises(StoreError) as caught:
        S3Store(f"s3://{s3.bucket}/p").listing()
    assert str(caught.value) == (
        f"bucket '{s3.bucket}': {problem}: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        f"or AWS_PROFILE ({code}, HTTP 403)")
    everything = "".join(traceback.format_exception(caught.value))  # the chained cause too
    assert wrong not in everything and s3.secret_access_key not in everything


def test_no_credentials(s3, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreError) as caught:
        S3Store(f"s3://{s3.bucket}/p").put(clip(tmp_path / "a.mp4", 10)[0], "a.mp4")
    assert str(caught.value) == (
        f"bucket '{s3.bucket}', key 'p/a.mp4': no credentials found: "
        "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE")


def test_missing_bucket(s3):
    with pytest.raises(StoreError) as caught:
        S3Store("s3://no-such-films/p").listing()
    assert str(caught.value) == (
        "bucket 'no-such-films': no such bucket: check the store's URL, and AWS_ENDPOINT_URL "
        "and AWS_DEFAULT_REGION for the service that holds it (NoSuchBucket, HTTP 404)")


def test_unreachable_endpoint(s3, monkeypatch, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreError) as caught:
        S3Store(f"s3://{s3.bucket}/p").get("a.mp4", tmp_path / "a.mp4")
    assert str(caught.value) == (
        f"bucket '{s3.bucket}', key 'p/a.mp4': Could not connect to the endpoint URL: "
        f"\"http://127.0.0.1:{port}/{s3.bucket}/p/a.mp4\": check AWS_ENDPOINT_URL "
        "(or AWS_ENDPOINT_URL_S3) and the network")


@pytest.mark.parametrize("url, bucket, prefix", [
    ("s3://films", "films", ""),
    ("s3://films/", "films", ""),
    ("s3://films/team/harbour", "films", "team/harbour/"),
    ("s3://films//team/harbour//", "films", "team/harbour/"),
])
def test_parse_url(url, bucket, prefix):
    assert parse_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://films/p?versionId=1"])
def test_a_url_without_a_bucket_is_a_user_error(url):
    with pytest.raises(UserError, match="not an s3://bucket/prefix URL"):
        S3Store(url)


def test_boto3_is_imported_only_when_a_store_is_used():
    code = ("import sys; from kling_compose.share.s3store import S3Store; "
            "S3Store('s3://films/p'); print('boto3' in sys.modules, 'botocore' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
