"""The real server in its own process, for black-box, browser and benchmark runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from tests.clocked_server import ShiftedClock

VISITS = str(Path(sys.executable).parent / "visits")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of a server or worker process. Bookings confirm at once unless a test
    turns phone verification on (the SMS tests do)."""
    return {
        **os.environ,
        "VISITS_DATABASE_URL": database_url,
        "VISITS_SECRET_KEY": "black-box-secret",
        "VISITS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VISITS_PHONE_VERIFICATION": "false",
        **extra,
    }


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VISITS, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    # The server's stderr, line by line. It is drained as it comes: an unread pipe fills up
    # and then blocks the server on its next log line.
    log: list[str] = field(default_factory=list)
    drain: threading.Thread | None = None

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.log.append(raw.decode(errors="replace").rstrip())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process with ``sig`` (killed if it lingers) and keep all it logged."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.drain is not None:
            self.drain.join(timeout=5)


def start_process(
    base: str, args: list[str], env: dict[str, str], command: list[str] | None = None
) -> Server:
    """A ``visits`` process (or ``command``) whose stderr is kept as it comes."""
    process = subprocess.Popen(
        command or [VISITS, *args],
        env=env,
        cwd=ROOT if command else None,  # where ``python -m tests...`` finds the tests
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Server(base, process)
    server.drain = threading.Thread(target=server._drain, daemon=True)
    server.drain.start()
    return server


@contextmanager
def _process(
    base: str, args: list[str], env: dict[str, str], command: list[str] | None = None
) -> Iterator[Server]:
    server = start_process(base, args, env, command)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def running_worker(database_url: str, *, port: int, **extra: str) -> Iterator[Server]:
    """Start ``visits worker`` (the background jobs) for the server on ``port``."""
    env = server_env(database_url, port, **extra)
    with _process(f"http://127.0.0.1:{port}", ["worker"], env) as worker:
        yield worker


@contextmanager
def running_server(
    database_url: str,
    *,
    port: int | None = None,
    workers: int = 1,
    clock: ShiftedClock | None = None,
    module: str | None = None,
    **extra: str,
) -> Iterator[Server]:
    """Start ``visits serve`` and wait until it answers; stop it afterwards. With a ``clock``,
    the same app on that clock instead (``tests.clocked_server``), and no jobs in it. With a
    ``module``, ``python -m module OPTIONS``: a test app served as ``visits serve`` serves
    (:func:`web.serve.main`), also with no jobs."""
    port = port or free_port()
    env = server_env(database_url, port, **extra)
    args = ["serve", "--port", str(port), "--workers", str(workers)]
    command = None
    if clock is not None:
        from tests.clocked_server import OFFSET

        env[OFFSET] = str(clock.offset.total_seconds())
        module = "tests.clocked_server"
    if module is not None:
        env["VISITS_RUN_JOBS_IN_PROCESS"] = "false"
        options = {"host": "127.0.0.1", "port": port, "workers": workers, "proxy_headers": False}
        command = [sys.executable, "-m", module, json.dumps(options)]
    with _process(f"http://127.0.0.1:{port}", args, env, command) as server:
        deadline = time.monotonic() + 30
        while True:
            if server.process.poll() is not None:
                server.stop()
                raise RuntimeError("the server died:\n" + "\n".join(server.log))
            try:
                if httpx.get(f"{server.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.1)
        yield server
