"""Run `kling-compose run` on a project whose disk is full, then again once space is freed.

Started by test_full_disk.py as `unshare -rm python _full_disk.py MOUNT FREE_KB`: in a user
and mount namespace of its own it mounts a 4 MiB tmpfs at MOUNT (a real file system that
really fills up), makes a 4-shot chain project there, leaves FREE_KB free with a filler file
and prints both runs' exit codes and output as JSON. Where namespaces are not allowed,
`python _full_disk.py FOLDER FREE_KB --fsize` gives the first run a file size limit of FREE_KB
(RLIMIT_FSIZE: writes past it fail with EFBIG, as a quota would) instead."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path


def _projects():
    """tests/support/projects.py, loaded from its file: this driver runs as a script in a
    process (and namespace) of its own, outside pytest, where the tests' helper package is
    not importable. The module imports only kling_compose and its dependencies."""
    path = Path(__file__).resolve().parents[1] / "support" / "projects.py"
    spec = importlib.util.spec_from_file_location("projects", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(mount: Path, free_kb: int, fsize: bool) -> None:
    projects = _projects()
    if not fsize:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "none", str(mount)],
                       check=True)
    root = projects.make_project(mount / "project", projects.chain_storyboard(4))
    stat = os.statvfs(mount)
    filler = mount / "filler"
    if not fsize:
        filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - free_kb * 1024))
    command = [sys.executable, "-m", "kling_compose", "run", str(root), *projects.PREVIEW, "--json"]

    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (free_kb * 1024, free_kb * 1024))

    full = subprocess.run(command, capture_output=True, text=True,
                          preexec_fn=limit if fsize else None)
    filler.unlink(missing_ok=True)
    freed = subprocess.run(command, capture_output=True, text=True)
    film = root / "renders" / "chain.mp4"
    print(json.dumps({"full": [full.returncode, full.stdout, full.stderr],
                      "freed": [freed.returncode, freed.stdout, freed.stderr],
                      "film": film.is_file() and film.stat().st_size}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), "--fsize" in sys.argv[3:])
