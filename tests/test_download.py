"""Tests of course_lib.data.download against a local HTTP server on 127.0.0.1 (never the internet).

The server serves bytes from memory in a background thread; one route answers slowly to test the
timeout, one answers 404. The whole file runs in a few seconds.
"""

from __future__ import annotations

import hashlib
import http.server
import pathlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from course_lib.data import CacheWarning, DownloadError, download

PAYLOAD = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 200
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
SLOW_SECONDS = 1.5  # longer than the 0.5 s timeout the test uses, and bounded


@dataclass
class LocalServer:
    base_url: str
    requests: list[str]
    stop: threading.Event
    shutdown: Callable[[], None]


@pytest.fixture()
def server() -> Iterator[LocalServer]:
    """A ThreadingHTTPServer on 127.0.0.1, an OS-chosen port, shut down after the test."""
    requests: list[str] = []
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server expects
            requests.append(self.path)
            if self.path == "/slow.txt":
                stop.wait(SLOW_SECONDS)  # returns at once when the fixture shuts down
            if self.path in {"/corpus.txt", "/slow.txt", "/other-name.txt"}:
                self.send_response(200)
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(PAYLOAD)
            else:
                self.send_error(404, "Not Found")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep the test output clean

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    # A broken pipe after a client timed out is expected; do not print a traceback for it.
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    stopped = False

    def shutdown() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            stop.set()
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)

    host, port = httpd.server_address[:2]
    try:
        yield LocalServer(f"http://{host}:{port}", requests, stop, shutdown)
    finally:
        shutdown()


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _leftovers(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_download_checks_caches_and_works_offline_afterwards(
    server: LocalServer, tmp_path: pathlib.Path
) -> None:
    path = download(f"{server.base_url}/corpus.txt", PAYLOAD_SHA256, cache_dir=tmp_path)
    assert path == tmp_path / "downloads" / "corpus.txt"
    assert path.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["corpus.txt"]  # no temporary file left
    assert server.requests == ["/corpus.txt"]

    server.shutdown()
    again = download(f"{server.base_url}/corpus.txt", PAYLOAD_SHA256.upper(), cache_dir=tmp_path)
    assert again == path
    assert server.requests == ["/corpus.txt"]  # the second call did not touch the network


def test_cached_file_is_used_without_any_server(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "downloads" / "corpus.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)  # placed by hand, as the offline message suggests
    url = f"http://127.0.0.1:{_closed_port()}/corpus.txt"
    assert download(url, PAYLOAD_SHA256, cache_dir=tmp_path) == target


def test_default_cache_dir_and_explicit_filename(
    server: LocalServer, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "env"))
    path = download(f"{server.base_url}/other-name.txt", PAYLOAD_SHA256, filename="mine.txt")
    assert path == tmp_path / "env" / "downloads" / "mine.txt"
    assert path.read_bytes() == PAYLOAD


def test_stale_cached_file_is_downloaded_again(server: LocalServer, tmp_path: pathlib.Path) -> None:
    target = tmp_path / "downloads" / "corpus.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"an old, different version")
    with pytest.warns(CacheWarning, match="downloading it again"):
        path = download(f"{server.base_url}/corpus.txt", PAYLOAD_SHA256, cache_dir=tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_raises_and_leaves_nothing_behind(
    server: LocalServer, tmp_path: pathlib.Path
) -> None:
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        download(f"{server.base_url}/corpus.txt", wrong, cache_dir=tmp_path)
    message = str(info.value)
    assert wrong in message and PAYLOAD_SHA256 in message
    assert "expected" in message and "received" in message
    assert _leftovers(tmp_path) == []


def test_connection_refused_explains_how_to_work_offline(tmp_path: pathlib.Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/corpus.txt"
    with pytest.raises(DownloadError) as info:
        download(url, PAYLOAD_SHA256, cache_dir=tmp_path, timeout=2)
    message = str(info.value)
    assert url in message
    assert "offline" in message and "No course notebook needs this download" in message
    assert str(tmp_path / "downloads" / "corpus.txt") in message
    assert PAYLOAD_SHA256 in message
    assert _leftovers(tmp_path) == []


def test_slow_server_times_out(server: LocalServer, tmp_path: pathlib.Path) -> None:
    with pytest.raises(DownloadError, match="timeout") as info:
        download(f"{server.base_url}/slow.txt", PAYLOAD_SHA256, cache_dir=tmp_path, timeout=0.5)
    assert "0.5" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_http_404_raises(server: LocalServer, tmp_path: pathlib.Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        download(f"{server.base_url}/missing.txt", PAYLOAD_SHA256, cache_dir=tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", ["abc", "z" * 64, PAYLOAD_SHA256[:-1], PAYLOAD_SHA256 + "0", ""])
def test_bad_sha256_is_rejected_before_any_network(bad: str, tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        download("http://127.0.0.1:9/corpus.txt", bad, cache_dir=tmp_path)
    assert not tmp_path.joinpath("downloads").exists()


def test_other_bad_arguments(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        download("http://127.0.0.1:9/x.txt", None, cache_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="file name"):
        download("http://127.0.0.1:9/", PAYLOAD_SHA256, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="plain file name"):
        download("http://127.0.0.1:9/x.txt", PAYLOAD_SHA256, filename="../x", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="timeout"):
        download("http://127.0.0.1:9/x.txt", PAYLOAD_SHA256, cache_dir=tmp_path, timeout=0)
    with pytest.raises(TypeError, match="url"):
        download(b"http://127.0.0.1:9/x.txt", PAYLOAD_SHA256, cache_dir=tmp_path)  # type: ignore[arg-type]
