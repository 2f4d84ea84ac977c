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


def test_watch_follows_its_folder_removed_and_made_again(tmp_path):
    # a `git checkout` or `git stash` can remove the storyboard's folder and make it again: the
    # watch said "no storyboard" and then never saw another save (its watch was on the folder
    # that was gone), while it still said it was watching
    import shutil

    root = tmp_path / "project"
    root.mkdir()
    board = BOARD.replace("        first_frame: assets/start.png\n", "")
    (root / "storyboard.yaml").write_text(board, encoding="utf-8")
    watch = Watching(tmp_path, "project")
    try:
        watch.expect(r"^report: ")
        shutil.rmtree(root)
        watch.expect(r"no storyboard at")
        root.mkdir()
        (root / "storyboard.yaml").write_text(board.replace("gulls over", "terns over"),
                                              encoding="utf-8")
        watch.expect(r"^fixed: .*no storyboard")
        watch.expect(r"^rendered: .*solo")
        assert watch.stop() == 0
    finally:
        watch.close()
    assert "Traceback" not in watch.output


def test_the_next_command_import_prints_can_be_pasted_with_a_space_in_the_path(tmp_path):
    # `next: kling-compose run my film.yaml` ran `run` on two paths, `my` and `film.yaml`
    import shlex

    script = tmp_path / "script.fountain"
    script.write_text(SCRIPT, encoding="utf-8")
    target = tmp_path / "my film.yaml"
    result = cli("import", script, "-o", target)
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("next: ")]
    command = line.removeprefix("next: ").split("#")[0]
    assert shlex.split(command) == ["kling-compose", "run", str(target)]


def test_import_beside_a_project_file_naming_a_paid_provider_does_not_promise_a_free_run(
        tmp_path):
    # kling-compose.yaml's `provider: fal` is used by a plain `run` (the storyboard's
    # defaults do not override it): "next: kling-compose run storyboard.yaml   # a free
    # preview" led to a paid run ($0.50 a shot here)
    import shlex

    (tmp_path / "kling-compose.yaml").write_text("provider: fal\n", encoding="utf-8")
    script = tmp_path / "script.fountain"
    script.write_text(SCRIPT, encoding="utf-8")
    result = cli("import", script)
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("next: ")]
    command = shlex.split(line.removeprefix("next: ").split("#")[0])
    assert command[:2] == ["kling-compose", "run"] and "--provider" in command
    assert command[command.index("--provider") + 1] == "preview"
    assert "fal" in result.output


def test_watch_reads_no_key_a_malformed_one_does_not_stop_the_free_rehearsal(tmp_path):
    # the watch read every provider's key (and the project's .env) before each render, and a
    # key it never uses, malformed, stopped every render: "the API key in FAL_KEY holds a line
    # break ... the render did not finish"
    root = tmp_path / "project"
    root.mkdir()
    board = BOARD.replace("        first_frame: assets/start.png\n", "")
    (root / "storyboard.yaml").write_text(board, encoding="utf-8")
    (root / ".env").write_text("KIE_API_KEY=\"sk-review\u00e9\"\n", encoding="utf-8")
    watch = Watching(root, env={"FAL_KEY": "sk-review\x01secret"})
    try:
        watch.expect(r"^rendered: ")
        watch.expect(r"^report: ")
        assert watch.stop() == 0
    finally:
        watch.close()
    assert "FAL_KEY" not in watch.output and "KIE_API_KEY" not in watch.output
    assert "secret" not in watch.output


def test_the_report_server_answers_a_nul_in_the_path_with_404_not_a_traceback(tmp_path,
                                                                             capsys):
    # `GET /%00` made os.path.realpath raise ValueError: the connection was dropped without an
    # answer and socketserver printed a traceback on the terminal of `watch --serve`
    import http.client

    from kling_compose.commands.serve import ReportServer

    renders = tmp_path / "renders"
    renders.mkdir()
    (renders / "report.html").write_text("<html><body>hi</body></html>", encoding="utf-8")
    server = ReportServer(renders, renders / "report.html", 0).start()
    try:
        for path in ("/%00", "/a%00b.mp4", "/report.html%00", "/report/%00/x"):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.request("GET", path)
            answer = connection.getresponse()
            assert answer.status == 404, path
            answer.read()
            connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/report.html")
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        server.stop()
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_idle_connections_to_the_report_server_are_closed(tmp_path, monkeypatch):
    # every connection held a thread until the client closed it (keep-alive, no timeout): a
    # few thousand idle ones (a tab left open, a misbehaving client) and the watch ran out of
    # threads, each new one refused with a traceback
    import time

    from kling_compose.commands import serve

    assert serve._Handler.timeout is not None and serve._Handler.timeout <= 300
    monkeypatch.setattr(serve._Handler, "timeout", 0.5)
    renders = tmp_path / "renders"
    renders.mkdir()
    (renders / "report.html").write_text("<html><body>hi</body></html>", encoding="utf-8")
    server = serve.ReportServer(renders, renders / "report.html", 0).start()
    try:
        idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
                for _ in range(50)]
        started = time.monotonic()
        for sock in idle:
            assert sock.recv(1) == b""  # closed by the server
            sock.close()
        assert time.monotonic() - started < 8
    finally:
        server.stop()
