"""Run `kling-compose run` on a project whose disk is full, then again once space is freed.

Started by test_full_disk.py as `unshare -rm python _full_disk.py MOUNT FREE_KB`: in a user
and mount namespace of its own it mounts a 4 MiB tmpfs at MOUNT (a real file system that
really fills up), makes a 4-shot chain project there, leaves FREE_KB free with a filler file
and prints both runs' exit codes and output as JSON. Where namespaces are not allowed,
`python _full_disk.py FOLDER FREE_KB --fsize` gives the first run a file size limit of FREE_KB
(RLIMIT_FSIZE: writes past it fail with EFBIG, as a quota would) instead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _e2e import PREVIEW, chain_storyboard, make_project  # noqa: E402


def main(mount: Path, free_kb: int, fsize: bool) -> None:
    if not fsize:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "none", str(mount)],
                       check=True)
    root = make_project(mount / "project", chain_storyboard(4))
    stat = os.statvfs(mount)
    filler = mount / "filler"
    if not fsize:
        filler.write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - free_kb * 1024))
    command = [sys.executable, "-m", "kling_compose", "run", str(root), *PREVIEW, "--json"]

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
