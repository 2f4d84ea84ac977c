"""Review of issue 27 on the command line: `import`'s output path and `watch`'s promise to
stay on the machine (each test names the defect it caught)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from _e2e import cli
from test_watch import BOARD, Watching

SCRIPT = "INT. HARBOUR - NIGHT\n\nThe lamp turns.\n\nMARA\nYou're early.\n"


def test_import_to_a_folder_that_does_not_exist_writes_no_file_by_its_name(tmp_path):
    # `-o films/` (a folder, by its trailing slash) that does not exist yet made a FILE named
    # `films` holding the storyboard, and said "wrote films/"
    script = tmp_path / "script.fountain"
    script.write_text(SCRIPT, encoding="utf-8")
    result = cli("import", script, "-o", f"{tmp_path / 'films'}/")
    assert not (tmp_path / "films").is_file()
    assert result.exit_code == 1, result.output
    assert "films" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "films").mkdir()
    result = cli("import", script, "-o", f"{tmp_path / 'films'}/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "films" / "storyboard.yaml").is_file()


class _Listener:
    """A TCP port that counts the connections made to it (an S3 endpoint that never
    answers)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()


def test_watch_never_reaches_the_shared_artifact_store(tmp_path):
    # the watch's preview run pulled from and pushed to the team's store (KLING_COMPOSE_STORE,
    # the storyboard's or the project file's `store:`) on every render: requests to S3 with
    # the user's AWS credentials on each save, and a warning each time when offline
    listener = _Listener()
    root = tmp_path / "project"
    (root / "assets").mkdir(parents=True)

    board = BOARD.replace("        first_frame: assets/start.png\n", "")
    (root / "storyboard.yaml").write_text(board, encoding="utf-8")
    (root / "kling-compose.yaml").write_text("store: s3://studio/harbour\n", encoding="utf-8")
    env = {"AWS_ACCESS_KEY_ID": "AKIAREVIEW", "AWS_SECRET_ACCESS_KEY": "review-secret",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{listener.port}",
           "AWS_DEFAULT_REGION": "us-east-1"}
    watch = Watching(root, env=env)
    try:
        watch.expect(r"^report: ")
        assert watch.stop() == 0
    finally:
        watch.close()
        listener.sock.close()
    assert listener.count == 0, watch.output
    assert "artifact store" not in watch.output
    assert "review-secret" not in watch.output
