"""The real server in its own process, for black-box, browser and benchmark runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

VISITS = str(Path(sys.executable).parent / "visits")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(database_url: str, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "VISITS_DATABASE_URL": database_url,
        "VISITS_SECRET_KEY": "black-box-secret",
        "VISITS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        **extra,
    }


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VISITS, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@contextmanager
def running_server(
    database_url: str, *, port: int | None = None, workers: int = 1, **extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start ``visits serve`` and wait until it answers; stop it afterwards."""
    port = port or free_port()
    env = server_env(database_url, port, **extra)
    process = subprocess.Popen(
        [VISITS, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode() if process.stderr else "died")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start")
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
