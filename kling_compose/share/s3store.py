"""An S3-compatible bucket as the shared artifact store (share/artifacts.py): s3://bucket/prefix.

AWS S3 and the services that speak its API (Cloudflare R2, MinIO, Backblaze B2, GCS through its
XML interoperability) through boto3. Credentials, region and endpoint come only from boto3's own
configuration: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, AWS_DEFAULT_REGION
(boto3 does not read AWS_REGION), and AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for a service
other than AWS. This module reads none of them and never prints one; boto3 is imported only
when a store is first used. boto3 is an optional dependency (the `s3` extra): without it, an
s3:// store is one UserError saying how to install it.

A put is create-only (`If-None-Match: *`): an object is never overwritten, and of two machines
pushing one clip at once, one writes it and the other is told it was already there. Bodies are
streamed from and to files, never held whole in memory.

Exception tree (every boto3/botocore error is translated at the one boundary, `_translated`,
so a caller catches artifacts.STORE_FAILURES, never Exception)::

    StoreError           the store refused or could not be reached: credentials, bucket,
                         endpoint, a service without conditional writes; says what to check
                         (artifacts.StoreError, re-exported here)
    FileNotFoundError    get() of a name the store does not hold
    OSError              the local file read (put) or written (get)
    UserError            boto3 is not installed (the `s3` extra)
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from .artifacts import Stored, StoreError

__all__ = ["S3Store", "StoreError", "parse_url"]  # StoreError: where callers imported it from

CHUNK_BYTES = 1 << 20  # read size when streaming an object into a file
# S3 answers 409 ConditionalRequestConflict while another conditional write of the same key is
# in progress, and asks for a retry (docs: "Conditional requests", PutObject If-None-Match)
CONFLICT_DELAYS_S = (0.2, 1.0, 3.0)

CREDENTIALS = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
# S3 error code -> what went wrong, and what to check
REFUSALS = {
    "InvalidAccessKeyId": f"the access key is not known to the service: {CREDENTIALS}",
    "SignatureDoesNotMatch": f"the secret key does not match the access key: {CREDENTIALS}",
    "InvalidToken": f"the session token was refused: {CREDENTIALS} and AWS_SESSION_TOKEN",
    "ExpiredToken": f"the session token has expired: {CREDENTIALS} and AWS_SESSION_TOKEN",
    "AccessDenied": "access denied: check that these credentials may list, read and write "
                    "this bucket and prefix (AWS_PROFILE, AWS_ACCESS_KEY_ID)",
    "NoSuchBucket": "no such bucket: check the store's URL, and AWS_ENDPOINT_URL and "
                    "AWS_DEFAULT_REGION for the service that holds it",
    "PermanentRedirect": "the bucket lives in another region: set AWS_DEFAULT_REGION to it",
    "NotImplemented": "the service does not implement a create-only put "
                      "(If-None-Match: *), which a shared store needs",
}


class S3Store:
    """Objects `<prefix>/<name>` in one bucket, named by `s3://bucket/optional/prefix`."""

    def __init__(self, url: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        self._sleep = sleep
        if not _installed("boto3"):  # said at once, before the store is used (no import yet)
            raise missing_sdk(url)

    @cached_property
    def _client(self):
        """One boto3 client, made on first use (boto3 takes a second to import), shared by
        the transfer threads: clients are thread-safe, sessions are not."""
        with self._translated():
            boto3 = _import("boto3", self.url)
            try:
                return boto3.session.Session().client("s3")
            except ValueError as exc:  # botocore: "Invalid endpoint: ..." (AWS_ENDPOINT_URL)
                raise StoreError(f"bucket '{self.bucket}': {exc}: check AWS_ENDPOINT_URL (or "
                                 "AWS_ENDPOINT_URL_S3)") from exc

    def listing(self) -> set[str]:
        """Every object name directly under the prefix, from one paginated listing."""
        return set(self.inventory())

    def inventory(self) -> dict[str, Stored]:
        """The listing, with each object's size and LastModified (ListObjectsV2 gives both;
        a service that leaves the time out gives None, and `gc --store` keeps the object)."""
        with self._translated():
            paginator = self._client.get_paginator("list_objects_v2")
            pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/")
            # a key equal to the prefix, or ending in "/", is a folder marker (the S3
            # console's "Create folder"; SeaweedFS lists the emptied prefix so): not an object
            return {item["Key"][len(self.prefix):]: _stored(item)
                    for page in pages for item in page.get("Contents", ())
                    if len(item["Key"]) > len(self.prefix) and not item["Key"].endswith("/")}

    def put(self, source: Path, name: str) -> bool:
        """Upload `source` as `name` unless the store has that name; True if written.

        The name is content-addressed, so an object already there holds these bytes."""
        key = self.prefix + name
        with self._translated(key):
            for delay in CONFLICT_DELAYS_S:
                written = self._put_new(source, key, retrying=True)
                if written is not None:
                    return written
                self._sleep(delay)
            return bool(self._put_new(source, key, retrying=False))

    def _put_new(self, source: Path, key: str, retrying: bool) -> bool | None:
        """True if written, False if the key exists, None on a conflict worth retrying."""
        ClientError = _import("botocore.exceptions", self.url).ClientError

        try:
            # an open file is streamed; upload_file (s3transfer) would go multipart for large
            # files but cannot send IfNoneMatch. One PUT takes up to 5 GB.
            with source.open("rb") as body:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                        IfNoneMatch="*")
            return True
        except ClientError as exc:
            if _status(exc) == 412:  # PreconditionFailed: the name exists
                return False
            if retrying and _code(exc) == "ConditionalRequestConflict":
                return None
            raise

    def get(self, name: str, dest: Path) -> None:
        """Stream object `name` into the file `dest` (the caller verifies its sha256)."""
        key = self.prefix + name
        with self._translated(key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            with body, dest.open("wb") as out:
                for chunk in body.iter_chunks(CHUNK_BYTES):
                    out.write(chunk)

    def delete(self, name: str) -> None:
        """Remove `name` if it is there: a released claim, or what `gc --store` found that no
        lock names (in a versioned bucket, a delete marker: the bytes stay as an older version
        until the bucket's lifecycle rules expire them)."""
        key = self.prefix + name
        with self._translated(key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    @contextmanager
    def _translated(self, key: str | None = None) -> Iterator[None]:
        """boto3's errors, translated at this one boundary: FileNotFoundError for a missing
        object, StoreError naming the bucket and key for every other refusal or failure
        (botocore's ClientError and BotoCoreError, boto3's own Boto3Error). Everything the
        store does runs inside it; OSError (the local file) and a bug pass unchanged."""
        errors = _import("botocore.exceptions", self.url)
        Boto3Error = _import("boto3.exceptions", self.url).Boto3Error

        where = f"bucket '{self.bucket}'" + (f", key '{key}'" if key else "")
        try:
            yield
        except errors.ClientError as exc:
            if _code(exc) == "NoSuchKey":
                raise FileNotFoundError(f"{where}: no such object") from exc
            raise StoreError(f"{where}: {_refusal(exc)}") from exc
        except errors.BotoCoreError as exc:  # no credentials, endpoint unreachable, stream cut
            raise StoreError(f"{where}: {_failure(exc)}") from exc
        except Boto3Error as exc:
            raise StoreError(f"{where}: {exc}") from exc


S3_EXTRA = "pip install 'kling-compose[s3]'"


def missing_sdk(url: str):
    """The one error of an s3:// store without boto3: which extra installs it."""
    from ..errors import UserError

    return UserError.single(
        f"artifact store '{url}': an s3:// store needs boto3, which is not installed",
        hint=f"install the s3 extra: {S3_EXTRA} (from a checkout: pip install '.[s3]'; "
             "pipx: pipx install --force '.[s3]'), or use a folder as the store")


def _installed(name: str) -> bool:
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _import(name: str, url: str):
    """The module `name` of boto3's (boto3, botocore...), or missing_sdk's UserError."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise missing_sdk(url) from None


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/optional/prefix`; the prefix is '' or ends in '/'."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        from ..errors import UserError

        raise UserError.single(f"artifact store '{url}': not an s3://bucket/prefix URL",
                               hint="write it as s3://bucket or s3://bucket/some/prefix")
    prefix = parts.path.strip("/")
    return parts.netloc, prefix + "/" if prefix else ""


def _stored(item: dict) -> Stored:
    """A ListObjectsV2 entry: its Size and LastModified (a timezone-aware datetime)."""
    modified = item.get("LastModified")
    size = item.get("Size")
    stamp = getattr(modified, "timestamp", None)
    return Stored(size if isinstance(size, int) else 0, stamp() if callable(stamp) else None)


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _status(exc) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _refusal(exc) -> str:
    """What the service's error answer means; an unknown code is shown as the service said."""
    code, status = _code(exc), _status(exc)
    if code in REFUSALS:
        return f"{REFUSALS[code]} ({code}, HTTP {status})"
    if status == 403:
        return f"the request was refused ({code or 'HTTP 403'}): {CREDENTIALS}"
    message = exc.response.get("Error", {}).get("Message", "")
    return f"the service answered {code or 'an error'} (HTTP {status}): {message}".rstrip(": ")


def _failure(exc) -> str:
    """What went wrong before (or while) the service could answer."""
    from botocore.exceptions import (
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if isinstance(exc, NoCredentialsError):
        return f"no credentials found: {CREDENTIALS}"
    if isinstance(exc, (PartialCredentialsError, ProfileNotFound)):
        return f"{exc}: {CREDENTIALS}"
    if isinstance(exc, EndpointConnectionError):
        return f"{exc}: check AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) and the network"
    return str(exc)
