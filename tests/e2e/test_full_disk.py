"""A disk that fills up during a run (issue 9): on a real, really full file system (a small
tmpfs in a user namespace), at every stage from the ledger's creation to the last clip, the
run ends with a message naming what could not be written (exit 1, no traceback), and once
space is freed the next run finishes from where it stopped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).parent / "_full_disk.py"


def _namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.parametrize(("how", "free_kb"), [
    *[("tmpfs", kb) for kb in (0, 16, 64, 120, 200, 500)],  # ledger, clips, frames, film
    *[("fsize", kb) for kb in (0, 16, 64, 120)],  # limits every written file does not pass
])
def test_a_full_disk_is_a_message_and_the_run_resumes_once_space_is_freed(tmp_path, free_kb,
                                                                          how):
    mount = tmp_path / "disk"
    mount.mkdir()
    if how == "tmpfs" and _namespaces():
        command = ["unshare", "-rm", sys.executable, str(DRIVER), str(mount), str(free_kb)]
    else:  # no user namespaces here: a file size limit fails the same writes (EFBIG)
        command = [sys.executable, str(DRIVER), str(mount), str(free_kb), "--fsize"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    code, out, err = report["full"]
    assert code == 1 and "Traceback" not in out + err, err
    if err:  # the run could not start or could not finish
        assert "could not write" in err and "run again" in err, err
        assert "damaged" not in err  # a full disk is not a damaged ledger
    else:  # a task failed on the full disk: its error says what and how to go on
        failed = [t for t in json.loads(out)["tasks"] if t["status"] == "failed"]
        assert failed and all("could not write" in t["error"] for t in failed), out
    code, out, err = report["freed"]
    assert code == 0, err
    summary = json.loads(out)
    assert summary["failed"] == 0 and summary["generated"] + summary["cached"] == 4
    assert report["film"]
